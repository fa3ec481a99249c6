"""The reviewer's queue in plain SQL (reviews.queue) keeps to the rules the ORM query states
(selectors.pending_review_stages): the same stages in the same order, under the same
assignment, due date and role, with counts over every page, for everyone."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import time_machine
from django.utils import timezone
from factories import CourseFactory, current_stage, enrol, fill_and_submit
from scale import seed_projects

from lifecycle import services as lifecycle_services
from lifecycle.models import Outcome, Project, ProjectStatus, Role
from reviews import queue, selectors, services
from reviews.models import Decision, Invitation


@pytest.fixture
def busy(personas):
    """Both teams' stage 1 in review (Carol's first), more projects of the course in review
    (assigned to Tina, changes requested by Ian), Erin assigned to the team's stage 1 with a
    due date, Ian to Carol's whole project overdue, and a decision of Tina's."""
    p = personas
    today = timezone.localdate()
    start = timezone.now()
    with time_machine.travel(start - dt.timedelta(days=3), tick=False):
        other = fill_and_submit(current_stage(p.other_project), p.carol)
    with time_machine.travel(start - dt.timedelta(days=2), tick=False):
        mine = fill_and_submit(current_stage(p.project), p.alice)
    seed_projects(course=p.course, instructor=p.ian, ta=p.tina, projects=4)
    services.assignment_create(
        project=p.project,
        actor=p.tina,
        reviewer=p.erin,
        role="expert",
        stage_definition=mine.stage.definition,
        due_date=today + dt.timedelta(days=4),
    )
    services.assignment_create(
        project=p.other_project,
        actor=p.tina,
        reviewer=p.ian,
        role="staff",
        due_date=today - dt.timedelta(days=1),
    )
    services.decision_record(revision=other, reviewer=p.tina, outcome="approve")
    return p


def _orm(user: Any) -> list[tuple[int, Any, bool, str]]:
    return [
        (r.stage.pk, r.due, r.overdue, r.role)
        for r in selectors.as_pending_reviews(selectors.pending_review_stages(user))
    ]


def _sql(user: Any, *, offset: int = 0, limit: int = 100) -> queue.PendingSlice:
    return queue.pending_slice(user, queue.reviewer_scope(user), offset=offset, limit=limit)


@pytest.mark.parametrize("who", ["tina", "ian", "erin", "alice", "carol", "oscar"])
def test_the_queue_lists_what_the_orm_rules_list_in_the_same_order_due_dates_and_roles(busy, who):
    user = getattr(busy, who)
    expected = _orm(user)
    found = _sql(user)
    assert [(r.stage_id, r.due, r.overdue, r.role) for r in found.rows] == expected
    assert found.total == len(expected)
    assert found.overdue == sum(1 for _, _, overdue, _ in expected if overdue)


def test_the_people_of_the_scene_wait_for_what_they_should(busy):
    p = busy
    assert len(_orm(p.tina)) == 5  # the team's stage and the 4 seeded; Carol's is decided
    assert len(_orm(p.ian)) == 2  # Carol's (overdue) and the team's; the seeded he decided
    (erin,) = _sql(p.erin).rows
    assert erin.role == "expert" and erin.due == timezone.localdate() + dt.timedelta(days=4)
    (first, *_) = _sql(p.ian).rows
    assert first.project_title == p.other_project.title and first.overdue
    assert _sql(p.ian).overdue == 1
    assert _sql(p.alice).rows == [] and _sql(p.oscar).total == 0


def test_a_slice_is_a_page_of_the_whole_and_one_past_the_end_still_counts(busy):
    p = busy
    whole = _sql(p.tina).rows
    assert _sql(p.tina, offset=1, limit=2).rows == whole[1:3]
    past = _sql(p.tina, offset=50, limit=10)
    assert past.rows == [] and past.total == len(whole)


def test_decisions_come_newest_first_and_say_when_they_are_stale(busy):
    p = busy
    rows = queue.done_rows(p.ian, limit=3)
    expected = list(
        Decision.objects.filter(reviewer=p.ian, replaced_at__isnull=True)
        .order_by("-created_at", "-pk")
        .values_list("revision_id", flat=True)[:3]
    )
    assert [r.revision_id for r in rows] == expected and len(rows) == 3
    (tinas,) = queue.done_rows(p.tina, limit=30)
    assert tinas.approved and tinas.stale_since is None
    assert tinas.project_title == p.other_project.title


def test_the_scope_says_where_someone_reviews_and_what_waits_for_confirmation(busy):
    p = busy
    tina = queue.reviewer_scope(p.tina)
    assert tina.staff_course_ids == [p.course.pk] and not tina.on_a_team and tina.reviews
    assert tina.invitations_to_confirm == 0 and tina.experts_to_confirm == 0
    erin = queue.reviewer_scope(p.erin)
    assert erin.staff_courses == [] and erin.reviews
    assert [(a.project_id, a.role) for a in erin.assignments] == [(p.project.pk, "expert")]
    alice = queue.reviewer_scope(p.alice)
    assert alice.on_a_team and not alice.reviews
    assert alice.team_active_projects == [p.project.pk] and tina.team_active_projects == []
    # A concluded project keeps its team (on_a_team) but leaves the active list.
    Project.objects.filter(pk=p.project.pk).update(
        status=ProjectStatus.CONCLUDED, outcome=Outcome.DEPLOYED
    )
    concluded = queue.reviewer_scope(p.alice)
    assert concluded.on_a_team and concluded.team_active_projects == []
    Project.objects.filter(pk=p.project.pk).update(status=ProjectStatus.ACTIVE, outcome="")
    Invitation.objects.create(
        email="new@example.test",
        course=p.course,
        project=p.project,
        invited_by=p.alice,
        token_hash="0" * 64,
        expires_at=timezone.now() + dt.timedelta(days=3),
        needs_confirmation=True,
    )
    assert queue.reviewer_scope(p.tina).invitations_to_confirm == 1
    assert queue.reviewer_scope(p.erin).invitations_to_confirm == 0


def test_a_teacher_who_is_a_student_elsewhere_sees_both_courses_on_the_home_page(personas):
    p = personas
    elsewhere = CourseFactory(title="Ethics of ML")
    enrol(elsewhere, p.tina, Role.STUDENT)
    own = lifecycle_services.project_create(course=elsewhere, actor=p.tina, title="Tina's own")
    from django.test import Client

    client = Client()
    client.force_login(p.tina)
    html = client.get("/").content.decode()
    assert f'data-project="{own.pk}"' in html
    assert f'data-project="{p.project.pk}"' in html and "Alice, Bob" in html
    # Her own course's card has no team column; the one she teaches has.
    assert html.count('<th scope="col">Team</th>') == 1
