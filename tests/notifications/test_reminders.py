"""The daily reminder sweep, with the clock moved by time-machine: reviewers reminded once per
interval up to the course's limit, then one escalation to the course staff; teams nudged before
a due date and when a request for changes sits unanswered; nothing ever sent twice, not even by
two sweeps at once.

Personas (tests/conftest.py): Alice and Bob are the team of ``personas.project``; Carol is a
student on another team; Tina a TA, Ian the instructor; Erin an outside expert; Oscar an outsider.
The course's defaults: a 3-day interval and a limit of 2 reminders.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections import Counter
from typing import Any

import pytest
import time_machine
from concurrency import race
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from factories import UserFactory, current_stage, declare_no_conflict, fill_and_submit

from accounts.models import User
from lifecycle import services as lifecycle_services
from lifecycle.models import QuestionKind
from notifications.models import Notification, NotificationKind, Reminder
from notifications.reminders import sweep_reminders
from reviews import services
from reviews.models import AssignmentState, ReviewAssignment

pytestmark = pytest.mark.django_db

DAY = dt.timedelta(days=1)
MINUTE = dt.timedelta(minutes=1)


# --- helpers -----------------------------------------------------------------------------


@pytest.fixture
def clock():
    """The clock, stopped at the real now; move it with clock.move_to(...)."""
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        yield traveller


def in_review(p: Any, *reviewers: User, role: str = "expert") -> tuple[Any, Any, list[Any]]:
    """Stage 1 of Alice's project in review, with these reviewers assigned to it."""
    stage = current_stage(p.project)
    assignments = [
        services.assignment_create(
            project=p.project,
            actor=p.ian,
            reviewer=reviewer,
            role=role,
            stage_definition=stage.definition,
        )
        for reviewer in reviewers
    ]
    if role == "expert":
        for reviewer in reviewers:
            declare_no_conflict(p.project, reviewer)
    return stage, fill_and_submit(stage, p.alice), assignments


def received(kind: str) -> Counter[User]:
    return Counter(n.recipient for n in Notification.objects.filter(kind=kind))


def sequences() -> list[tuple[str, int]]:
    return [(r.kind, r.sequence) for r in Reminder.objects.order_by("created_at", "pk")]


def request_changes(revision: Any, reviewer: User) -> None:
    services.decision_record(
        revision=revision, reviewer=reviewer, outcome="request_changes", comment="Say more."
    )


# --- reviewers -----------------------------------------------------------------------------


def test_a_reviewer_pending_longer_than_the_interval_gets_a_first_reminder(personas, clock):
    p = personas
    start = timezone.now()
    _, revision, [assignment] = in_review(p, p.erin)

    clock.move_to(start + 3 * DAY - MINUTE)
    sweep_reminders()
    assert not Reminder.objects.exists()

    clock.move_to(start + 3 * DAY + MINUTE)
    sweep_reminders()

    [reminder] = Reminder.objects.all()
    assert (reminder.kind, reminder.assignment, reminder.revision, reminder.sequence) == (
        NotificationKind.REVIEW_REMINDER,
        assignment,
        revision,
        1,
    )
    [notification] = Notification.objects.filter(kind=NotificationKind.REVIEW_REMINDER)
    assert notification.recipient == p.erin
    assert (
        notification.dedupe_key == f"review_reminder:a{assignment.pk}:r{revision.pk}:1:u{p.erin.pk}"
    )
    assert "Reminder 1" in notification.subject


def test_the_interval_is_the_courses(personas, clock):
    p = personas
    p.course.reminder_interval_days = 5
    p.course.save(update_fields=["reminder_interval_days"])
    start = timezone.now()
    in_review(p, p.erin)

    clock.move_to(start + 4 * DAY)
    sweep_reminders()
    assert not Reminder.objects.exists()

    clock.move_to(start + 5 * DAY + MINUTE)
    sweep_reminders()
    assert sequences() == [(NotificationKind.REVIEW_REMINDER, 1)]


