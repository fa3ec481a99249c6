"""Prove the audit chain intact, or name the first broken event."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from lifecycle.audit import verify_chain


class Command(BaseCommand):
    help = "Re-computes the audit trail's hash chain; exits non-zero at the first broken event."

    def handle(self, *args: Any, **options: Any) -> None:
        report = verify_chain()
        if not report.intact:
            raise CommandError(
                f"Audit chain BROKEN at event #{report.broken_at}: {report.reason}. "
                f"{report.count} events before it verify."
            )
        self.stdout.write(f"Audit chain intact: {report.count} events, head {report.head}")
