"""An approval notifies the team in-app and by e-mail, through the outbox."""

from __future__ import annotations

import pytest
from django.core import mail
from factories import current_stage, declare_no_conflict, fill_and_submit

from notifications.models import EmailStatus, Notification, NotificationKind
from reviews import services

pytestmark = pytest.mark.django_db


def test_an_approval_reaches_the_team_by_e_mail_once(personas, django_capture_on_commit_callbacks):
    p = personas
    stage = current_stage(p.project)
    services.assignment_create(
        project=p.project,
        actor=p.tina,
        reviewer=p.erin,
        role="expert",
        stage_definition=stage.definition,
    )
    declare_no_conflict(p.project, p.erin)
    with django_capture_on_commit_callbacks(execute=True):
        revision = fill_and_submit(stage, p.alice)
    requested = Notification.objects.filter(kind=NotificationKind.REVIEW_REQUESTED)
    # The assigned expert, and course staff: the stage's gate needs a staff approval too.
    assert {n.recipient for n in requested} == {p.erin, p.tina, p.ian}
    with django_capture_on_commit_callbacks(execute=True):
        services.decision_record(revision=revision, reviewer=p.tina, outcome="approve")
        services.decision_record(revision=revision, reviewer=p.erin, outcome="approve")
    approved = Notification.objects.filter(kind=NotificationKind.STAGE_APPROVED)
    assert {n.recipient for n in approved} == {p.alice, p.bob}
    assert all(n.email_status == EmailStatus.SENT for n in approved)
    subjects = [m.subject for m in mail.outbox]
    assert sum("Approved" in s for s in subjects) == 2
    message = next(m for m in mail.outbox if "Approved" in m.subject)
    assert p.project.title in message.subject
    assert message.alternatives and "text/html" in message.alternatives[0][1]
    assert "/accounts/profile/" in message.body
