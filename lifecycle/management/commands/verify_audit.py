"""Prove the audit chain intact, or name the first broken event.

Without ``--file`` the chain in the database is checked. With ``--file EXPORT`` (``.csv`` with
its ``.head.json``, or ``.jsonl``) only the file is read: no database is needed."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from lifecycle.audit import verify_chain
from lifecycle.exports import verify_export_file


class Command(BaseCommand):
    help = "Re-computes the audit trail's hash chain; exits non-zero at the first broken event."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--file",
            help="Verify an export (CSV or JSON Lines, by extension) instead of the database.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options.get("file"):
            self._verify_file(options["file"])
            return
        report = verify_chain()
        if not report.intact:
            raise CommandError(
                f"Audit chain BROKEN at event #{report.broken_at}: {report.reason}. "
                f"{report.count} events before it verify."
            )
        self.stdout.write(f"Audit chain intact: {report.count} events, head {report.head}")

    def _verify_file(self, path: str) -> None:
        if not path.endswith((".csv", ".jsonl")):
            raise CommandError("The export must be a .csv or a .jsonl file.")
        report = verify_export_file(path)
        if not report.intact:
            raise CommandError(
                f"Audit export BROKEN at {report.describe_break()}. "
                f"{report.rows} rows before it verify."
            )
        head = report.head or {}
        kind = "filtered export" if head.get("filters") else "full export"
        self.stdout.write(
            f"Audit export intact ({kind}): {report.rows} events, {report.gaps} gaps; "
            f"chain head #{head.get('last_seq')} ({head.get('count')} events) "
            f"{head.get('last_hash')}"
        )
