"""The periodic tasks: created by a migration in django-celery-beat's tables, run by a real
`celery beat` with the database scheduler, executed by a real worker."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from celery_harness import wait_until
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from factories import UserFactory

from notifications.models import EmailStatus, Notification, NotificationKind

# serialized_rollback: the schedule rows come from a migration, and every transactional test
# empties the tables afterwards; this brings the migrated rows back first.
pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

TASKS = {
    "reviews.deliver_notification",
    "reviews.sweep_outbox",
    "reviews.sweep_reminders",
    "reviews.send_daily_digests",
    "reviews.send_audit_checkpoint",
}


def schedules() -> dict[str, tuple[str, str, bool]]:
    return {
        t.task: (t.crontab.minute, t.crontab.hour, t.enabled)
        for t in PeriodicTask.objects.select_related("crontab").filter(task__startswith="reviews.")
    }


def test_beat_runs_the_migrated_outbox_sweep_on_the_worker(celery_services):
    assert schedules() == {
        "reviews.sweep_outbox": ("*", "*", True),  # every minute
        "reviews.sweep_reminders": ("0", "7", True),  # daily
        "reviews.send_daily_digests": ("0", "18", True),  # daily
        "reviews.send_audit_checkpoint": ("0", "2", True),  # daily
    }
    for task in PeriodicTask.objects.filter(task__startswith="reviews."):
        assert task.crontab.day_of_week == task.crontab.day_of_month == "*"
        assert task.crontab.month_of_year == "*"

    # A row whose delivery task was never published: only the sweeper can send it.
    user = UserFactory(email="stranded@example.test")
    stranded = Notification.objects.create(
        recipient=user,
        email=user.email,
        kind=NotificationKind.NUDGE,
        subject="Left behind by a broker outage",
        dedupe_key="beat-test:stranded",
    )

    worker = celery_services.worker()
    nodename = re.search(r"(\S+@\S+) ready\.", worker.log()).group(1)
    inspected = celery_services.celery(
        "inspect", "registered", "-d", nodename, "-t", "10", "--json"
    )
    assert inspected.returncode == 0, inspected.stdout + inspected.stderr
    registered = set(json.loads(inspected.stdout)[nodename])
    assert registered >= TASKS

    # As if beat had last run the sweep two minutes ago: a minute boundary has passed since, so
    # the every-minute crontab is due at beat's first tick instead of at the next full minute.
    PeriodicTask.objects.filter(task="reviews.sweep_outbox").update(
        last_run_at=timezone.now() - dt.timedelta(minutes=2)
    )
    beat = celery_services.beat()
    beat.wait_for_log(r"beat: Starting", timeout=30)
    wait_until(
        lambda: Notification.objects.filter(pk=stranded.pk, email_status=EmailStatus.SENT).exists(),
        timeout=75,  # even without the head start: the next full minute plus beat's 5 s sleep
        what="beat to send reviews.sweep_outbox and the worker to deliver the stranded row",
        interval=0.5,
    )
    assert re.search(r"Sending due task .*\(reviews\.sweep_outbox\)", beat.log())
    assert "reviews.sweep_outbox" in worker.log()
    assert celery_services.mailbox.keys() == {"beat-test:stranded": 1}
