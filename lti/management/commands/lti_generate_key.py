from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from lti.keys import public_jwk, tool_key_generate


class Command(BaseCommand):
    help = "Generate a new RSA signing key for the LTI tool (older active keys stay published)."

    def handle(self, *args: Any, **options: Any) -> None:
        key = tool_key_generate()
        self.stdout.write(f"New LTI tool key {key.kid}")
        self.stdout.write(str(public_jwk(key.public_key_pem, key.kid)))
