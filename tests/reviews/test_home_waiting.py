"""Every person's home lists what waits for them, read as the page each persona gets: the expert
their assignments and pending reviews with due dates, course staff what waits for their
decision and the experts waiting for confirmation, students their projects and open threads.
Capped lists, and the same number of queries at two data sizes."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from factories import current_stage, declare_no_conflict, fill_and_submit
from scale import seed_projects

from lifecycle.models import ExpertInvitationPolicy, Project
from reviews import services
from reviews.home import HOME_CAP
from reviews.models import Comment, Invitation, ReviewAssignment, ReviewerRole

pytestmark = pytest.mark.django_db

_unique = itertools.count()


def page(user: Any) -> str:
    client = Client()
    client.force_login(user)
    response = client.get(reverse("home"))
    assert response.status_code == 200
    return response.content.decode()


def accepted_expert(p: Any, *, due: dt.date | None = None) -> ReviewAssignment:
    """Erin, invited by the TA to review stage 1 of Alice's project, accepted."""
    definition = p.project.template.stages.get(order=1)
    _, token = services.invitation_create(
        actor=p.tina,
        course=p.course,
        project=p.project,
        stage_definition=definition,
        email=p.erin.email,
        due_date=due,
    )
    _, assignment = services.invitation_accept(token=token, user=p.erin)
    declare_no_conflict(p.project, p.erin)
    assert assignment is not None
    return assignment


def test_an_expert_who_accepted_sees_the_assignment_not_that_they_are_in_no_course(personas):
    p = personas
    accepted_expert(p, due=dt.date(2026, 12, 24))

    html = page(p.erin)

    assert 'id="waiting"' in html and "Your review assignments" in html
    assert "Triage assistant" in html and "due 24 Dec" in html
    assert "drafting" in html  # nothing to decide yet: the team is still writing
    assert "You are not in a course yet" not in html
    assert "will appear here once you have accepted" not in html


def test_an_expert_sees_the_stage_waiting_for_their_decision_with_its_due_date(personas):
    p = personas
    accepted_expert(p, due=dt.date(2026, 12, 24))
    stage = current_stage(p.project)
    fill_and_submit(stage, p.alice)

    html = page(p.erin)

    assert "Reviews waiting for your decision" in html
    assert reverse("reviews:review_stage", args=[stage.pk]) in html
    assert "revision 1" in html and "due 24 Dec" in html


def test_an_expert_who_decided_no_longer_sees_the_stage_waiting(personas):
    p = personas
    accepted_expert(p)
    revision = fill_and_submit(current_stage(p.project), p.alice)
    services.decision_record(revision=revision, reviewer=p.erin, outcome="approve")

    html = page(p.erin)

    assert "Reviews waiting for your decision" not in html
    assert "Your review assignments" in html


def test_staff_see_what_waits_for_their_decision_and_the_experts_to_confirm(personas):
    p = personas
    p.course.expert_invitations = ExpertInvitationPolicy.AFTER_CONFIRMATION
    p.course.save(update_fields=["expert_invitations"])
    services.invitation_create(
        actor=p.alice,
        course=p.course,
        project=p.project,
        email="okafor@clinic.test",
        name="Dr Okafor",
    )
    stage = current_stage(p.project)
    fill_and_submit(stage, p.alice)

    for staff in (p.tina, p.ian):
        html = page(staff)
        assert "Waiting for your decision" in html
        assert reverse("reviews:review_stage", args=[stage.pk]) in html
        assert "Experts waiting for your confirmation" in html
        assert "Dr Okafor (okafor@clinic.test)" in html
        assert reverse("reviews:project_reviewers", args=[p.project.pk]) in html


def test_staff_see_an_expert_the_team_invited_who_accepted_and_waits_for_confirmation(personas):
    p = personas
    _, token = services.invitation_create(
        actor=p.alice, course=p.course, project=p.project, email=p.erin.email
    )
    services.invitation_accept(token=token, user=p.erin)

    html = page(p.tina)

    assert "Dr Erin Chen</a>" not in html  # the reviewer's name is text, the project the link
    assert "Dr Erin Chen accepted" in html
    # The expert sees they wait too.
    assert "course staff have not confirmed you yet" in page(p.erin)


