"""The daily audit checkpoint: the chain's signed head, kept in checkpoint storage and e-mailed
to course staff through the outbox, so that a copy outside the database outlives anyone who
could delete the newest events (lifecycle.checkpoints explains the check)."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.urls import reverse

from accounts.models import User
from lifecycle.checkpoints import CHECKPOINT_KEY, checkpoint_text, checkpoint_write
from lifecycle.models import STAFF_ROLES, Membership

from .models import NotificationKind
from .services import absolute, notify


def course_staff_everywhere() -> list[User]:
    staff = Membership.objects.filter(role__in=STAFF_ROLES).values("user_id")
    return list(User.objects.filter(pk__in=staff, is_active=True).order_by("pk"))


def send_audit_checkpoint(now: datetime | None = None) -> dict[str, object]:
    """Write today's checkpoint and queue it to every course's staff (once per day each)."""
    name, record = checkpoint_write(now)
    head = record[CHECKPOINT_KEY]
    with transaction.atomic():
        ids = notify(
            recipients=course_staff_everywhere(),
            kind=NotificationKind.AUDIT_CHECKPOINT,
            key=f"audit-checkpoint:{head['at'][:10]}",
            subject=f"Audit checkpoint {head['at'][:10]}: event #{head['last_seq']}",
            body=(
                "Keep this e-mail: it anchors the board's audit trail outside its database. "
                "To check that no events were removed since, save the JSON below as a file and "
                "run `python manage.py verify_audit --checkpoint FILE` (the signature is checked "
                f"against the key published at {absolute(reverse('lifecycle:audit_public_key'))})."
                "\n\n" + checkpoint_text(record)
            ),
            link=absolute(reverse("lifecycle:audit_public_key")),
            payload=record,
        )
    return {"stored_as": name, "last_seq": head["last_seq"], "notifications": len(ids)}
