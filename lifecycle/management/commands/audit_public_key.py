"""Print the audit signing key's public half (what the site publishes at /audit/public-key/)."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management.base import BaseCommand, CommandParser

from lifecycle import signing


class Command(BaseCommand):
    help = "Prints the public key that verifies signed audit exports and checkpoints."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--generate",
            action="store_true",
            help="Print a new private seed for AUDIT_SIGNING_KEY instead (64 hex digits).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["generate"]:
            seed = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
            self.stdout.write(seed.hex())
            return
        self.stdout.write(signing.public_key_text(), ending="")
