"""What each page costs does not grow with the database: the same number of queries with 1 and
with 8 more projects, decisions, notifications and audit events (of the person's own course
and of other courses), and every list is paged, with the filters kept in the page links."""

from __future__ import annotations

import datetime as dt
import itertools
import re
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from factories import current_stage, fill_and_submit
from scale import seed_projects, seed_unrelated_courses

from lifecycle import services as lifecycle_services
from lifecycle.models import AuditEvent, ProjectStage, StageRevision, StageStatus
from notifications.models import Notification, NotificationKind
from reviews.views.dashboard import BOARD_PAGE_SIZE
from reviews.views.inbox import PENDING_PAGE_SIZE

_unique = itertools.count()


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _queries(client: Client, url: str) -> int:
    client.get(url)  # warm: sessions, content types, the template cache
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(captured)


def _more_notifications(user: Any, n: int) -> None:
    Notification.objects.bulk_create(
        Notification(
            recipient=user,
            email=user.email,
            kind=NotificationKind.REVIEW_REQUESTED,
            subject=f"Notification {i}",
            dedupe_key=f"page-costs-{next(_unique)}",
        )
        for i in range(n)
    )


def _more_revisions(stage: ProjectStage, n: int) -> None:
    last = stage.revisions.order_by("-number").first()
    assert last is not None
    StageRevision.objects.bulk_create(
        StageRevision(
            stage=stage,
            number=last.number + 1 + i,
            answers=last.answers,
            stakeholders=last.stakeholders,
            content_sha256=f"{next(_unique):064d}",
            created_by=last.created_by,
        )
        for i in range(n)
    )


def _grow(p: Any, stage: ProjectStage, n: int) -> None:
    """n more of everything: projects in review of the course (assigned to Tina, decided by
    Ian), other courses with theirs, notifications of Alice, revisions of her stage."""
    seed_projects(course=p.course, instructor=p.ian, ta=p.tina, projects=n)
    seed_unrelated_courses(courses=n, projects_per_course=2)
    _more_notifications(p.alice, n)
    _more_revisions(stage, n)


@pytest.fixture
def scene(personas):
    stage = current_stage(personas.project)
    fill_and_submit(stage, personas.alice)
    stage.refresh_from_db()
    return personas, stage


def _pages(p: Any, stage: ProjectStage) -> dict[str, tuple[Any, str]]:
    return {
        "home (student)": (p.alice, reverse("home")),
        "home (instructor)": (p.ian, reverse("home")),
        "project overview": (p.alice, p.project.get_absolute_url()),
        "stage page": (p.alice, stage.get_absolute_url()),
        "stage revisions": (
            p.alice,
            reverse(
                "lifecycle:stage_revisions", args=[p.project.pk, stage.cycle, stage.definition.key]
            ),
        ),
        "review page": (p.tina, reverse("reviews:review_stage", args=[stage.pk])),
        "inbox": (p.tina, reverse("reviews:inbox")),
        "board": (p.ian, reverse("reviews:board", args=[p.course.pk])),
        "course page": (p.ian, reverse("lifecycle:course_detail", args=[p.course.pk])),
        "notification centre": (p.alice, reverse("notifications:list")),
        "audit page": (p.ian, reverse("lifecycle:audit_export", args=[p.course.pk])),
    }


def test_every_page_makes_as_many_queries_with_1_as_with_8_more_of_everything(scene):
    p, stage = scene
    _grow(p, stage, 1)
    small = {name: _queries(_client(user), url) for name, (user, url) in _pages(p, stage).items()}
    _grow(p, stage, 7)
    large = {name: _queries(_client(user), url) for name, (user, url) in _pages(p, stage).items()}
    assert large == small


def _second_look(user: Any, url: str) -> int:
    client = _client(user)
    client.get(url)  # the CSRF cookie: a fragment is cached only once it is set
    client.get(url)  # renders and caches the page's content
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(captured)


