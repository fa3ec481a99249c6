"""Create the demo course with its people and three projects (development only)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from reviews.demo import DEMO_JOIN_CODE, DEMO_PASSWORD, demo_logins, seed_demo


class Command(BaseCommand):
    help = "Creates the demo course, users and projects. Idempotent. Refused in production."

    def handle(self, *args: Any, **options: Any) -> None:
        if not getattr(settings, "LRB_DEMO_ALLOWED", False):
            raise CommandError(
                "seed_demo creates accounts with a published password; it is refused with "
                "these settings (production)."
            )
        course, created = seed_demo()
        verb = "Created" if created else "Already there:"
        self.stdout.write(f"{verb} {course.title} (join code {DEMO_JOIN_CODE})")
        self.stdout.write(f"Demo logins (password {DEMO_PASSWORD}):")
        for email, role in demo_logins():
            self.stdout.write(f"  {email:<24} {role}")
