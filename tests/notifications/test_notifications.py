"""Who hears about what, and how the outbox gets it to them exactly once.

Personas (tests/conftest.py): Alice and Bob are the team of ``personas.project``; Carol is a
student on another team; Tina a TA, Ian the instructor; Erin an outside expert; Oscar an outsider.
"""

from __future__ import annotations

import datetime as dt
from smtplib import SMTPServerDisconnected
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from factories import UserFactory, advance_to, current_stage, declare_no_conflict, fill_and_submit

from accounts.models import EmailFrequency, User
from lifecycle import events
from lifecycle import services as lifecycle_services
from notifications import outbox
from notifications.models import EmailStatus, Notification, NotificationKind
from reviews import services

pytestmark = pytest.mark.django_db


# --- helpers -----------------------------------------------------------------------------


def assign(p: Any, reviewer: User, order: int | None = 1, role: str = "expert") -> Any:
    definition = p.project.template.stages.get(order=order) if order else None
    assignment = services.assignment_create(
        project=p.project, actor=p.ian, reviewer=reviewer, role=role, stage_definition=definition
    )
    if role == "expert":
        declare_no_conflict(p.project, reviewer)
    return assignment


def received(kind: str) -> dict[User, str]:
    """recipient -> dedupe key of every notification of this kind; fails on a duplicate."""
    rows = list(Notification.objects.filter(kind=kind).select_related("recipient"))
    people = [n.recipient for n in rows]
    assert len(people) == len(set(people)), f"someone got two {kind} notifications"
    return {n.recipient: n.dedupe_key for n in rows}


def keyed(key: str, *people: User) -> dict[User, str]:
    return {u: f"{key}:u{u.pk}" for u in people}


def replay_changes_nothing(event: str, **payload: Any) -> None:
    before = Notification.objects.count()
    events.publish(event, **payload)
    assert Notification.objects.count() == before


def request_changes(revision: Any, reviewer: User, comment: str = "Name the harms.") -> None:
    services.decision_record(
        revision=revision, reviewer=reviewer, outcome="request_changes", comment=comment
    )


def pending_notification(p: Any) -> Notification:
    """One notification for Alice, pending and due (its on-commit delivery never ran: the
    test's transaction does not commit)."""
    revision = fill_and_submit(current_stage(p.project), p.alice)
    request_changes(revision, p.tina)
    notification = Notification.objects.get(
        kind=NotificationKind.CHANGES_REQUESTED, recipient=p.alice
    )
    assert notification.email_status == EmailStatus.PENDING
    return notification


# --- events and their recipients -----------------------------------------------------------


def test_a_submission_asks_the_reviewers_assigned_to_that_stage_or_the_whole_project_and_staff(
    personas,
):
    p = personas
    gwen = UserFactory(display_name="Gwen")
    frank = UserFactory(display_name="Frank")
    assign(p, p.erin, order=1)
    assign(p, gwen, order=None)
    assign(p, frank, order=2)  # another stage: not asked
    stage = current_stage(p.project)

    revision = fill_and_submit(stage, p.alice)

    # Stage 1's gate needs a staff approval too: the TA and the instructor are asked as well.
    assert received(NotificationKind.REVIEW_REQUESTED) == keyed(
        f"review_requested:r{revision.pk}", p.erin, gwen, p.tina, p.ian
    )
    replay_changes_nothing(
        events.STAGE_SUBMITTED, stage=stage, revision=revision, actor=p.alice, resubmission=False
    )


def test_a_submission_nobody_is_assigned_to_asks_the_course_staff(personas):
    p = personas
    stage = current_stage(p.project)

    revision = fill_and_submit(stage, p.alice)

    assert received(NotificationKind.REVIEW_REQUESTED) == keyed(
        f"review_requested:r{revision.pk}", p.tina, p.ian
    )
    replay_changes_nothing(
        events.STAGE_SUBMITTED, stage=stage, revision=revision, actor=p.alice, resubmission=False
    )


def test_a_request_for_changes_tells_the_team(personas):
    p = personas
    stage = current_stage(p.project)
    revision = fill_and_submit(stage, p.alice)

    request_changes(revision, p.tina)

    assert received(NotificationKind.CHANGES_REQUESTED) == keyed(
        f"changes_requested:r{revision.pk}", p.alice, p.bob
    )
    replay_changes_nothing(
        events.STAGE_CHANGES_REQUESTED, stage=stage, revision=revision, actor=p.tina, reason="x"
    )