def test_a_second_look_at_the_cached_pages_costs_the_same_few_queries_at_two_sizes(scene):
    """The overview and the stage page keep their content in the cache (lifecycle/freshness.py):
    a second look reads the session, the person and the project (and stage), at any size (the
    unread count is cached too)."""
    from django.core.cache import cache

    p, stage = scene
    pages = {k: v for k, v in _pages(p, stage).items() if k in ("project overview", "stage page")}
    _grow(p, stage, 1)
    small = {name: _second_look(user, url) for name, (user, url) in pages.items()}
    _grow(p, stage, 7)
    cache.clear()  # _grow bulk-creates (no signals): render the larger page afresh
    large = {name: _second_look(user, url) for name, (user, url) in pages.items()}
    assert large == small
    assert small == {"project overview": 3, "stage page": 4}


def test_the_inbox_and_a_teachers_home_ask_a_fixed_few_queries(scene):
    """The two lists of issue 9 by count, at any size (the unread count is cached). Inbox: the
    session, the user, where the person reviews (reviews.queue.reviewer_scope), the page of
    pending reviews with its counts, the latest decisions. A teacher's home: the session, the
    user, whether they teach (the student's cached home), the courses, their projects, the
    teams' names, where they review, the decisions waiting. (Were 10 and 17.)"""
    p, stage = scene
    _grow(p, stage, 8)
    assert _queries(_client(p.tina), reverse("reviews:inbox")) == 5
    assert _queries(_client(p.ian), reverse("home")) == 8
    assert _queries(_client(p.tina), reverse("home")) == 8


# --- paged lists ------------------------------------------------------------------------------


def _rows(html: str, marker: str) -> int:
    return len(re.findall(marker, html))


def test_the_board_shows_one_page_and_keeps_filters_and_sort_in_the_page_links(personas):
    p = personas
    seed_projects(course=p.course, instructor=p.ian, ta=p.tina, projects=BOARD_PAGE_SIZE + 5)
    client = _client(p.ian)
    url = reverse("reviews:board", args=[p.course.pk])
    query = "?status=in_review&sort=activity"
    first = client.get(url + query)
    html = first.content.decode()
    assert _rows(html, 'class="board-row"') == BOARD_PAGE_SIZE
    assert "page=2" in html and "status=in_review" in html
    link = re.search(r'href="(\?[^"]*page=2[^"]*)"', html)
    assert link is not None
    target = link.group(1).replace("&amp;", "&")
    assert "status=in_review" in target and "sort=activity" in target
    second = client.get(url + target)
    assert second.status_code == 200
    # The 55 seeded projects are in review, the personas' two are drafting.
    assert _rows(second.content.decode(), 'class="board-row"') == 5
    # The counts still cover the whole course, whatever the page.
    assert second.context["board"].counts.in_review == BOARD_PAGE_SIZE + 5
    assert second.context["board"].total == BOARD_PAGE_SIZE + 7


@pytest.mark.parametrize("page", ["99", "0", "-1", "abc", ""])
def test_a_board_page_out_of_range_or_malformed_shows_a_page_never_a_500(personas, page):
    p = personas
    seed_projects(course=p.course, instructor=p.ian, ta=p.tina, projects=BOARD_PAGE_SIZE + 1)
    response = _client(p.ian).get(
        reverse("reviews:board", args=[p.course.pk]), {"page": page, "sort": "title"}
    )
    assert response.status_code == 200
    # Past either end: the last page; not a number: the first.
    expected = {"99": 2, "0": 2, "-1": 2, "abc": 1, "": 1}[page]
    assert response.context["page"].number == expected


def test_the_inbox_pages_what_waits_and_counts_it_all(personas):
    p = personas
    seed_projects(course=p.course, instructor=p.ian, ta=p.tina, projects=PENDING_PAGE_SIZE + 3)
    client = _client(p.tina)
    first = client.get(reverse("reviews:inbox"))
    assert len(first.context["pending"]) == PENDING_PAGE_SIZE
    assert first.context["page"].paginator.count == PENDING_PAGE_SIZE + 3
    second = client.get(reverse("reviews:inbox"), {"page": "2"})
    assert len(second.context["pending"]) == 3
    assert {r.stage_id for r in first.context["pending"]}.isdisjoint(
        r.stage_id for r in second.context["pending"]
    )
    assert client.get(reverse("reviews:inbox"), {"page": "x"}).status_code == 200
    last = client.get(reverse("reviews:inbox"), {"page": "500"})
    assert last.status_code == 200 and last.context["page"].number == 2