def test_two_reminders_then_one_escalation_to_the_course_staff_then_nothing_more(
    personas, clock, django_capture_on_commit_callbacks
):
    p = personas
    start = timezone.now()
    in_review(p, p.erin)

    for days in (3, 4, 6, 7, 9, 10, 12, 30):
        clock.move_to(start + days * DAY + MINUTE)
        with django_capture_on_commit_callbacks(execute=True):
            sweep_reminders()

    assert sequences() == [
        (NotificationKind.REVIEW_REMINDER, 1),
        (NotificationKind.REVIEW_REMINDER, 2),
        (NotificationKind.REVIEW_ESCALATION, 1),
    ]
    assert received(NotificationKind.REVIEW_REMINDER) == {p.erin: 2}
    assert received(NotificationKind.REVIEW_ESCALATION) == {p.tina: 1, p.ian: 1}
    assert Counter(m.to[0] for m in mail.outbox) == {
        p.erin.email: 2,
        p.tina.email: 1,
        p.ian.email: 1,
    }
    escalation = next(m for m in mail.outbox if m.to == [p.ian.email])
    assert "Overdue review" in escalation.subject
    assert p.erin.name in escalation.subject


def test_the_late_reviewer_is_not_sent_the_escalation_about_themselves(personas, clock):
    p = personas
    start = timezone.now()
    in_review(p, p.tina, role="staff")

    for days in (3, 6, 9):
        clock.move_to(start + days * DAY + MINUTE)
        sweep_reminders()

    assert received(NotificationKind.REVIEW_REMINDER) == {p.tina: 2}
    assert received(NotificationKind.REVIEW_ESCALATION) == {p.ian: 1}


def test_a_sweep_that_missed_days_sends_only_the_reminder_due_now(personas, clock):
    p = personas
    start = timezone.now()
    in_review(p, p.erin)

    clock.move_to(start + 7 * DAY)
    sweep_reminders()

    assert sequences() == [(NotificationKind.REVIEW_REMINDER, 2)]
    assert received(NotificationKind.REVIEW_REMINDER) == {p.erin: 1}


def test_a_decision_stops_the_reminders(personas, clock):
    p = personas
    start = timezone.now()
    _, revision, _ = in_review(p, p.erin)
    clock.move_to(start + 3 * DAY + MINUTE)
    sweep_reminders()

    clock.move_to(start + 4 * DAY)
    services.decision_record(revision=revision, reviewer=p.erin, outcome="approve")
    assert current_stage(p.project).status == "in_review"  # stage 1 also needs course staff
    for days in (6, 9, 12):
        clock.move_to(start + days * DAY + MINUTE)
        sweep_reminders()

    assert sequences() == [(NotificationKind.REVIEW_REMINDER, 1)]
    assert received(NotificationKind.REVIEW_ESCALATION) == {}


def test_a_new_revision_restarts_the_count(personas, clock):
    p = personas
    start = timezone.now()
    stage, first, [assignment] = in_review(p, p.erin)
    clock.move_to(start + 3 * DAY + MINUTE)
    sweep_reminders()
    clock.move_to(start + 3 * DAY + dt.timedelta(hours=1))
    request_changes(first, p.tina)
    clock.move_to(start + 4 * DAY)
    second = fill_and_submit(stage, p.alice)

    clock.move_to(start + 6 * DAY + MINUTE)  # 6 days after revision 1, 2 after revision 2
    sweep_reminders()
    assert [(r.revision_id, r.sequence) for r in Reminder.objects.all()] == [(first.pk, 1)]

    clock.move_to(start + 7 * DAY + MINUTE)
    sweep_reminders()

    assert [(r.revision_id, r.sequence) for r in Reminder.objects.order_by("pk")] == [
        (first.pk, 1),
        (second.pk, 1),
    ]
    assert Notification.objects.filter(
        dedupe_key=f"review_reminder:a{assignment.pk}:r{second.pk}:1:u{p.erin.pk}"
    ).exists()


# --- teams ---------------------------------------------------------------------------------


