"""Writing notifications: one row per person and event in the outbox, in the transaction of the
state change that caused it; delivery is queued on commit and the sweeper catches whatever that
missed. And a person's own read flags."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from accounts.models import EmailFrequency, User
from lifecycle.models import Project, ProjectStage

from .models import EmailStatus, Notification
from .unread import forget_unread


def absolute(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def review_link(stage: ProjectStage) -> str:
    try:
        return absolute(reverse("reviews:review_stage", args=[stage.pk]))
    except NoReverseMatch:  # the review pages are not installed (never in production)
        return absolute(stage.get_absolute_url())


def stage_link(stage: ProjectStage) -> str:
    return absolute(stage.get_absolute_url())


def build_notification(
    user: User,
    *,
    kind: str,
    key: str,
    subject: str,
    body: str,
    link: str,
    project: Project | None = None,
    stage: ProjectStage | None = None,
    payload: dict[str, Any] | None = None,
) -> Notification:
    """One person's row for the event ``key``; people on the daily digest wait for it."""
    return Notification(
        recipient=user,
        email=user.email,
        kind=kind,
        project=project if project is not None else (stage.project if stage else None),
        stage=stage,
        subject=subject[:250],
        body=body,
        link=link,
        payload=payload or {},
        dedupe_key=f"{key}:u{user.pk}"[:200],
        email_status=(
            EmailStatus.DIGEST
            if user.email_frequency == EmailFrequency.DAILY_DIGEST
            else EmailStatus.PENDING
        ),
    )


def store(rows: list[Notification]) -> list[int]:
    """Insert the rows (those whose dedupe key exists already are left alone) and queue the
    e-mails due now for after the commit. Returns their ids."""
    if not rows:
        return []
    Notification.objects.bulk_create(rows, ignore_conflicts=True)
    forget_unread(r.recipient_id for r in rows)
    ids = list(
        Notification.objects.filter(
            dedupe_key__in=[r.dedupe_key for r in rows], email_status=EmailStatus.PENDING
        )
        .order_by()
        .values_list("pk", flat=True)
    )
    if ids:
        from .tasks import enqueue_delivery

        transaction.on_commit(lambda: enqueue_delivery(ids))
    return ids


def notify(
    *,
    recipients: Iterable[User],
    kind: str,
    key: str,
    subject: str,
    body: str,
    link: str,
    project: Project | None = None,
    stage: ProjectStage | None = None,
    payload: dict[str, Any] | None = None,
) -> list[int]:
    """Write one notification per distinct active recipient for the event ``key``; replaying
    the event writes nothing new. Returns the ids of rows to e-mail now."""
    people = {u.pk: u for u in recipients if u is not None and u.is_active}
    return store(
        [
            build_notification(
                user,
                kind=kind,
                key=key,
                subject=subject,
                body=body,
                link=link,
                project=project,
                stage=stage,
                payload=payload,
            )
            for user in people.values()
        ]
    )


# --- reading in the app ---------------------------------------------------------------------
# A person's own flag on their own rows: no lock, no audit event. The conditional UPDATE names
# the recipient, so nobody can mark someone else's notification, and a second click is a no-op.


def notification_mark_read(*, user: User, notification: Notification) -> bool:
    marked = Notification.objects.filter(
        pk=notification.pk, recipient_id=user.pk, read_at__isnull=True
    ).update(read_at=timezone.now())
    forget_unread([user.pk])
    return bool(marked)


def notifications_mark_all_read(*, user: User) -> int:
    marked = Notification.objects.filter(recipient_id=user.pk, read_at__isnull=True).update(
        read_at=timezone.now()
    )
    forget_unread([user.pk])
    return marked