def test_the_inbox_counts_overdue_reviews_over_every_page(personas):
    p = personas
    seed_projects(course=p.course, instructor=p.ian, ta=p.tina, projects=PENDING_PAGE_SIZE + 3)
    yesterday = timezone.localdate() - timezone.timedelta(days=1)
    from reviews.models import ReviewAssignment

    ReviewAssignment.objects.filter(reviewer=p.tina).update(due_date=yesterday)
    response = _client(p.tina).get(reverse("reviews:inbox"))
    assert response.context["overdue_count"] == PENDING_PAGE_SIZE + 3


def test_the_instructors_home_shows_a_few_projects_per_course_and_how_many_there_are(personas):
    from lifecycle.views.projects import HOME_PROJECTS_PER_COURSE

    p = personas
    seed_projects(course=p.course, instructor=p.ian, ta=p.tina, projects=HOME_PROJECTS_PER_COURSE)
    html = _client(p.ian).get(reverse("home")).content.decode()
    assert _rows(html, "data-project=") == HOME_PROJECTS_PER_COURSE
    total = HOME_PROJECTS_PER_COURSE + 2
    assert "2 more projects</a>" in html and f"has all {total}" in html
    # A student still sees every project of theirs.
    student_html = _client(p.alice).get(reverse("home")).content.decode()
    assert _rows(student_html, "data-project=") == 1


def test_the_course_page_pages_its_projects_for_staff(personas):
    from lifecycle.views.projects import COURSE_PAGE_SIZE

    p = personas
    seed_projects(course=p.course, instructor=p.ian, ta=p.tina, projects=COURSE_PAGE_SIZE)
    url = reverse("lifecycle:course_detail", args=[p.course.pk])
    client = _client(p.ian)
    assert _rows(client.get(url).content.decode(), "data-project=") == COURSE_PAGE_SIZE
    assert _rows(client.get(url, {"page": "2"}).content.decode(), "data-project=") == 2
    assert client.get(url, {"page": "9"}).status_code == 200


def test_the_notification_centre_shows_one_page(personas):
    from notifications.views import PAGE_SIZE

    p = personas
    _more_notifications(p.alice, PAGE_SIZE + 4)
    client = _client(p.alice)
    response = client.get(reverse("notifications:list"))
    assert len(response.context["page"].object_list) == PAGE_SIZE
    last = client.get(reverse("notifications:list"), {"page": "77"})
    assert last.status_code == 200
    assert (
        len(last.context["page"].object_list)
        == Notification.objects.filter(recipient=p.alice).count() - PAGE_SIZE
    )


def test_the_seeded_stages_are_in_review_and_audited(personas):
    """The scale helper builds what the cost tests rely on."""
    p = personas
    seed_projects(course=p.course, instructor=p.ian, ta=p.tina, projects=3)
    assert (
        ProjectStage.objects.filter(project__course=p.course, status=StageStatus.IN_REVIEW).count()
        == 3
    )
    assert AuditEvent.objects.filter(course=p.course).count() >= 12


def test_the_audit_page_lists_a_capped_number_of_projects_and_recent_event_kinds(
    personas, monkeypatch
):
    from lifecycle.views import exports

    p = personas
    monkeypatch.setattr(exports, "PROJECT_CHOICES", 3)
    monkeypatch.setattr(exports, "VERB_WINDOW", 2)
    seed_projects(course=p.course, instructor=p.ian, ta=p.tina, projects=4)
    url = reverse("lifecycle:audit_export", args=[p.course.pk])
    form = _client(p.ian).get(url).context["form"]
    listed = [value for value, _ in form.fields["project"].widget.choices if value != ""]
    assert len(listed) == 3
    assert "first 3 projects" in form.fields["project"].help_text
    latest = list(
        AuditEvent.objects.filter(course=p.course).order_by("-seq").values_list("verb", flat=True)
    )
    every = set(latest)
    assert len(every) > 2
    assert {v for v, _ in form.fields["verbs"].choices} == set(latest[:2])
    # A project or kind beyond the caps, already chosen, is listed and accepted.
    last = p.course.projects.order_by("-title", "-pk").first()
    old_verb = sorted(every - set(latest[:2]))[0]
    bound = _client(p.ian).get(url, {"project": last.pk, "verbs": old_verb, "format": "csv"})
    form = bound.context["form"] if bound.context else None
    if form is not None:  # the page again, not a download: the choice must not be an error
        assert "project" not in form.errors and "verbs" not in form.errors
        assert last.pk in [v for v, _ in form.fields["project"].widget.choices]