def test_the_team_is_nudged_two_days_before_a_due_date_once_per_due_date(personas, clock):
    p = personas
    start = timezone.now()
    stage = current_stage(p.project)
    due = timezone.localdate() + 5 * DAY
    lifecycle_services.stage_set_due_date(stage=stage, actor=p.tina, due_date=due)

    for days in (0, 1, 2):  # 5, 4 and 3 days before
        clock.move_to(start + days * DAY)
        sweep_reminders()
    assert not Reminder.objects.exists()

    for days in (3, 3, 4, 5):  # two days before (twice), the day before, the day itself
        clock.move_to(start + days * DAY)
        sweep_reminders()

    assert received(NotificationKind.DUE_SOON) == {p.alice: 1, p.bob: 1}
    [reminder] = Reminder.objects.all()
    assert reminder.identity == f"due_soon:s{stage.pk}:{due.isoformat()}"
    assert not Notification.objects.filter(recipient=p.carol).exists()

    later = due + 7 * DAY  # the staff move the date: the new one gets its own nudge
    lifecycle_services.stage_set_due_date(stage=stage, actor=p.tina, due_date=later)
    clock.move_to(start + 10 * DAY)
    sweep_reminders()
    assert received(NotificationKind.DUE_SOON) == {p.alice: 2, p.bob: 2}


def test_a_stage_in_review_is_not_nudged_about_its_due_date(personas, clock):
    p = personas
    stage = current_stage(p.project)
    lifecycle_services.stage_set_due_date(
        stage=stage, actor=p.tina, due_date=timezone.localdate() + DAY
    )
    fill_and_submit(stage, p.alice)

    sweep_reminders()

    assert not Reminder.objects.filter(kind=NotificationKind.DUE_SOON).exists()


def test_an_unanswered_change_request_nudges_the_team_once_per_revision(personas, clock):
    p = personas
    start = timezone.now()
    stage = current_stage(p.project)
    first = fill_and_submit(stage, p.alice)
    clock.move_to(start + 2 * DAY)
    request_changes(first, p.tina)

    clock.move_to(start + 4 * DAY)  # 4 days after the submission, 2 after the request
    sweep_reminders()
    assert not Reminder.objects.exists()

    for days in (5, 6, 9):
        clock.move_to(start + days * DAY + MINUTE)
        sweep_reminders()
    assert received(NotificationKind.CHANGES_UNANSWERED) == {p.alice: 1, p.bob: 1}
    assert Notification.objects.filter(
        dedupe_key=f"changes_unanswered:s{stage.pk}:r{first.pk}:u{p.alice.pk}"
    ).exists()

    clock.move_to(start + 10 * DAY)
    second = fill_and_submit(stage, p.alice)
    request_changes(second, p.tina)
    for days in (12, 13):
        clock.move_to(start + days * DAY + MINUTE)
        sweep_reminders()

    assert received(NotificationKind.CHANGES_UNANSWERED) == {p.alice: 2, p.bob: 2}
    assert [r.revision_id for r in Reminder.objects.order_by("pk")] == [first.pk, second.pk]


def test_work_on_the_draft_counts_as_an_answer_for_the_interval(personas, clock):
    p = personas
    start = timezone.now()
    stage = current_stage(p.project)
    request_changes(fill_and_submit(stage, p.alice), p.tina)
    question = stage.definition.questions.filter(kind=QuestionKind.LONG_TEXT).first()
    clock.move_to(start + 2 * DAY)
    stage.refresh_from_db()
    lifecycle_services.stage_save_draft(
        stage=stage,
        actor=p.bob,
        answers={question.key: "We are on it."},
        base_version=stage.draft_version,
    )

    clock.move_to(start + 3 * DAY + MINUTE)
    sweep_reminders()
    assert not Reminder.objects.exists()

    clock.move_to(start + 5 * DAY + MINUTE)
    sweep_reminders()
    assert received(NotificationKind.CHANGES_UNANSWERED) == {p.alice: 1, p.bob: 1}


# --- idempotency ---------------------------------------------------------------------------


def carols_stage_due_in_two_days(p: Any, at: dt.datetime) -> Any:
    stage = current_stage(p.other_project)
    return lifecycle_services.stage_set_due_date(
        stage=stage, actor=p.tina, due_date=timezone.localdate(at) + 2 * DAY
    )


