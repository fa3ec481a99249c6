"""The persona matrix: every API operation by every persona, each answer exactly what the same
person gets from the pages (404 for what they may not see, 403 for what they see but may not
do). The operations come from the router: a new path or method without a row here fails."""

from __future__ import annotations

from typing import Any

import pytest
from api_support import PERSONAS, ApiWorld, make_world, some_notification_of
from django.urls import URLPattern, reverse
from evidence_samples import png
from factories import fill_and_submit

from api import urls as api_urls
from evidence.models import RevisionEvidence
from evidence.services import evidence_attach
from lifecycle.models import ProjectStage
from reviews.models import ReviewerRole
from reviews.services import comment_add

pytestmark = pytest.mark.django_db

PUBLIC = {"schema", "docs"}
SEE_PROJECT = {
    "alice": 200,
    "bob": 200,
    "tina": 200,
    "ian": 200,
    "carol": 404,
    "erin": 404,
    "oscar": 404,
}
SEE_STAGE = {**SEE_PROJECT, "erin": 200}
STAFF_ONLY = {p: 404 for p in PERSONAS} | {"tina": 200, "ian": 200}
EVERYONE = dict.fromkeys(PERSONAS, 200)
COURSE = {**dict.fromkeys(("alice", "bob", "carol", "tina", "ian"), 200), "erin": 404, "oscar": 404}

# name -> method -> (path arguments, body, expected status per persona)
MATRIX: dict[str, dict[str, tuple[str, Any, dict[str, int]]]] = {
    "me": {"get": ("", None, EVERYONE)},
    "courses": {"get": ("", None, EVERYONE)},
    "course": {"get": ("course", None, COURSE)},
    "projects": {"get": ("", None, EVERYONE)},
    "project": {"get": ("project", None, SEE_PROJECT)},
    "project_stages": {"get": ("project", None, SEE_PROJECT)},
    "project_stakeholders": {"get": ("project", None, SEE_PROJECT)},
    "project_audit": {"get": ("project", None, STAFF_ONLY)},
    "project_audit_jsonl": {"get": ("project", None, STAFF_ONLY)},
    "stage": {"get": ("stage", None, SEE_STAGE)},
    "stage_revisions": {"get": ("stage", None, SEE_STAGE)},
    # The stage is in review: the team's save and submit are refused as the page refuses them.
    "stage_draft": {
        "put": (
            "stage",
            {"base_version": 0, "answers": {}},
            {**SEE_STAGE, "alice": 409, "bob": 409, "tina": 403, "ian": 403, "erin": 403},
        )
    },
    "stage_submit": {
        "post": (
            "stage",
            {},
            {**SEE_STAGE, "alice": 409, "bob": 409, "tina": 403, "ian": 403, "erin": 403},
        )
    },
    "revision": {"get": ("revision", None, SEE_STAGE)},
    "revision_decisions": {
        "get": ("revision", None, SEE_STAGE),
        "post": (
            "revision",
            {"outcome": "approve"},
            {**SEE_STAGE, "alice": 403, "bob": 403, "tina": 201, "ian": 201, "erin": 201},
        ),
    },
    "revision_comments": {
        "get": ("revision", None, SEE_STAGE),
        "post": (
            "revision",
            {"body": "A question."},
            {**SEE_STAGE, **dict.fromkeys(("alice", "bob", "tina", "ian", "erin"), 201)},
        ),
    },
    "comment_resolve": {
        "post": ("comment", None, {**SEE_STAGE, "tina": 403, "ian": 403, "erin": 403}),
    },
    # The draft's files are the team's and staff's (as on the stage page); frozen files are
    # everyone's who sees the stage. Uploads wait for the draft: the stage is in review.
    "stage_evidence": {
        "get": ("stage", None, SEE_PROJECT),
        "post": (
            "stage",
            "upload",
            {**SEE_PROJECT, "alice": 409, "bob": 409, "tina": 403, "ian": 403},
        ),
    },
    "revision_evidence": {"get": ("revision", None, SEE_STAGE)},
    "draft_file": {"get": ("draft_file", None, SEE_PROJECT)},
    "revision_file": {"get": ("revision_file", None, SEE_STAGE)},
    "project_risks": {"get": ("project", None, SEE_PROJECT)},
    "notifications": {"get": ("", None, EVERYONE)},
    "notification_read": {
        "post": ("notification", None, {**dict.fromkeys(PERSONAS, 404), "erin": 200})
    },
}


def _body(body: Any) -> Any:
    if body == "upload":
        from django.core.files.uploadedfile import SimpleUploadedFile

        image = SimpleUploadedFile("matrix.png", png(), content_type="image/png")
        return {"question_key": "problem-statement", "file": image}
    return body


def _patterns() -> list[URLPattern]:
    return [p for p in api_urls.urlpatterns if p.name not in PUBLIC]


