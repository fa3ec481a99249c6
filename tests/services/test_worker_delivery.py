"""An approval reaches the team by e-mail, sent by a real Celery worker over Redis."""

from __future__ import annotations

import pytest
from celery_harness import wait_until
from django.core import mail
from factories import current_stage, declare_no_conflict, fill_and_submit

from notifications.models import EmailStatus, Notification, NotificationKind
from reviews import services

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_an_approval_is_e_mailed_by_the_worker_once(personas, celery_services, publisher):
    p = personas
    worker = celery_services.worker()
    stage = current_stage(p.project)
    services.assignment_create(
        project=p.project,
        actor=p.tina,
        reviewer=p.erin,
        role="expert",
        stage_definition=stage.definition,
    )
    declare_no_conflict(p.project, p.erin)
    revision = fill_and_submit(stage, p.alice)
    services.decision_record(revision=revision, reviewer=p.tina, outcome="approve")
    services.decision_record(revision=revision, reviewer=p.erin, outcome="approve")

    approved = Notification.objects.filter(kind=NotificationKind.STAGE_APPROVED)
    assert {n.recipient for n in approved} == {p.alice, p.bob}
    everything = Notification.objects.all()
    assert everything.count() >= 3  # review requested (Erin) and approved (Alice, Bob) at least

    wait_until(
        lambda: not everything.exclude(email_status=EmailStatus.SENT).exists(),
        timeout=30,
        what="the worker to send every notification",
    )
    # Nothing was sent in this process: pytest's locmem outbox stays empty.
    assert mail.outbox == []
    keys = celery_services.mailbox.keys()
    assert keys == {n.dedupe_key: 1 for n in everything}, "each notification exactly once"
    for n in everything:
        assert n.email_attempts == 1
        assert n.email_sent_at is not None
    assert worker.log().count("reviews.deliver_notification") >= 2 * everything.count()

    to_team = [m for m in celery_services.mailbox.messages() if "Approved" in str(m["Subject"])]
    assert sorted(str(m["To"]) for m in to_team) == [p.alice.email, p.bob.email]
    message = to_team[0]
    assert p.project.title in str(message["Subject"])
    assert {part.get_content_type() for part in message.walk()} >= {"text/plain", "text/html"}
    assert "/accounts/profile/" in message.get_body(("plain",)).get_content()