def test_a_student_sees_the_open_threads_on_their_project_and_not_resolved_ones(personas):
    p = personas
    stage = current_stage(p.project)
    revision = fill_and_submit(stage, p.alice)
    open_thread = services.comment_add(
        revision=revision,
        author=p.tina,
        body="Who else is affected?",
        question_key="problem-statement",
    )
    done = services.comment_add(revision=revision, author=p.tina, body="Typo in the title.")
    services.comment_resolve(comment=done, actor=p.bob)

    html = page(p.alice)

    assert "Open comment threads on your projects" in html
    assert f"#comment-{open_thread.pk}" in html and "Who else is affected?" in html
    prompt = stage.definition.questions.get(key="problem-statement").prompt
    assert prompt[:40] in html  # the question by its text, not its key
    assert "Typo in the title." not in html
    # Carol's team is another: she sees none of it.
    assert "Who else is affected?" not in page(p.carol)


def test_an_outsider_has_nothing_waiting_and_keeps_the_join_prompt(personas):
    html = page(personas.oscar)
    assert 'id="waiting"' not in html
    assert "You are not in a course yet" in html


def test_the_home_page_asks_anonymous_visitors_to_sign_in_and_refuses_a_post(personas):
    response = Client().get(reverse("home"))
    assert response.status_code == 302 and "login" in response["Location"]
    client = Client()
    client.force_login(personas.erin)
    assert client.post(reverse("home")).status_code == 405


# --- capped, and as costly with few as with many --------------------------------------------


def _grow(p: Any, revision: Any, n: int) -> None:
    """n more of what the home lists: stages in review (assigned to the TA and to Erin as
    whole-project expert), open threads on Alice's stage, invitations waiting for staff."""
    before = set(Project.objects.values_list("pk", flat=True))
    seed_projects(course=p.course, instructor=p.ian, ta=p.tina, projects=n)
    ReviewAssignment.objects.bulk_create(
        ReviewAssignment(
            project=project, reviewer=p.erin, role=ReviewerRole.EXPERT, assigned_by=p.ian
        )
        for project in Project.objects.exclude(pk__in=before)
    )
    Comment.objects.bulk_create(
        Comment(revision=revision, author=p.tina, body=f"Thread {next(_unique)}") for _ in range(n)
    )
    Invitation.objects.bulk_create(
        Invitation(
            email=f"expert{next(_unique)}@clinic.test",
            token_hash=f"{next(_unique):064d}",
            course=p.course,
            project=p.project,
            invited_by=p.alice,
            needs_confirmation=True,
            expires_at=timezone.now() + dt.timedelta(days=7),
        )
        for _ in range(n)
    )


def _queries(user: Any) -> int:
    client = Client()
    client.force_login(user)
    client.get(reverse("home"))  # warm: sessions, content types, the template cache
    with CaptureQueriesContext(connection) as captured:
        response = client.get(reverse("home"))
    assert response.status_code == 200
    return len(captured)


def test_the_home_lists_are_capped_and_cost_the_same_at_two_data_sizes(personas):
    p = personas
    revision = fill_and_submit(current_stage(p.project), p.alice)
    people = {"expert": p.erin, "ta": p.tina, "instructor": p.ian, "student": p.alice}

    _grow(p, revision, HOME_CAP + 1)  # every list just past its cap
    small = {name: _queries(user) for name, user in people.items()}
    _grow(p, revision, 8)
    large = {name: _queries(user) for name, user in people.items()}

    assert large == small
    html = page(p.erin)
    assert html.count('data-waiting="decision"') == HOME_CAP
    assert html.count('data-waiting="assignment"') == HOME_CAP
    assert "and 9 more." in html  # assignments: HOME_CAP + 9 in all
    student = page(p.alice)
    assert student.count('data-waiting="thread"') == HOME_CAP
    assert "and 9 more." in student
    staff = page(p.tina)
    assert staff.count('data-waiting="invitation"') == HOME_CAP
