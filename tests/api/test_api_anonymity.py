"""Anonymous reviewers (a course setting) hold in the API as on the pages: the team reads a
label where the reviewer's name would be, with no id; staff and the reviewers read names."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse
from factories import fill_and_submit

from lifecycle.models import ProjectStage
from reviews.services import comment_add, decision_record

pytestmark = pytest.mark.django_db


def test_the_team_reads_labels_staff_read_names(world):
    p = world.p
    p.course.anonymous_reviewers = True
    p.course.save(update_fields=["anonymous_reviewers"])
    stage = ProjectStage.objects.get(pk=p.project.current_stage_id)
    revision = fill_and_submit(stage, p.alice)
    comment_add(revision=revision, author=p.erin, body="Which clinics?")
    decision_record(
        revision=revision, reviewer=p.erin, outcome="request_changes", comment="Name the clinics."
    )
    urls = [
        reverse("api:revision_decisions", args=[revision.pk]),
        reverse("api:revision_comments", args=[revision.pk]),
        reverse("api:stage", args=[stage.pk]),
    ]
    for url in urls:
        team = world.client("alice").get(url)
        assert team.status_code == 200
        text = json.dumps(team.json())
        assert "Erin" not in text and "erin@" not in text, url
        staff = json.dumps(world.client("tina").get(url).json())
        assert "Dr Erin Chen" in staff, url
    decisions = world.client("alice").get(urls[0]).json()
    assert decisions[0]["reviewer"] == {"id": None, "name": "Reviewer A, domain expert"}
