"""Writing notifications: one row per person and event in the outbox, in the transaction of the
state change that caused it; delivery is queued on commit and the sweeper catches whatever that
missed. And a person's own read flags."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import connections, router, transaction
from django.db.models.constants import OnConflict
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


_INSERT_BATCH = 500


def _insert_returning(rows: list[Notification]) -> list[tuple[int, str]] | None:
    """Insert the rows, leaving alone those whose dedupe key exists, in the query
    ``bulk_create(ignore_conflicts=True)`` makes plus ``RETURNING id, email_status``
    (PostgreSQL's ``ON CONFLICT DO NOTHING``, SQLite's ``INSERT OR IGNORE``), which returns
    the (id, status) of the rows it inserted; None when the database cannot return rows."""
    manager = Notification.objects
    features = connections[router.db_for_write(Notification)].features
    if not features.can_return_rows_from_bulk_insert:
        manager.bulk_create(rows, ignore_conflicts=True)
        return None
    opts = Notification._meta
    fields = [f for f in opts.concrete_fields if not f.generated and f is not opts.pk]
    returning = [opts.pk, opts.get_field("email_status")]
    inserted: list[tuple[int, str]] = []
    for start in range(0, len(rows), _INSERT_BATCH):
        batch = rows[start : start + _INSERT_BATCH]
        # What bulk_create does, through Django's private API (not in django-stubs): the
        # related fields' checks, then its query with a RETURNING clause.
        for row in batch:
            row._prepare_related_fields_for_save(operation_name="bulk_create")  # type: ignore[attr-defined]
        returned = manager._insert(  # type: ignore[attr-defined]
            batch, fields=fields, returning_fields=returning, on_conflict=OnConflict.IGNORE
        )
        inserted.extend((r[0], r[1]) for r in returned if r is not None)
    return inserted


def store(rows: list[Notification]) -> list[int]:
    """Insert the rows (those whose dedupe key exists already are left alone) and queue the
    e-mails due now for after the commit. Returns their ids."""
    if not rows:
        return []
    inserted = _insert_returning(rows)
    forget_unread(r.recipient_id for r in rows)
    if inserted is not None and len(inserted) == len(rows):
        # Every row is new: the INSERT said which of them wait for an e-mail now.
        ids = [pk for pk, status in inserted if status == EmailStatus.PENDING]
    else:
        # Some keys existed already (a replay) or the database cannot say: the pending rows of
        # these keys, old and new, as before.
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
