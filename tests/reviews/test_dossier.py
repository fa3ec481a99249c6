"""The project dossier: a printable page and a PDF of a project's whole review history."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from factories import current_stage, declare_no_conflict, fill_and_submit

from lifecycle.audit import chain_head
from lifecycle.models import AuditEvent, QuestionKind
from reviews import services
from reviews.models import Comment, Decision

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert('dossier')</script>"


def _long_text_key(stage: Any) -> str:
    return next(q.key for q in stage.definition.questions.all() if q.kind == QuestionKind.LONG_TEXT)


def _short_text_key(stage: Any) -> str | None:
    return next(
        (q.key for q in stage.definition.questions.all() if q.kind == QuestionKind.SHORT_TEXT),
        None,
    )


def invite_expert(p: Any, project: Any) -> None:
    """Erin reviews the whole project as a domain expert (and still is no one who may read
    its dossier)."""
    _, token = services.invitation_create(
        actor=p.tina, course=p.course, project=project, email=p.erin.email
    )
    services.invitation_accept(token=token, user=p.erin)
    declare_no_conflict(project, p.erin)


def review_one_stage(p: Any, project: Any, member: Any, *, note: str = "") -> Any:
    """Revision 1 gets a request for changes on a question and a comment thread; revision 2
    is approved by the TA (and the expert, where the gate wants one). Returns the stage."""
    stage = current_stage(project)
    key = _long_text_key(stage)
    first = fill_and_submit(stage, member, **{key: f"First **draft** {note}"})
    services.decision_record(
        revision=first,
        reviewer=p.tina,
        outcome="request_changes",
        comment="Name the clinics.",
        question_key=key,
    )
    thread = services.comment_add(
        revision=first, author=p.tina, body="Which clinics?", question_key=key
    )
    services.comment_add(revision=first, author=member, body="Rural ones.", parent=thread)
    services.comment_resolve(comment=thread, actor=member)
    second = fill_and_submit(stage, member, **{key: f"Second **draft**: rural clinics {note}"})
    services.decision_record(revision=second, reviewer=p.tina, outcome="approve")
    stage.refresh_from_db()
    if stage.status == "in_review":  # the stage's gate also wants a domain expert
        services.decision_record(revision=second, reviewer=p.erin, outcome="approve")
        stage.refresh_from_db()
    assert stage.status == "approved"
    return stage


@pytest.fixture
def reviewed(personas):
    """Stage 1 reviewed over two revisions; stage 2 approved by instructor override."""
    p = personas
    invite_expert(p, p.project)
    review_one_stage(p, p.project, p.alice)
    stage = current_stage(p.project)
    fill_and_submit(stage, p.bob)
    services.stage_override(
        stage=stage, actor=p.ian, justification="The expert is ill; the clinic signed off."
    )
    return p


def dossier_url(project: Any, *, pdf: bool = False) -> str:
    name = "reviews:project_dossier_pdf" if pdf else "reviews:project_dossier"
    return reverse(name, args=[project.pk])


def get_as(user: Any, url: str) -> Any:
    client = Client()
    client.force_login(user)
    return client.get(url)


def test_the_dossier_shows_approved_answers_decisions_comments_and_the_override(reviewed):
    p = reviewed
    html = get_as(p.alice, dossier_url(p.project)).content.decode()

    # The approved answer, its Markdown rendered; the first revision's text only in the diff.
    assert "Second <strong>draft</strong>: rural clinics" in html
    assert "<del>First</del>" in html or "<del>First " in html
    # Decisions: reviewer, role, meaning; the request for changes is stale now.
    assert "Tina</strong> (Course staff)" in html
    assert "Dr Erin Chen</strong> (Domain expert)" in html
    assert "approved revision 2" in html
    assert "requested changes on question " in html and "Name the clinics." in html
    assert 'data-state="stale"' in html
    # Comment thread with its reply, resolved.
    assert "Which clinics?" in html and "Rural ones." in html
    assert 'data-resolved="1"' in html
    # The override, flagged at the top with its justification.
    assert 'id="overrides"' in html
    assert "Approved by instructor override" in html
    assert "The expert is ill; the clinic signed off." in html
    # The stakeholder register.
    assert "Teachers" in html and "Deskilling" in html


def test_the_dossier_prints_the_chain_head_and_the_projects_event_count(reviewed):
    p = reviewed
    count, head = chain_head()
    html = get_as(p.tina, dossier_url(p.project)).content.decode()
    assert f'<span class="hash" id="chain-head">{head}</span>' in html
    assert f'<td id="chain-count">{count}</td>' in html
    events = AuditEvent.objects.filter(project=p.project).count()
    assert f'<td id="project-event-count">{events}</td>' in html


def test_a_changed_decision_is_marked_replaced(reviewed):
    p = reviewed
    stage = current_stage(p.project)
    revision = fill_and_submit(stage, p.alice)
    services.decision_record(
        revision=revision, reviewer=p.tina, outcome="request_changes", comment="Too vague."
    )
    services.decision_record(
        revision=revision,
        reviewer=p.ian,
        outcome="request_changes",
        comment="Agreed.",
    )
    assert Decision.objects.filter(revision=revision).count() == 2
    # Tina changes her mind on the same revision: the earlier decision is kept, replaced.
    Decision.objects.filter(revision=revision, reviewer=p.tina).update(
        replaced_at=revision.created_at
    )
    html = get_as(p.alice, dossier_url(p.project)).content.decode()
    assert 'data-state="replaced"' in html
    assert "requested changes on revision 1: Too vague." in html


@pytest.mark.parametrize(
    ("persona", "status"),
    [
        ("alice", 200),
        ("bob", 200),
        ("tina", 200),
        ("ian", 200),
        ("carol", 404),
        ("erin", 404),
        ("oscar", 404),
    ],
)
def test_only_the_team_and_course_staff_see_the_dossier(reviewed, persona, status):
    response = get_as(getattr(reviewed, persona), dossier_url(reviewed.project))
    assert response.status_code == status


def test_an_anonymous_visitor_is_sent_to_sign_in(reviewed):
    for pdf in (False, True):
        response = Client().get(dossier_url(reviewed.project, pdf=pdf))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("accounts:login"))


def test_the_dossier_takes_no_post(reviewed):
    client = Client()
    client.force_login(reviewed.alice)
    assert client.post(dossier_url(reviewed.project)).status_code == 405
    assert client.post(dossier_url(reviewed.project, pdf=True)).status_code == 405


def test_a_script_in_an_answer_or_a_comment_never_reaches_the_dossier_as_a_tag(personas):
    p = personas
    stage = current_stage(p.project)
    overrides = {_long_text_key(stage): f"Markdown {SCRIPT}"}
    short = _short_text_key(stage)
    if short:
        overrides[short] = f"Short {SCRIPT}"
    revision = fill_and_submit(stage, p.alice, **overrides)
    services.comment_add(revision=revision, author=p.tina, body=f"Comment {SCRIPT}")
    services.decision_record(
        revision=revision, reviewer=p.tina, outcome="request_changes", comment=f"No {SCRIPT}"
    )
    assert Comment.objects.filter(body__contains="<script>").exists()
    html = get_as(p.alice, dossier_url(p.project)).content.decode()
    assert "alert(&#x27;dossier&#x27;)" in html or "alert('dossier')" in html  # the text stays
    assert "<script>alert" not in html
    # Only the page's own script tags (base.html's vendored scripts) remain.
    assert html.count("<script") == html.count('<script src="/static/')


def test_the_pdf_fetches_only_local_static_files():
    from reviews.dossier_pdf import static_file_path, url_fetcher

    fetcher = url_fetcher()
    css = fetcher.fetch("http://testserver/static/css/dossier-print.css")
    assert b"WeasyPrint" in css.read()
    for refused in (
        "http://example.org/static/../config/settings/base.py",
        "http://testserver/static/../../etc/passwd",
        "file:///etc/passwd",
        "https://cdn.example.org/bootstrap.css",
        "http://testserver/media/upload.png",
    ):
        with pytest.raises(ValueError):
            fetcher.fetch(refused)
    assert static_file_path("../manage.py") is None


def _dossier_queries(user: Any, project: Any) -> int:
    client = Client()
    client.force_login(user)
    client.get(dossier_url(project))  # warm caches (sessions, Markdown renders)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(dossier_url(project)).status_code == 200
    return len(queries)


def test_the_dossier_query_count_does_not_grow_with_the_history(personas):
    p = personas
    invite_expert(p, p.project)
    invite_expert(p, p.other_project)
    review_one_stage(p, p.project, p.alice, note="small")
    for _ in range(3):
        review_one_stage(p, p.other_project, p.carol, note="large")
    small = _dossier_queries(p.ian, p.project)
    large = _dossier_queries(p.ian, p.other_project)
    # Three stages of two revisions each; stages 1 and 3 also wait for the expert.
    assert Decision.objects.filter(revision__stage__project=p.other_project).count() == 8
    assert small == large