def _methods(pattern: URLPattern) -> set[str]:
    view = pattern.callback.view_class  # type: ignore[attr-defined]
    return {m for m in ("get", "post", "put", "patch", "delete") if hasattr(view, m)}


def test_every_operation_of_the_router_has_a_row():
    missing = []
    for pattern in _patterns():
        row = MATRIX.get(pattern.name, {})
        for method in _methods(pattern):
            if method not in row:
                missing.append(f"{method.upper()} {pattern.name}")
    assert not missing, f"Add these operations to MATRIX: {missing}"
    stale = set(MATRIX) - {p.name for p in _patterns()}
    assert not stale, f"MATRIX names operations that no longer exist: {stale}"


@pytest.fixture(scope="module")
def world(module_personas) -> ApiWorld:
    """The API's personas and tokens, built once for the whole matrix (tests/conftest.py,
    module_db): every case runs in a savepoint of the module's transaction and starts from
    these same rows."""
    return make_world(module_personas)


@pytest.fixture(scope="module")
def objects(world) -> dict[str, int]:
    """A stage in review with a draft file, its revision, a comment and a notification."""
    return _objects(world)


def _objects(world) -> dict[str, int]:
    p = world.p
    stage = ProjectStage.objects.select_related("project").get(pk=p.project.current_stage_id)
    draft_file = evidence_attach(
        stage=stage, actor=p.alice, question_key="problem-statement", name="flow.png", data=png()
    )
    revision = fill_and_submit(stage, p.alice)
    comment = comment_add(revision=revision, author=p.erin, body="Which clinics?", question_key="")
    return {
        "draft_file": draft_file.pk,
        "revision_file": RevisionEvidence.objects.get(revision=revision).pk,
        "course": p.course.pk,
        "project": p.project.pk,
        "stage": stage.pk,
        "revision": revision.pk,
        "comment": comment.pk,
        "notification": some_notification_of(p.erin).pk,
    }


CASES = [
    (name, method, who)
    for name, methods in MATRIX.items()
    for method in methods
    for who in (*PERSONAS, None)
]


@pytest.mark.parametrize(("name", "method", "who"), CASES)
def test_persona_matrix(world, objects, name, method, who):
    arg, body, expected = MATRIX[name][method]
    url = reverse(f"api:{name}", args=[objects[arg]] if arg else [])
    client = world.client(who)
    call = getattr(client, method)
    response = call(url, _body(body)) if method != "get" else call(url)
    want = 401 if who is None else expected[who]
    assert response.status_code == want, (name, method, who, response.content[:300])
    if want >= 400:
        assert response["Content-Type"] == "application/problem+json"


# Scopes: a token without the scope an operation needs gets 403 whoever owns it.
NEEDS = {
    ("stage_draft", "put"): "draft",
    ("stage_submit", "post"): "draft",
    ("revision_decisions", "post"): "review",
    ("comment_resolve", "post"): "draft",
    ("notification_read", "post"): "read",
    ("stage_evidence", "post"): "draft",
}


@pytest.mark.parametrize(("name", "method"), [(n, m) for n, ms in MATRIX.items() for m in ms])
def test_scope_matrix(world, objects, name, method):
    """Each operation with a token of every scope but the one it needs: 403; with only that
    scope (plus read for reads): not a scope refusal."""
    arg, body, expected = MATRIX[name][method]
    who = next(p for p, code in expected.items() if code not in (403, 404))
    if (name, method) == ("revision_comments", "post"):
        needed = "review" if who in ("tina", "ian", "erin") else "draft"
    else:
        needed = "read" if method == "get" else NEEDS[(name, method)]
    url = reverse(f"api:{name}", args=[objects[arg]] if arg else [])
    without = [s for s in ("read", "draft", "review") if s != needed]
    denied = getattr(world.client(who, without), method)(
        url, *([_body(body)] if method != "get" else [])
    )
    assert denied.status_code == 403, (name, method, who)
    assert needed in denied.json()["detail"]
    only = getattr(world.client(who, [needed]), method)(
        url, *([_body(body)] if method != "get" else [])
    )
    assert only.status_code == expected[who], (name, method, who, only.content[:300])


def test_the_team_comments_with_draft_and_reviewers_with_review(world, objects):
    url = reverse("api:revision_comments", args=[objects["revision"]])
    assert world.client("alice", ["read", "review"]).post(url, {"body": "x"}).status_code == 403
    assert world.client("alice", ["read", "draft"]).post(url, {"body": "x"}).status_code == 201
    assert world.client("erin", ["read", "draft"]).post(url, {"body": "x"}).status_code == 403
    assert world.client("erin", ["read", "review"]).post(url, {"body": "x"}).status_code == 201
    assert ReviewerRole.EXPERT  # the expert is one through her assignment, not the course