def test_a_board_page_reads_only_its_own_projects_and_the_summary_is_cached(personas):
    from django.core.cache import cache

    from reviews.dashboard import course_board

    p = personas
    seed_projects(course=p.course, instructor=p.ian, ta=p.tina, projects=BOARD_PAGE_SIZE + 5)
    cache.clear()
    board = course_board(course=p.course)  # computed over the course, then cached
    with CaptureQueriesContext(connection) as again:
        second = course_board(course=p.course)
    # Cached: only the course's audit head is read (the stage columns come with the summary;
    # the board's view reads the head with the course, in the same query).
    assert len(again) == 1
    assert second.total == board.total and second.counts == board.counts
    assert len(second.rows) == len(board.rows) == board.total > BOARD_PAGE_SIZE
    with CaptureQueriesContext(connection) as page:
        rows = second.rows[:2]
    assert [r.project.pk for r in rows] == [r.project.pk for r in board.rows[:2]]
    project_queries = [q["sql"] for q in page if 'FROM "lifecycle_project"' in q["sql"]]
    assert project_queries and all(" IN (" in sql for sql in project_queries)
    # A write through a service moves the trail on: the summary is computed again.
    stage = current_stage(p.project)
    lifecycle_services.stage_set_due_date(
        stage=stage, actor=p.ian, due_date=timezone.localdate() - dt.timedelta(days=3)
    )
    third = course_board(course=p.course)
    assert third.counts.overdue == board.counts.overdue + 1


# --- a gate-completing approval ---------------------------------------------------------------


def _awaiting_the_last_approval(p: Any, project: Any, author: Any) -> tuple[ProjectStage, Any]:
    """Stage 1 of ``project`` submitted by ``author`` and approved by Erin, its domain expert:
    Tina's approval is the one that satisfies the gate (as in the benchmark's approvals)."""
    from reviews import services as review_services

    stage = current_stage(project)
    _, token = review_services.invitation_create(
        actor=p.tina,
        course=p.course,
        project=project,
        stage_definition=stage.definition,
        email=p.erin.email,
    )
    review_services.invitation_accept(token=token, user=p.erin)
    review_services.conflict_declare(
        project=project, reviewer=p.erin, has_conflict=False, details="None."
    )
    revision = fill_and_submit(stage, author)
    review_services.decision_record(revision=revision, reviewer=p.erin, outcome="approve")
    stage.refresh_from_db()
    return stage, revision


def _approval_queries(p: Any, stage: ProjectStage, revision: Any) -> int:
    client = _client(p.tina)
    url = reverse("reviews:stage_decide", args=[stage.pk])
    data = {"revision": revision.pk, "outcome": "approve", "comment": "", "question_key": ""}
    with CaptureQueriesContext(connection) as captured:
        response = client.post(url, data)
    assert response.status_code == 302
    stage.refresh_from_db()
    assert stage.status == StageStatus.APPROVED  # this approval completed the gate
    return len(captured)


def test_a_gate_completing_approval_makes_as_many_queries_with_1_as_with_8_more_of_everything(
    personas,
):
    p = personas
    first, first_revision = _awaiting_the_last_approval(p, p.project, p.alice)
    second, second_revision = _awaiting_the_last_approval(p, p.other_project, p.carol)
    _grow(p, first, 1)
    small = _approval_queries(p, first, first_revision)
    _grow(p, first, 7)
    large = _approval_queries(p, second, second_revision)
    assert large == small
    # Session, user; then under the locks: the project (found by the stage's id), its team, the
    # stage (with its current revision and the grading setting), the reviewer's assignment, the
    # standing decisions, the decision, the gate's moves (stage, next stage, project), the
    # notification (its INSERT returns the ids to e-mail), and the audit chain's head and INSERT
    # at the very end (34 before the decision went through one reviewer check and one audit
    # batch; 19 while the view read the stage before the service read it again under its lock).
    # Whether the course has webhooks was asked once, by the submissions before, and is cached
    # (api.webhooks).
    assert small == 18
