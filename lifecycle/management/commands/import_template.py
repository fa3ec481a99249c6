"""Read a template JSON document (lifecycle/schemas/template-v1.schema.json), validate it and
write it as a new template version: of a course (which then starts new projects on it) or
shared under a slug. A malformed file is refused with every error naming its field."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from lifecycle.audit import audit_record
from lifecycle.models import Course
from lifecycle.template_data import DocumentErrors, checked
from lifecycle.template_services import (
    course_template_slug,
    reviewer_pool,
    write_template_version,
)


class Command(BaseCommand):
    help = "Import a template JSON file as a new version: --course CODE or --slug S."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("file")
        parser.add_argument("--course", help="a course code: the course moves to the new version")
        parser.add_argument("--slug", help="a shared template slug")

    def handle(self, *args: Any, **options: Any) -> None:
        if bool(options["course"]) == bool(options["slug"]):
            raise CommandError("Name exactly one of --course or --slug.")
        try:
            with open(options["file"], encoding="utf-8") as source:
                data = json.load(source)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise CommandError(f"{options['file']}: not a readable JSON file: {error}") from None
        course = None
        if options["course"]:
            course = (
                Course.objects.select_related("template").filter(code=options["course"]).first()
            )
            if course is None:
                raise CommandError(f"No course with the code {options['course']!r}.")
        try:
            document = checked(data, pool=reviewer_pool(course) if course else None)
        except DocumentErrors as error:
            lines = [
                f"  {path or 'template'}: {' '.join(msgs)}" for path, msgs in error.errors.items()
            ]
            raise CommandError("The template was not imported:\n" + "\n".join(lines)) from None
        with transaction.atomic():
            if course is not None:
                course = Course.objects.select_for_update().get(pk=course.pk)
                old = course.template
                template = write_template_version(
                    document, slug=course_template_slug(course), course=course, based_on=old
                )
                course.template = template
                course.save(update_fields=["template"])
            else:
                old = None
                template = write_template_version(document, slug=options["slug"])
            audit_record(
                actor=None,
                verb="template.import",
                obj=template,
                course=course,
                old={"template": old.pk} if old else None,
                new={"version": f"{template.slug} v{template.version}", "source": "manage.py"},
            )
        self.stdout.write(f"Imported {template.slug} v{template.version} ({template.name}).")
