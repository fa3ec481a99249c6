"""Celery tasks: thin wrappers that load ids and call the outbox or the sweeps. Each is safe to
run twice: delivery claims its row, reminders have unique identities.

The task names keep the ``reviews.`` prefix they had before notifications became an app of its
own: messages already queued under those names, and the beat schedules stored in
django-celery-beat's tables, still find their task."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from celery import shared_task

from . import audit_checkpoints, outbox, reminders

log = logging.getLogger(__name__)

TASK_LIMITS = {"acks_late": True, "soft_time_limit": 60, "time_limit": 90}


@shared_task(name="reviews.deliver_notification", **TASK_LIMITS)
def deliver_notification(notification_id: int) -> str:
    return outbox.deliver(notification_id)


# The sweep stops taking new rows after 45 s; one more SMTP send (EMAIL_TIMEOUT, 30 s) must
# still fit under the soft limit.
@shared_task(name="reviews.sweep_outbox", acks_late=True, soft_time_limit=120, time_limit=150)
def sweep_outbox() -> dict[str, int]:
    return outbox.sweep()


@shared_task(name="reviews.send_daily_digests", acks_late=True, soft_time_limit=600, time_limit=900)
def send_daily_digests() -> int:
    return outbox.send_digests()


@shared_task(name="reviews.sweep_reminders", acks_late=True, soft_time_limit=600, time_limit=900)
def sweep_reminders() -> dict[str, int]:
    return reminders.sweep_reminders()


@shared_task(
    name="reviews.send_audit_checkpoint", acks_late=True, soft_time_limit=300, time_limit=360
)
def send_audit_checkpoint() -> dict[str, object]:
    return audit_checkpoints.send_audit_checkpoint()


def enqueue_delivery(ids: Iterable[int]) -> None:
    """Called on commit. If the broker is down the rows stay pending and the sweeper delivers
    them later; the request that caused them must not fail for it."""
    for pk in ids:
        try:
            deliver_notification.delay(pk)
        except Exception as exc:
            log.warning("broker unreachable, notification %s left for the sweeper: %s", pk, exc)
            return
