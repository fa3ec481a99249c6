"""The course staff's board: the matrix, its filters and counts, bottlenecks, bulk actions."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from factories import (
    CourseFactory,
    UserFactory,
    conclude_not_pursued,
    current_stage,
    enrol,
    fill_and_submit,
)

from lifecycle import services as lifecycle_services
from lifecycle.errors import NotAllowed
from lifecycle.models import AuditEvent, Project, ProjectStage, Role, StageStatus
from notifications.models import Notification, NotificationKind
from reviews import services
from reviews.dashboard import BoardFilters, bar_chart, course_board, percentile
from reviews.models import ReviewAssignment

pytestmark = pytest.mark.django_db

YESTERDAY = timezone.localdate() - dt.timedelta(days=1)


@dataclass
class Scene:
    p: Any
    reviewing: Any  # personas.project: stage 1 in review, Ian assigned and overdue
    drafting: Any  # personas.other_project: stage 1 approved, stage 2 drafting
    changes: Any  # Dave's project: changes requested on stage 1
    stopped: Any  # Faye's project: concluded as not pursued


@pytest.fixture
def scene(personas) -> Scene:
    p = personas
    stage = current_stage(p.project)
    services.assignment_create(
        project=p.project,
        actor=p.tina,
        reviewer=p.ian,
        role="staff",
        stage_definition=stage.definition,
        due_date=YESTERDAY,
    )
    fill_and_submit(stage, p.alice)

    other = current_stage(p.other_project)
    revision = fill_and_submit(other, p.carol)
    lifecycle_services.stage_mark_approved(stage=other, revision=revision, actor=p.ian)

    dave = UserFactory(email="dave@example.test", display_name="Dave")
    enrol(p.course, dave, Role.STUDENT)
    changes = lifecycle_services.project_create(course=p.course, actor=dave, title="Bus delays")
    first = current_stage(changes)
    revision = fill_and_submit(first, dave)
    services.decision_record(
        revision=revision, reviewer=p.tina, outcome="request_changes", comment="Which buses?"
    )

    faye = UserFactory(email="faye@example.test", display_name="Faye")
    enrol(p.course, faye, Role.STUDENT)
    stopped = lifecycle_services.project_create(course=p.course, actor=faye, title="Exam proctor")
    conclude_not_pursued(stopped, faye, p.tina, reasoning="Nobody wants to be watched.")
    return Scene(p, p.project, p.other_project, changes, stopped)


def board_url(course: Any, **query: Any) -> str:
    url = reverse("reviews:board", args=[course.pk])
    if query:
        url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    return url


def bulk_url(course: Any) -> str:
    return reverse("reviews:board_bulk", args=[course.pk])


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def shown(response: Any) -> list[str]:
    return [row.project.title for row in response.context["board"].rows]


def row_of(response: Any, project: Project) -> Any:
    return next(r for r in response.context["board"].rows if r.project.pk == project.pk)


# --- the matrix ---------------------------------------------------------------------------


def test_each_cell_shows_the_stage_status_cycle_reviewers_and_whether_it_is_overdue(scene):
    response = client_for(scene.p.ian).get(board_url(scene.p.course))
    assert response.status_code == 200
    row = row_of(response, scene.reviewing)
    first = row.cells[0]
    assert (first.status, first.stage.cycle, first.reviewers, first.overdue) == (
        StageStatus.IN_REVIEW,
        1,
        ["Ian"],
        True,
    )
    assert [c.status for c in row.cells[1:]] == [StageStatus.LOCKED] * 6
    assert [c.status for c in row_of(response, scene.drafting).cells[:3]] == [
        StageStatus.APPROVED,
        StageStatus.DRAFTING,
        StageStatus.LOCKED,
    ]
    assert row_of(response, scene.changes).cells[0].status == StageStatus.CHANGES_REQUESTED
    html = response.content.decode()
    # Coloured by status, and each cell drills down to the review page of its stage.
    assert 'class="board-cell status-in_review is-overdue is-current"' in html
    assert "board-cell status-approved" in html
    assert "board-cell status-changes_requested" in html
    assert reverse("reviews:review_stage", args=[first.stage.pk]) in html
    assert "Alice, Bob" in html


def test_an_approved_stage_past_its_due_date_is_not_overdue(scene):
    approved = ProjectStage.objects.get(project=scene.drafting, definition__order=1)
    ProjectStage.objects.filter(pk=approved.pk).update(due_date=YESTERDAY)
    row = row_of(client_for(scene.p.ian).get(board_url(scene.p.course)), scene.drafting)
    assert row.cells[0].due == YESTERDAY
    assert not row.cells[0].overdue
    assert not row.overdue


def test_the_counts_at_the_top_cover_the_whole_course(scene):
    response = client_for(scene.p.tina).get(board_url(scene.p.course, status="drafting"))
    counts = response.context["board"].counts
    assert counts.in_review == 1
    assert counts.changes_requested == 1
    assert counts.overdue == 1
    assert counts.approved_this_week == 1
    assert (counts.concluded, counts.not_pursued) == (0, 1)
    assert 'data-count="overdue"' in response.content.decode()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"overdue": "1"}, ["Triage assistant"]),
        ({"status": "changes_requested"}, ["Bus delays"]),
        ({"status": "drafting"}, ["Crop yield forecaster"]),
        ({"stage": "2"}, ["Crop yield forecaster"]),
        ({"team": "bob"}, ["Triage assistant"]),
        ({"team": "faye@"}, ["Exam proctor"]),
        ({"status": "in_review", "team": "carol"}, []),
    ],
)
def test_the_board_filters_by_overdue_status_stage_and_team(scene, query, expected):
    response = client_for(scene.p.ian).get(board_url(scene.p.course, **query))
    assert shown(response) == expected


def test_the_board_filters_by_reviewer(scene):
    response = client_for(scene.p.ian).get(board_url(scene.p.course, reviewer=scene.p.ian.pk))
    assert shown(response) == ["Triage assistant"]
    response = client_for(scene.p.ian).get(board_url(scene.p.course, reviewer=scene.p.tina.pk))
    assert shown(response) == []


def test_the_board_sorts_by_title_current_stage_and_last_activity(scene):
    client = client_for(scene.p.ian)
    assert shown(client.get(board_url(scene.p.course))) == [
        "Bus delays",
        "Crop yield forecaster",
        "Exam proctor",
        "Triage assistant",
    ]
    by_stage = shown(client.get(board_url(scene.p.course, sort="stage")))
    assert by_stage[-2:] == ["Crop yield forecaster", "Exam proctor"]  # concluded last
    # The stalest first: the triage project was touched before any other.
    assert shown(client.get(board_url(scene.p.course, sort="activity")))[0] == "Triage assistant"


def test_unknown_filter_values_are_ignored():
    filters = BoardFilters.from_query({"stage": "two", "status": "lost", "sort": "pk;drop"})
    assert filters == BoardFilters()


def make_projects(course: Any, n: int, *, start: int, staff: Any) -> None:
    """Projects in a spread of states: drafting, in review, assigned with a due date, asked
    to change."""
    for i in range(start, start + n):
        student = UserFactory(email=f"student{i}@example.test", display_name=f"Student {i}")
        enrol(course, student, Role.STUDENT)
        project = lifecycle_services.project_create(
            course=course, actor=student, title=f"Project {i:03}"
        )
        if i % 4 == 0:
            services.assignment_create(
                project=project, actor=staff, reviewer=staff, role="staff", due_date=YESTERDAY
            )
        if i % 3 == 0:
            revision = fill_and_submit(current_stage(project), student)
            if i % 6 == 0:
                services.decision_record(
                    revision=revision, reviewer=staff, outcome="request_changes", comment="More."
                )


def test_the_board_costs_the_same_queries_at_10_and_at_100_projects(personas):
    course = CourseFactory()
    staff = UserFactory(email="prof@example.test", display_name="Prof")
    enrol(course, staff, Role.INSTRUCTOR)
    client = client_for(staff)

    def board_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(board_url(course))
        assert response.status_code == 200
        return len(queries)

    make_projects(course, 10, start=0, staff=staff)
    at_10 = board_queries()  # the course's summary is computed: it is not in the cache yet
    cached_at_10 = board_queries()
    make_projects(course, 90, start=10, staff=staff)
    at_100 = board_queries()
    cached_at_100 = board_queries()
    assert len(client.get(board_url(course)).context["board"].rows) == 100
    assert at_10 == at_100, f"{at_10} queries at 10 projects, {at_100} at 100"
    # Computing the summary: the session, the user, the course with the viewer's role and its
    # audit head, the stage columns, the course's projects, members, stages and assignments,
    # its decisions (with their ratings and flags), whom a bulk action may assign, and the
    # navigation's unread count (the summary's and the count's cache entries are forgotten by
    # the new projects' writes).
    assert at_10 == at_100 == 11
    # A page once the summary is cached: the session, the user, the course, and the page's
    # projects, members, stages and active assignments.
    assert cached_at_10 == cached_at_100 == 7


# --- bottlenecks --------------------------------------------------------------------------


def test_bottlenecks_show_reviewer_workload_stage_times_and_charts(scene):
    response = client_for(scene.p.ian).get(board_url(scene.p.course))
    b = response.context["board"].bottlenecks
    loads = {r.name: r for r in b.reviewers}
    assert (loads["Ian"].pending, loads["Ian"].overdue, loads["Ian"].decided) == (1, 1, 0)
    assert loads["Tina"].decided == 1 and loads["Tina"].median_days_to_decide is not None
    assert b.stage_times[0].approved == 1 and b.stage_times[0].median_days is not None
    assert b.stage_times[1].approved == 0 and b.stage_times[1].p90_days is None
    per_stage = {bar.label: bar.value for bar in b.projects_per_stage.bars}
    assert (per_stage["1"], per_stage["2"], per_stage["Done"]) == (2, 1, 1)
    assert b.approvals_per_week.bars[-1].value == 1
    assert len(b.approvals_per_week.bars) == 8
    html = response.content.decode()
    assert html.count("<svg") >= 3  # two charts, besides the bell in the navigation
    assert 'id="reviewer-workload"' in html and 'id="stage-times"' in html


def test_percentiles_are_nearest_rank_values():
    values = [float(v) for v in range(1, 11)]
    assert percentile(values, 0.9) == 9.0
    assert percentile([4.0], 0.9) == 4.0
    assert percentile([], 0.9) is None


def test_an_empty_chart_draws_no_bar():
    chart = bar_chart("Nothing", [("a", 0), ("b", 0)])
    assert [bar.height for bar in chart.bars] == [0.0, 0.0]


# --- bulk actions -------------------------------------------------------------------------


def test_bulk_assign_assigns_the_reviewer_per_project_and_reports_each_refusal(scene):
    p = scene.p
    stage_one = current_stage(p.project).definition
    services.assignment_create(
        project=p.other_project,
        actor=p.ian,
        reviewer=p.tina,
        role="staff",
        stage_definition=p.other_project.template.stages.get(order=2),
    )
    before = AuditEvent.objects.filter(verb="review.assign").count()
    response = client_for(p.ian).post(
        bulk_url(p.course),
        {
            "action": "assign",
            "projects": [p.project.pk, p.other_project.pk, scene.changes.pk],
            "reviewer": p.tina.pk,
            "role": "staff",
            "assign_stage": "2",
            "next": board_url(p.course, overdue=1),
        },
    )
    assert response.status_code == 302
    assert response["Location"] == board_url(p.course, overdue=1)
    assigned = ReviewAssignment.objects.filter(reviewer=p.tina, state="active")
    assert {a.project_id for a in assigned} == {p.project.pk, p.other_project.pk, scene.changes.pk}
    assert all(a.stage_definition.order == 2 for a in assigned)
    assert stage_one.order == 1
    assert AuditEvent.objects.filter(verb="review.assign").count() == before + 2
    texts = [str(m) for m in get_messages(response.wsgi_request)]
    assert any("Bus delays" in t and "Triage assistant" in t for t in texts)
    assert any(t.startswith("Crop yield forecaster:") and "already" in t for t in texts)


def test_bulk_due_moves_the_current_cycle_stage_of_that_order(scene):
    p = scene.p
    new_date = timezone.localdate() + dt.timedelta(days=10)
    response = client_for(p.tina).post(
        bulk_url(p.course),
        {
            "action": "due",
            "projects": [p.project.pk, p.other_project.pk],
            "due_stage": "2",
            "due_date": new_date.isoformat(),
        },
    )
    assert response.status_code == 302
    assert response["Location"] == board_url(p.course)
    for project in (p.project, p.other_project):
        stage = ProjectStage.objects.get(project=project, cycle=1, definition__order=2)
        assert stage.due_date == new_date
    events = AuditEvent.objects.filter(verb="stage.set_due_date")
    assert {e.project_id for e in events} == {p.project.pk, p.other_project.pk}


def test_bulk_nudge_notifies_each_team_once_a_day_and_audits_each_project(scene):
    p = scene.p
    client = client_for(p.ian)
    data = {
        "action": "nudge",
        "projects": [p.project.pk, p.other_project.pk, scene.stopped.pk],
        "message": "The deadline is Friday.",
    }
    response = client.post(bulk_url(p.course), data)
    assert response.status_code == 302
    nudges = Notification.objects.filter(kind=NotificationKind.NUDGE)
    assert sorted(n.recipient.email for n in nudges) == [
        "alice@example.test",
        "bob@example.test",
        "carol@example.test",
    ]
    assert all(n.body == "The deadline is Friday." for n in nudges)
    events = AuditEvent.objects.filter(verb="project.nudge")
    assert {e.project_id for e in events} == {p.project.pk, p.other_project.pk}
    assert all(e.actor_id == p.ian.pk for e in events)
    texts = [str(m) for m in get_messages(response.wsgi_request)]
    assert "Exam proctor: the project is concluded." in texts

    again = client.post(bulk_url(p.course), data)
    assert Notification.objects.filter(kind=NotificationKind.NUDGE).count() == 3
    assert AuditEvent.objects.filter(verb="project.nudge").count() == 2
    texts = [str(m) for m in get_messages(again.wsgi_request)]
    assert "Triage assistant: already nudged by you today." in texts

    # Another member of staff nudging the same day is a separate nudge.
    client_for(p.tina).post(bulk_url(p.course), {**data, "projects": [p.project.pk]})
    assert Notification.objects.filter(kind=NotificationKind.NUDGE).count() == 5


def test_nudging_is_for_course_staff_and_projects_of_their_course(scene):
    p = scene.p
    with pytest.raises(NotAllowed):
        services.nudge_projects(course=p.course, actor=p.alice, projects=[p.project], message="")
    other_course = CourseFactory()
    enrol(other_course, p.ian, Role.INSTRUCTOR)
    with pytest.raises(NotAllowed):
        services.nudge_projects(course=other_course, actor=p.ian, projects=[p.project], message="")
    assert not Notification.objects.filter(kind=NotificationKind.NUDGE).exists()


def test_an_incomplete_bulk_action_changes_nothing_and_says_why(scene):
    p = scene.p
    response = client_for(p.ian).post(
        bulk_url(p.course), {"action": "due", "projects": [p.project.pk], "due_stage": "2"}
    )
    assert response.status_code == 302
    texts = [str(m) for m in get_messages(response.wsgi_request)]
    assert any(t.startswith("Nothing was changed") and "New due date" in t for t in texts)
    assert not AuditEvent.objects.filter(verb="stage.set_due_date").exists()


def test_projects_of_another_course_cannot_be_selected(scene):
    p = scene.p
    elsewhere = CourseFactory()
    student = UserFactory(email="zoe@example.test")
    enrol(elsewhere, student, Role.STUDENT)
    foreign = lifecycle_services.project_create(course=elsewhere, actor=student, title="Foreign")
    client_for(p.ian).post(
        bulk_url(p.course), {"action": "nudge", "projects": [foreign.pk], "message": "Hi"}
    )
    assert not Notification.objects.filter(kind=NotificationKind.NUDGE).exists()


# --- access -------------------------------------------------------------------------------


def test_staff_of_another_course_get_404_on_the_board_and_its_bulk_actions(scene):
    elsewhere = CourseFactory()
    stranger = UserFactory(email="prof.x@example.test")
    enrol(elsewhere, stranger, Role.INSTRUCTOR)
    client = client_for(stranger)
    assert client.get(board_url(scene.p.course)).status_code == 404
    response = client.post(
        bulk_url(scene.p.course),
        {"action": "nudge", "projects": [scene.reviewing.pk], "message": "Hi"},
    )
    assert response.status_code == 404
    assert client.get(board_url(elsewhere)).status_code == 200


@pytest.mark.parametrize("persona", ["alice", "carol", "erin", "oscar"])
def test_students_experts_and_outsiders_get_404(scene, persona):
    user = getattr(scene.p, persona)
    assert client_for(user).get(board_url(scene.p.course)).status_code == 404


def test_anonymous_visitors_are_sent_to_sign_in_and_get_is_refused_on_bulk(scene):
    response = Client().get(board_url(scene.p.course))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert client_for(scene.p.ian).get(bulk_url(scene.p.course)).status_code == 405


def test_the_course_page_links_staff_to_the_dashboard(scene):
    url = reverse("lifecycle:course_detail", args=[scene.p.course.pk])
    assert board_url(scene.p.course) in client_for(scene.p.tina).get(url).content.decode()
    assert board_url(scene.p.course) not in client_for(scene.p.alice).get(url).content.decode()


def test_the_board_is_a_function_of_the_course_only(scene):
    board = course_board(course=scene.p.course)
    assert board.total == 4
