"""Export the audit trail as CSV (with a .head.json beside it) or JSON Lines."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from lifecycle.exports import FORMATS, HEAD_SUFFIX, ExportFilters, write_export


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as error:
        raise CommandError(f"{text!r} is not a date (YYYY-MM-DD, UTC).") from error


class Command(BaseCommand):
    help = (
        "Streams audit events to a file that `verify_audit --file` can check on its own. "
        "Dates are UTC days, both ends inclusive."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", choices=FORMATS, required=True)
        parser.add_argument("--course", type=int, help="Only events of this course (id).")
        parser.add_argument("--project", type=int, help="Only events of this project (id).")
        parser.add_argument("--since", type=str, help="First UTC day, YYYY-MM-DD.")
        parser.add_argument("--until", type=str, help="Last UTC day, YYYY-MM-DD.")
        parser.add_argument(
            "--verb", nargs="+", action="extend", default=[], help="Only these event kinds."
        )
        parser.add_argument("--output", required=True, help="The file to write.")

    def handle(self, *args: Any, **options: Any) -> None:
        filters = ExportFilters(
            course_id=options["course"],
            project_id=options["project"],
            since=_date(options["since"]) if options["since"] else None,
            until=_date(options["until"]) if options["until"] else None,
            verbs=tuple(options["verb"]),
        )
        path = options["output"]
        head = write_export(path, options["format"], filters)["chain_head"]
        also = f" and {path}{HEAD_SUFFIX}" if options["format"] == "csv" else ""
        self.stdout.write(
            f"Exported {head['rows']} events to {path}{also}; chain head #{head['last_seq']} "
            f"({head['count']} events) {head['last_hash']}"
        )