def test_a_resubmission_tells_who_asked_for_changes_and_every_assigned_reviewer_once(personas):
    p = personas
    gwen = UserFactory(display_name="Gwen")
    assign(p, p.erin, order=1)
    assign(p, gwen, order=1)
    stage = current_stage(p.project)
    first = fill_and_submit(stage, p.alice)
    request_changes(first, p.tina)  # course staff, not assigned
    services.decision_record(
        revision=first, reviewer=p.erin, outcome="request_changes", comment="And the data."
    )  # assigned and asked: one notification, not two

    second = fill_and_submit(stage, p.alice)

    assert received(NotificationKind.RESUBMITTED) == {
        **keyed(f"resubmitted:r{second.pk}:asked", p.tina, p.erin),
        # The gate still needs a staff approval: Ian, who did not ask, hears the general news.
        **keyed(f"review_requested:r{second.pk}", gwen, p.ian),
    }
    replay_changes_nothing(
        events.STAGE_SUBMITTED, stage=stage, revision=second, actor=p.alice, resubmission=True
    )


def test_a_reviewer_who_approved_the_newer_revision_is_not_told_it_answers_their_request(
    personas,
):
    p = personas
    stage = current_stage(p.project)
    first = fill_and_submit(stage, p.alice)
    request_changes(first, p.tina)
    second = fill_and_submit(stage, p.alice)
    services.decision_record(revision=second, reviewer=p.tina, outcome="approve")
    request_changes(second, p.ian)

    third = fill_and_submit(stage, p.alice)

    assert Notification.objects.get(dedupe_key=f"resubmitted:r{third.pk}:asked:u{p.ian.pk}")
    # Tina's latest word was an approval: she hears the general news, not "your request".
    assert Notification.objects.filter(
        recipient=p.tina, dedupe_key=f"review_requested:r{third.pk}:u{p.tina.pk}"
    ).exists()
    assert not Notification.objects.filter(
        dedupe_key=f"resubmitted:r{third.pk}:asked:u{p.tina.pk}"
    ).exists()


def test_an_approved_stage_tells_the_team(personas):
    p = personas
    assign(p, p.erin, order=1)
    stage = current_stage(p.project)
    revision = fill_and_submit(stage, p.alice)

    services.decision_record(revision=revision, reviewer=p.tina, outcome="approve")
    assert not Notification.objects.filter(kind=NotificationKind.STAGE_APPROVED).exists()
    services.decision_record(revision=revision, reviewer=p.erin, outcome="approve")

    assert received(NotificationKind.STAGE_APPROVED) == keyed(
        f"stage_approved:s{stage.pk}:r{revision.pk}", p.alice, p.bob
    )
    stage.refresh_from_db()
    replay_changes_nothing(
        events.STAGE_APPROVED,
        stage=stage,
        revision=revision,
        actor=p.erin,
        next_stage=current_stage(p.project),
        override=False,
    )


def test_looping_back_tells_the_team_and_the_reviewers_of_the_reopened_stages(personas):
    p = personas
    frank = UserFactory(display_name="Frank")  # stage 2 only: not reopened
    gwen = UserFactory(display_name="Gwen")  # stage 4: reopened
    assign(p, frank, order=2)
    assign(p, gwen, order=4)
    assign(p, p.erin, order=None)  # the whole project
    advance_to(p.project, 7, team_member=p.alice, reviewer=p.ian)

    project = lifecycle_services.project_loop_back(
        project=p.project, actor=p.alice, to_order=3, reason="The data drifted."
    )

    assert received(NotificationKind.LOOPED_BACK) == keyed(
        f"looped_back:p{project.pk}:c2", p.alice, p.bob, gwen, p.erin
    )
    to_stage = current_stage(project)
    replay_changes_nothing(
        events.PROJECT_LOOPED_BACK,
        project=project,
        actor=p.alice,
        from_stage=to_stage,
        to_stage=to_stage,
        reason="again",
    )


def test_an_instructor_override_tells_the_team_and_the_course_staff(personas):
    p = personas
    stage = current_stage(p.project)
    revision = fill_and_submit(stage, p.alice)

    services.stage_override(stage=stage, actor=p.ian, justification="The expert is ill.")

    assert received(NotificationKind.OVERRIDE) == keyed(
        f"override:s{stage.pk}:r{revision.pk}", p.alice, p.bob, p.tina, p.ian
    )
    assert set(received(NotificationKind.STAGE_APPROVED)) == {p.alice, p.bob}
    stage.refresh_from_db()
    replay_changes_nothing(
        events.STAGE_APPROVED,
        stage=stage,
        revision=revision,
        actor=p.ian,
        next_stage=current_stage(p.project),
        override=True,
    )