def test_running_the_sweep_twice_sends_nothing_twice(
    personas, clock, django_capture_on_commit_callbacks
):
    p = personas
    start = timezone.now()
    in_review(p, p.erin)
    carols_stage_due_in_two_days(p, start + 3 * DAY)
    clock.move_to(start + 3 * DAY + MINUTE)

    with django_capture_on_commit_callbacks(execute=True):
        first = sweep_reminders()
    with django_capture_on_commit_callbacks(execute=True):
        second = sweep_reminders()

    assert first == {"reviews": 1, "teams": 1}
    assert second == {"reviews": 0, "teams": 0}
    assert Reminder.objects.count() == 2
    assert sorted(m.to[0] for m in mail.outbox) == [p.carol.email, p.erin.email]


def hold_inserts_until_both_have_planned(monkeypatch: Any) -> None:
    """Stop each sweep after it has read which reminders exist and before it inserts its own,
    until the other gets there too, so both really plan the same reminders. On PostgreSQL they
    then insert together; SQLite's IMMEDIATE transactions queue the second sweep behind the
    first, so the wait times out and the second finds everything taken."""
    rendezvous = threading.Barrier(2)
    insert = Reminder.objects.bulk_create

    def both_planned_then_insert(*args: Any, **kwargs: Any) -> Any:
        with contextlib.suppress(threading.BrokenBarrierError):
            rendezvous.wait(timeout=3)
        return insert(*args, **kwargs)

    monkeypatch.setattr(Reminder.objects, "bulk_create", both_planned_then_insert)


@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_once_make_no_duplicate_reminder_notification_or_e_mail(
    personas, clock, monkeypatch
):
    p = personas
    start = timezone.now()
    experts = [UserFactory(display_name=f"Expert {i}") for i in range(5)]
    in_review(p, *experts)
    carols_stage_due_in_two_days(p, start + 3 * DAY)
    clock.move_to(start + 3 * DAY + MINUTE)
    mail.outbox.clear()  # the review requests, sent when the submission committed
    hold_inserts_until_both_have_planned(monkeypatch)

    results = race(2, lambda _i: sweep_reminders())

    assert [status for status, _ in results] == ["ok", "ok"], results
    identities = list(Reminder.objects.values_list("identity", flat=True))
    assert len(identities) == len(set(identities)) == 6
    keys = list(
        Notification.objects.filter(
            kind__in=[NotificationKind.REVIEW_REMINDER, NotificationKind.DUE_SOON]
        ).values_list("dedupe_key", flat=True)
    )
    assert len(keys) == len(set(keys)) == 6
    sent = Counter(m.to[0] for m in mail.outbox)
    assert sent == {**{e.email: 1 for e in experts}, p.carol.email: 1}
    headers = [m.extra_headers["X-LRB-Notification"] for m in mail.outbox]
    assert len(headers) == len(set(headers))


def test_a_sweep_costs_the_same_queries_at_5_and_50_pending_assignments(personas, clock):
    p = personas
    start = timezone.now()
    experts = [UserFactory(display_name=f"Expert {i}") for i in range(50)]
    _, _, assignments = in_review(p, *experts)
    clock.move_to(start + 3 * DAY + MINUTE)
    later = [a.pk for a in assignments[5:]]

    # Five pending: the other 45 are set aside for the first measurement.
    ReviewAssignment.objects.filter(pk__in=later).update(state=AssignmentState.WITHDRAWN)
    with CaptureQueriesContext(connection) as five:
        assert sweep_reminders()["reviews"] == 5

    # Fifty pending, at the same moment, with nothing sent yet.
    Reminder.objects.all().delete()
    Notification.objects.filter(kind=NotificationKind.REVIEW_REMINDER).delete()
    ReviewAssignment.objects.filter(pk__in=later).update(state=AssignmentState.ACTIVE)
    with CaptureQueriesContext(connection) as fifty:
        assert sweep_reminders()["reviews"] == 50

    assert len(fifty) == len(five)
    assert Notification.objects.filter(kind=NotificationKind.REVIEW_REMINDER).count() == 50
