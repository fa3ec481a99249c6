"""Pushing evidence from a notebook: a confusion-matrix image uploaded to a draft answer
through the API, checked by content like the page's upload, frozen into the revision, and
downloaded byte for byte by the reviewer; the risk register read back."""

from __future__ import annotations

import hashlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from evidence_samples import png
from factories import fill_and_submit

from lifecycle.models import ProjectStage
from lifecycle.risks import risk_add

pytestmark = pytest.mark.django_db


def _upload(client, stage, name: str, data: bytes, key: str = "problem-statement"):
    return client.post(
        reverse("api:stage_evidence", args=[stage.pk]),
        {"question_key": key, "file": SimpleUploadedFile(name, data)},
    )


def test_a_notebook_pushes_an_image_the_reviewer_downloads_unchanged(world):
    stage = ProjectStage.objects.get(pk=world.p.project.current_stage_id)
    image = png(16, 16)
    alice = world.client("alice")
    uploaded = _upload(alice, stage, "confusion-matrix.png", image)
    assert uploaded.status_code == 201, uploaded.content
    row = uploaded.json()
    assert row["sha256"] == hashlib.sha256(image).hexdigest()
    assert row["file_type"] == "image" and row["size"] == len(image)
    listed = alice.get(reverse("api:stage_evidence", args=[stage.pk])).json()
    assert [f["name"] for f in listed] == ["confusion-matrix.png"]

    revision = fill_and_submit(stage, world.p.alice)
    frozen = world.client("erin").get(reverse("api:revision_evidence", args=[revision.pk])).json()
    assert [(f["name"], f["sha256"]) for f in frozen] == [("confusion-matrix.png", row["sha256"])]
    download = world.client("erin").get(frozen[0]["download"])
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == image
    assert download["Content-Disposition"].startswith("attachment")
    assert download["X-Content-Type-Options"] == "nosniff"
    assert world.client("carol").get(frozen[0]["download"]).status_code == 404


@pytest.mark.parametrize(
    ("name", "data", "why"),
    [
        ("matrix.png", b"%PDF-1.4 not an image", "match"),
        ("../../etc/passwd.png", None, "name"),
        ("notes.html", b"<script>alert(1)</script>", ""),
    ],
)
def test_hostile_uploads_are_refused_with_a_message_and_nothing_stored(world, name, data, why):
    stage = ProjectStage.objects.get(pk=world.p.project.current_stage_id)
    response = _upload(world.client("alice"), stage, name, data if data is not None else png())
    if response.status_code == 201:
        # Django's upload handling strips a path from the name: what is stored has no folder.
        assert "/" not in response.json()["name"] and why == "name"
        return
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["detail"]
    assert world.client("alice").get(reverse("api:stage_evidence", args=[stage.pk])).json() == []


def test_an_upload_to_a_question_without_files_is_refused(world):
    stage = ProjectStage.objects.get(pk=world.p.project.current_stage_id)
    key = next(
        q.key
        for q in stage.definition.questions.order_by("order")
        if q.key != "problem-statement" and q.key != "stakeholders-consulted"
    )
    response = _upload(world.client("alice"), stage, "m.png", png(), key=key)
    assert response.status_code == 400 and "does not take files" in response.json()["detail"]


def test_the_risk_register_reads_back_as_the_team_and_staff_see_it(world):
    p = world.p
    risk_add(
        project=p.project,
        actor=p.alice,
        title="Missed urgent referrals",
        likelihood=3,
        severity=5,
        mitigation="Human review of every low-priority label",
    )
    rows = world.client("tina").get(reverse("api:project_risks", args=[p.project.pk])).json()
    assert rows["count"] == 1
    assert rows["results"][0]["title"] == "Missed urgent referrals"
    assert rows["results"][0]["severity"] == 5
    assert (
        world.client("carol").get(reverse("api:project_risks", args=[p.project.pk])).status_code
        == 404
    )