def test_a_reviewer_assigned_while_the_stage_is_in_review_is_asked_at_once(personas):
    p = personas
    gwen = UserFactory(display_name="Gwen")
    assign(p, gwen, order=1)  # while drafting: nothing to review yet
    assert not Notification.objects.filter(recipient=gwen).exists()
    revision = fill_and_submit(current_stage(p.project), p.alice)
    frank = UserFactory(display_name="Frank")
    assign(p, frank, order=2)  # another stage: nothing in review there

    assign(p, p.erin, order=1)

    # Stage 1's gate needs staff: the TA and instructor were asked at submission too.
    assert received(NotificationKind.REVIEW_REQUESTED) == keyed(
        f"review_requested:r{revision.pk}", gwen, p.erin, p.tina, p.ian
    )
    assert not Notification.objects.filter(recipient=frank).exists()


# --- the e-mail ----------------------------------------------------------------------------


def test_the_e_mail_has_text_and_html_the_stage_in_its_subject_a_link_and_the_preferences(
    personas, django_capture_on_commit_callbacks
):
    p = personas
    stage = current_stage(p.project)
    revision = fill_and_submit(stage, p.alice)

    with django_capture_on_commit_callbacks(execute=True):
        request_changes(revision, p.tina, comment="Who else is affected?")

    assert sorted(m.to[0] for m in mail.outbox) == [p.alice.email, p.bob.email]
    message = mail.outbox[0]
    assert p.project.title in message.subject
    assert "Changes requested" in message.subject
    assert f"stage 1 “{stage.definition.title}”" in message.subject
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    link = settings.SITE_URL.rstrip("/") + stage.get_absolute_url()
    preferences = settings.SITE_URL.rstrip("/") + reverse("accounts:profile")
    assert link in message.body
    assert f'href="{link}"' in html
    assert preferences in message.body
    assert preferences in html
    assert "Who else is affected?" in message.body
    assert all(
        n.email_status == EmailStatus.SENT
        for n in Notification.objects.filter(kind=NotificationKind.CHANGES_REQUESTED)
    )


# --- daily digest --------------------------------------------------------------------------


def test_digest_readers_get_no_immediate_e_mail_and_one_digest_of_everything_held(
    personas, django_capture_on_commit_callbacks
):
    p = personas
    User.objects.filter(pk=p.alice.pk).update(email_frequency=EmailFrequency.DAILY_DIGEST)
    assign(p, p.erin, order=1)
    stage = current_stage(p.project)
    first = fill_and_submit(stage, p.alice)
    with django_capture_on_commit_callbacks(execute=True):
        request_changes(first, p.tina)
    second = fill_and_submit(stage, p.alice)
    with django_capture_on_commit_callbacks(execute=True):
        services.decision_record(revision=second, reviewer=p.tina, outcome="approve")
        services.decision_record(revision=second, reviewer=p.erin, outcome="approve")

    # Alice reads everything in the app at once; her e-mails wait. Bob is unaffected.
    held = Notification.objects.filter(recipient=p.alice)
    assert {n.email_status for n in held} == {EmailStatus.DIGEST}
    assert held.count() == 2
    assert p.alice.email not in [m.to[0] for m in mail.outbox]
    bobs = [m for m in mail.outbox if m.to == [p.bob.email]]
    assert len(bobs) == 2
    mail.outbox.clear()

    assert outbox.send_digests() == 1

    assert len(mail.outbox) == 1
    digest = mail.outbox[0]
    assert digest.to == [p.alice.email]
    assert "2 updates" in digest.subject
    for n in held:
        assert n.subject in digest.body
        assert n.link in digest.body
    assert "text/html" in digest.alternatives[0][1]
    assert reverse("accounts:profile") in digest.body
    assert {n.email_status for n in held.all()} == {EmailStatus.DIGESTED}
    assert {n.email_status for n in Notification.objects.filter(recipient=p.bob)} == {
        EmailStatus.SENT
    }
    assert outbox.send_digests() == 0
    assert len(mail.outbox) == 1


