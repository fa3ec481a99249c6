"""Prove the audit chain intact, or name the first broken event.

Without ``--file`` the chain in the database is checked; with ``--checkpoint FILE`` also that it
still ends at or after the signed checkpoint's head (no events removed from the end). With
``--file EXPORT`` (``.csv`` with its ``.head.json``, or ``.jsonl``) only the file is read: no
database is needed, only the server's public key (``--public-key``, by default this server's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from lifecycle import signing
from lifecycle.audit import verify_chain
from lifecycle.checkpoints import CheckpointError, check_against_database, read_checkpoint
from lifecycle.exports import verify_export_file


class Command(BaseCommand):
    help = "Re-computes the audit trail's hash chain; exits non-zero at the first broken event."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--file",
            help="Verify an export (CSV or JSON Lines, by extension) instead of the database.",
        )
        parser.add_argument(
            "--checkpoint",
            help="A signed checkpoint file: the chain must still hold the head it recorded.",
        )
        parser.add_argument(
            "--public-key",
            help="The server's published public key (a file with its PEM or 64 hex digits); "
            "by default this server's own key.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        key = self._public_key(options.get("public_key"))
        if options.get("file"):
            self._verify_file(options["file"], key)
            return
        checkpoint = None
        if options.get("checkpoint"):
            try:
                text = Path(options["checkpoint"]).read_text(encoding="utf-8")
                checkpoint = read_checkpoint(text, key)
            except (OSError, CheckpointError) as error:
                raise CommandError(f"Checkpoint refused: {error}") from error
        report = verify_chain()
        if not report.intact:
            raise CommandError(
                f"Audit chain BROKEN at event #{report.broken_at}: {report.reason}. "
                f"{report.count} events before it verify."
            )
        if checkpoint is not None:
            held = check_against_database(checkpoint)
            if not held.holds:
                raise CommandError(f"Audit chain TRUNCATED or REWRITTEN: {held.problem}.")
        self.stdout.write(f"Audit chain intact: {report.count} events, head {report.head}")
        if checkpoint is not None:
            self.stdout.write(
                f"Checkpoint of {checkpoint['at']} holds: event #{checkpoint['last_seq']} "
                f"{checkpoint['last_hash']}"
            )

    def _public_key(self, source: str | None) -> Any:
        if not source:
            return None
        try:
            return signing.load_public_key(Path(source).read_text(encoding="utf-8"))
        except (OSError, signing.PublicKeyError) as error:
            raise CommandError(f"Cannot read the public key {source}: {error}") from error

    def _verify_file(self, path: str, key: Any) -> None:
        if not path.endswith((".csv", ".jsonl")):
            raise CommandError("The export must be a .csv or a .jsonl file.")
        report = verify_export_file(path, public_key=key)
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
            f"{head.get('last_hash')}; signed by key {head.get('key_id')}"
        )
