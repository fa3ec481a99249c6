"""Every evidence URL x every persona → exactly the status the revision's access allows (404 for
whoever may not see the project), the wrong method, and the headers that keep an uploaded file
from ever running as active content on the board's origin."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from evidence_samples import CSV, notebook, pdf, png
from factories import advance_to, complete_answers

from evidence import services as evidence_services
from evidence.models import DraftEvidence, RevisionEvidence
from lifecycle import services
from reviews import services as review_services

pytestmark = pytest.mark.django_db

PERSONAS = ["alice", "bob", "carol", "tina", "ian", "erin", "oscar", "anonymous"]


@pytest.fixture
def world(personas):
    p = personas
    stage = advance_to(p.project, 5, team_member=p.alice, reviewer=p.ian)
    review_services.assignment_create(
        project=p.project,
        actor=p.tina,
        reviewer=p.erin,
        role="expert",
        stage_definition=stage.definition,
    )
    for name, data in (("matrix.png", png()), ("errors.csv", CSV), ("nb.ipynb", notebook())):
        evidence_services.evidence_attach(
            stage=stage, actor=p.alice, question_key="subgroup-margins", name=name, data=data
        )
    stage.refresh_from_db()
    services.stage_save_draft(
        stage=stage,
        actor=p.alice,
        answers=complete_answers(stage),
        base_version=stage.draft_version,
    )
    revision = services.stage_submit(stage=stage, actor=p.alice)
    # A new draft file after submission: the draft's, not the revision's.
    services.stage_request_changes(stage=stage, revision=revision, actor=p.ian, reason="More.")
    stage.refresh_from_db()
    draft_only = evidence_services.evidence_attach(
        stage=stage, actor=p.bob, question_key="subgroup-margins", name="report.pdf", data=pdf()
    )
    return p, stage, revision, draft_only


def client_for(p, who):
    client = Client()
    if who != "anonymous":
        client.force_login(getattr(p, who))
    return client


REVISION_ALLOWED = {"alice", "bob", "tina", "ian", "erin"}
DRAFT_ALLOWED = {"alice", "bob", "tina", "ian"}


@pytest.mark.parametrize("who", PERSONAS)
def test_every_file_url_answers_only_those_who_may_see_it(world, who):
    p, _stage, revision, draft_only = world
    client = client_for(p, who)
    frozen = list(RevisionEvidence.objects.filter(revision=revision))
    assert len(frozen) == 3
    for f in frozen:
        for variant in ("view", "download"):
            response = client.get(reverse("evidence:revision_file", args=[f.pk, variant]))
            expected = 200 if who in REVISION_ALLOWED else (302 if who == "anonymous" else 404)
            assert response.status_code == expected, (who, f.name, variant)
    for variant in ("view", "download"):
        response = client.get(reverse("evidence:draft_file", args=[draft_only.pk, variant]))
        expected = 200 if who in DRAFT_ALLOWED else (302 if who == "anonymous" else 404)
        assert response.status_code == expected, (who, "draft", variant)


@pytest.mark.parametrize("who", PERSONAS)
def test_only_the_team_uploads_and_removes(world, who):
    p, stage, _revision, draft_only = world
    client = client_for(p, who)
    url = reverse("evidence:upload", args=[stage.pk, "subgroup-margins"])
    response = client.post(url, {"file": _upload("extra.png", png(12, 12))})
    team = who in ("alice", "bob")
    if who == "anonymous":
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    else:
        assert response.status_code == (302 if team else 404)
    assert DraftEvidence.objects.filter(name="extra.png").exists() == team
    response = client.post(reverse("evidence:remove", args=[draft_only.pk]))
    assert DraftEvidence.objects.filter(pk=draft_only.pk).exists() != team


def test_the_wrong_method_is_refused(world):
    p, stage, revision, draft_only = world
    client = client_for(p, "alice")
    frozen = RevisionEvidence.objects.filter(revision=revision).first()
    assert (
        client.post(reverse("evidence:revision_file", args=[frozen.pk, "view"])).status_code == 405
    )
    assert client.get(reverse("evidence:remove", args=[draft_only.pk])).status_code == 405
    url = reverse("evidence:upload", args=[stage.pk, "subgroup-margins"])
    assert client.get(url).status_code == 405


def test_uploads_need_the_csrf_token(world):
    p, stage, _revision, _draft = world
    client = Client(enforce_csrf_checks=True)
    client.force_login(p.alice)
    url = reverse("evidence:upload", args=[stage.pk, "subgroup-margins"])
    assert client.post(url, {"file": _upload("x.png", png())}).status_code == 403


def test_a_refused_upload_says_why_on_the_stage_page(world):
    p, stage, _revision, _draft = world
    client = client_for(p, "alice")
    url = reverse("evidence:upload", args=[stage.pk, "subgroup-margins"])
    response = client.post(url, {"file": _upload("evil.png", pdf())}, follow=True)
    assert "Not attached" in response.content.decode()
    assert "does not match" in response.content.decode()


def _headers(response):
    return {k.lower(): v for k, v in response.items()}


def test_served_files_never_run_as_active_content(world):
    p, _stage, revision, _draft = world
    client = client_for(p, "erin")
    by_name = {f.name: f for f in RevisionEvidence.objects.filter(revision=revision)}
    for name, f in by_name.items():
        download = client.get(reverse("evidence:revision_file", args=[f.pk, "download"]))
        h = _headers(download)
        assert h["content-disposition"].startswith("attachment"), name
        assert h["x-content-type-options"] == "nosniff"
        assert h["content-security-policy"].startswith("sandbox"), name
    notebook_view = client.get(
        reverse("evidence:revision_file", args=[by_name["nb.ipynb"].pk, "view"])
    )
    h = _headers(notebook_view)
    assert h["content-type"].startswith("text/html")
    assert h["content-security-policy"].startswith("sandbox")
    assert "script-src" not in h["content-security-policy"]
    assert b"Subgroup error rates" in b"".join(notebook_view.streaming_content)
    image = client.get(reverse("evidence:revision_file", args=[by_name["matrix.png"].pk, "view"]))
    assert _headers(image)["content-type"] == "image/png"
    assert b"".join(image.streaming_content) == png()
    csv_view = client.get(
        reverse("evidence:revision_file", args=[by_name["errors.csv"].pk, "view"])
    )
    assert _headers(csv_view)["content-disposition"].startswith("attachment")


def test_the_review_page_shows_the_files_inline_with_a_table_preview(world):
    p, stage, revision, _draft = world
    client = client_for(p, "erin")
    response = client.get(
        reverse("reviews:review_stage", args=[stage.pk]) + f"?revision={revision.number}"
    )
    html = response.content.decode()
    assert response.status_code == 200
    frozen = {f.name: f for f in RevisionEvidence.objects.filter(revision=revision)}
    assert (
        f'<img src="{reverse("evidence:revision_file", args=[frozen["matrix.png"].pk, "view"])}"'
        in html
    )
    assert (
        f'src="{reverse("evidence:revision_file", args=[frozen["nb.ipynb"].pk, "view"])}"' in html
    )
    assert "<td>women 65+</td>" in html
    assert "report.pdf" not in html  # the draft's new file is not the revision's


def test_the_review_page_lists_added_removed_and_replaced_files(world):
    p, stage, revision, _draft = world
    client = client_for(p, "ian")
    # ian requested changes on revision 1; the team replaces a file and resubmits.
    evidence_services.evidence_attach(
        stage=stage,
        actor=p.alice,
        question_key="subgroup-margins",
        name="matrix.png",
        data=png(30, 30),
    )
    stage.refresh_from_db()
    second = services.stage_submit(stage=stage, actor=p.alice)
    assert second.number == 2
    from reviews.models import Decision

    Decision.objects.create(
        revision=revision, reviewer=p.ian, role="staff", outcome="request_changes", comment="More."
    )
    html = client.get(reverse("reviews:review_stage", args=[stage.pk])).content.decode()
    assert 'data-change="replaced"' in html
    assert 'data-change="added"' in html  # report.pdf


def _upload(name, data):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data)