def test_digests_go_out_one_per_person_and_a_failing_one_does_not_stop_the_others(
    personas, monkeypatch
):
    p = personas
    User.objects.filter(pk__in=[p.alice.pk, p.bob.pk]).update(
        email_frequency=EmailFrequency.DAILY_DIGEST
    )
    stage = current_stage(p.project)
    request_changes(fill_and_submit(stage, p.alice), p.tina)
    request_changes(fill_and_submit(stage, p.alice), p.tina)
    original = EmailBackend.send_messages

    def refuse_alice(self: EmailBackend, messages: list[Any]) -> int:
        if any(p.alice.email in m.to for m in messages):
            raise SMTPServerDisconnected("alice's server is down")
        return original(self, messages)

    monkeypatch.setattr(EmailBackend, "send_messages", refuse_alice)

    assert outbox.send_digests() == 1

    assert [m.to for m in mail.outbox] == [[p.bob.email]]
    assert "2 updates" in mail.outbox[0].subject
    # Alice's stay held for tomorrow's digest.
    assert {n.email_status for n in Notification.objects.filter(recipient=p.alice)} == {
        EmailStatus.DIGEST
    }


# --- delivery ------------------------------------------------------------------------------


def test_delivering_one_notification_twice_sends_one_e_mail(personas):
    notification = pending_notification(personas)

    assert outbox.deliver(notification.pk) == "sent"
    assert outbox.deliver(notification.pk) == "not-claimed"

    assert len(mail.outbox) == 1
    notification.refresh_from_db()
    assert notification.email_status == EmailStatus.SENT
    assert notification.email_attempts == 1
    assert mail.outbox[0].extra_headers["X-LRB-Notification"] == notification.dedupe_key


def failing_sends(monkeypatch: Any, failures: int | None) -> list[int]:
    """Make the locmem backend raise for the first ``failures`` sends (None: every send)."""
    calls: list[int] = []
    original = EmailBackend.send_messages

    def flaky(self: EmailBackend, messages: list[Any]) -> int:
        calls.append(1)
        if failures is None or len(calls) <= failures:
            raise SMTPServerDisconnected("Connection unexpectedly closed")
        return original(self, messages)

    monkeypatch.setattr(EmailBackend, "send_messages", flaky)
    return calls


def test_an_smtp_failure_is_retried_with_back_off_and_sent_once_on_the_third_try(
    personas, monkeypatch
):
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        notification = pending_notification(personas)
        failing_sends(monkeypatch, failures=2)

        assert outbox.deliver(notification.pk) == "retry"
        notification.refresh_from_db()
        assert notification.email_status == EmailStatus.PENDING
        assert notification.email_attempts == 1
        assert notification.email_next_attempt_at == timezone.now() + dt.timedelta(minutes=1)
        assert "SMTPServerDisconnected" in notification.email_error
        assert outbox.deliver(notification.pk) == "not-claimed"  # backing off

        traveller.shift(dt.timedelta(minutes=1, seconds=1))
        assert outbox.deliver(notification.pk) == "retry"
        notification.refresh_from_db()
        assert notification.email_status == EmailStatus.PENDING
        assert notification.email_attempts == 2
        assert notification.email_next_attempt_at == timezone.now() + dt.timedelta(minutes=2)
        assert not mail.outbox

        traveller.shift(dt.timedelta(minutes=2, seconds=1))
        assert outbox.deliver(notification.pk) == "sent"

    assert len(mail.outbox) == 1
    notification.refresh_from_db()
    assert notification.email_status == EmailStatus.SENT
    assert notification.email_attempts == 3
    assert notification.email_error == ""


def test_after_the_last_attempt_the_e_mail_is_failed_with_its_error(
    personas, monkeypatch, settings
):
    settings.NOTIFICATION_MAX_ATTEMPTS = 3
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        notification = pending_notification(personas)
        failing_sends(monkeypatch, failures=None)

        results = []
        for _ in range(3):
            results.append(outbox.deliver(notification.pk))
            traveller.shift(dt.timedelta(hours=1))
        assert results == ["retry", "retry", "failed"]
        assert outbox.deliver(notification.pk) == "not-claimed"
        assert notification.pk not in outbox.due_ids()  # the sweeper leaves it alone too

    notification.refresh_from_db()
    assert notification.email_status == EmailStatus.FAILED
    assert notification.email_attempts == 3
    assert notification.email_error == "SMTPServerDisconnected: Connection unexpectedly closed"
    assert not mail.outbox


