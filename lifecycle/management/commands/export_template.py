"""Write a lifecycle template version as the schema's JSON document (lifecycle/schemas)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from lifecycle.models import Course, LifecycleTemplate
from lifecycle.template_data import document_from_template


class Command(BaseCommand):
    help = (
        "Export a template as JSON: --course CODE (its current version) or "
        "--slug S [--template-version N]."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--course", help="a course code: its current template version")
        parser.add_argument("--slug", help="a template slug, e.g. lecture-default")
        parser.add_argument(
            "--template-version", type=int, help="the version (default: the newest)"
        )
        parser.add_argument("-o", "--output", help="a file to write (default: standard output)")

    def handle(self, *args: Any, **options: Any) -> None:
        if bool(options["course"]) == bool(options["slug"]):
            raise CommandError("Name exactly one of --course or --slug.")
        if options["course"]:
            course = (
                Course.objects.select_related("template").filter(code=options["course"]).first()
            )
            if course is None:
                raise CommandError(f"No course with the code {options['course']!r}.")
            template = course.template
        else:
            templates = LifecycleTemplate.objects.filter(slug=options["slug"])
            if options["template_version"]:
                templates = templates.filter(version=options["template_version"])
            latest = templates.order_by("-version").first()
            if latest is None:
                raise CommandError(f"No template {options['slug']!r} with that version.")
            template = latest
        text = json.dumps(document_from_template(template), indent=2, ensure_ascii=False) + "\n"
        if options["output"]:
            with open(options["output"], "w", encoding="utf-8") as out:
                out.write(text)
        else:
            self.stdout.write(text, ending="")