def test_a_claim_older_than_the_lease_is_released_and_the_sweeper_delivers_it_once(personas):
    notification = pending_notification(personas)
    fresh = Notification.objects.get(
        kind=NotificationKind.CHANGES_REQUESTED, recipient=personas.bob
    )
    now = timezone.now()
    # Alice's worker died an hour ago holding her row; Bob's is sending right now.
    Notification.objects.filter(pk=notification.pk).update(
        email_status=EmailStatus.SENDING,
        email_attempts=1,
        email_claimed_at=now - outbox.lease() - dt.timedelta(seconds=1),
    )
    Notification.objects.filter(pk=fresh.pk).update(
        email_status=EmailStatus.SENDING, email_attempts=1, email_claimed_at=now
    )

    assert outbox.release_stale_claims() == 1

    notification.refresh_from_db()
    assert notification.email_status == EmailStatus.PENDING
    assert Notification.objects.get(pk=fresh.pk).email_status == EmailStatus.SENDING
    # Other pending rows (the staff's review requests) go out in the same sweep.
    others = Notification.objects.filter(email_status=EmailStatus.PENDING).count() - 1
    assert outbox.sweep() == {"released": 0, "sent": others + 1}
    assert outbox.sweep() == {"released": 0}
    assert [m.to for m in mail.outbox].count([personas.alice.email]) == 1
    assert personas.bob.email not in [m.to[0] for m in mail.outbox]
    notification.refresh_from_db()
    assert notification.email_status == EmailStatus.SENT
    assert notification.email_attempts == 2


def test_a_row_whose_worker_died_on_every_attempt_is_given_up_as_failed(personas, settings):
    settings.NOTIFICATION_MAX_ATTEMPTS = 2
    notification = pending_notification(personas)
    Notification.objects.filter(pk=notification.pk).update(
        email_status=EmailStatus.SENDING,
        email_attempts=2,
        email_claimed_at=timezone.now() - outbox.lease() - dt.timedelta(minutes=1),
    )

    assert outbox.release_stale_claims() == 0

    notification.refresh_from_db()
    assert notification.email_status == EmailStatus.FAILED
    assert "worker stopped" in notification.email_error


# --- retrying failed e-mails -----------------------------------------------------------------


def failed_notification(p: Any) -> Notification:
    notification = pending_notification(p)
    Notification.objects.filter(pk=notification.pk).update(
        email_status=EmailStatus.FAILED, email_attempts=5, email_error="SMTPDataError: 554"
    )
    return notification


def test_retrying_failed_e_mails_gives_them_fresh_attempts_and_leaves_others_alone(
    personas, django_capture_on_commit_callbacks
):
    notification = failed_notification(personas)
    sent = Notification.objects.get(kind=NotificationKind.CHANGES_REQUESTED, recipient=personas.bob)
    Notification.objects.filter(pk=sent.pk).update(email_status=EmailStatus.SENT)

    with django_capture_on_commit_callbacks(execute=True):
        assert outbox.retry_failed([notification.pk, sent.pk]) == 1

    notification.refresh_from_db()
    assert notification.email_status == EmailStatus.SENT
    assert notification.email_attempts == 1
    assert [m.to for m in mail.outbox] == [[personas.alice.email]]
    assert Notification.objects.get(pk=sent.pk).email_status == EmailStatus.SENT
    assert outbox.retry_failed([notification.pk]) == 0


def test_the_admin_lists_the_outbox_and_retries_failed_e_mails(personas):
    notification = failed_notification(personas)
    admin_user = UserFactory(email="sam@example.test", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin_user)
    url = reverse("admin:notifications_notification_changelist")

    listing = client.get(url, {"email_status__exact": "failed", "q": "alice@"})
    assert listing.status_code == 200
    assert notification.subject in listing.content.decode()
    assert "Retry failed e-mails" in listing.content.decode()

    response = client.post(
        url, {"action": "retry_failed_emails", "_selected_action": [notification.pk]}
    )

    assert response.status_code == 302
    notification.refresh_from_db()
    assert notification.email_status == EmailStatus.PENDING
    assert notification.email_attempts == 0
    change = reverse("admin:notifications_notification_change", args=[notification.pk])
    assert "Save" not in client.get(change).content.decode()
    assert client.get(reverse("admin:notifications_reminder_changelist")).status_code == 200
