"""The demo data: three teams spread over the stages, idempotent, refused in production."""

from __future__ import annotations

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import RequestFactory

from lifecycle.audit import verify_chain
from lifecycle.models import AuditEvent, Course, Outcome, Project, ProjectStatus, StageStatus
from reviews.demo import DEMO_PASSWORD, PEOPLE
from reviews.models import Decision

pytestmark = pytest.mark.django_db


def test_seed_demo_creates_three_teams_spread_over_the_stages(capsys):
    call_command("seed_demo")
    out = capsys.readouterr().out
    course = Course.objects.get(code="dl-demo")
    assert course.projects.count() == 3

    triage = Project.objects.get(title="Referral triage assistant")
    assert triage.current_stage.definition.order == 3
    assert triage.current_stage.status == StageStatus.CHANGES_REQUESTED

    crops = Project.objects.get(title="Crop disease detector")
    assert crops.cycle == 2
    assert crops.current_stage.definition.order == 3
    assert crops.current_stage.cycle == 2
    assert crops.current_stage.prefilled_from is not None
    assert crops.stages.filter(cycle=1, status=StageStatus.APPROVED).count() == 6

    bail = Project.objects.get(title="Bail risk scorer")
    assert bail.status == ProjectStatus.CONCLUDED
    assert bail.outcome == Outcome.NOT_PURSUED
    # Concluded through the reviewed proposal, not by one student.
    proposal = bail.not_pursued_proposals.get()
    assert proposal.status == "approved"
    assert proposal.current_revision.content_sha256

    for email, *_ in PEOPLE:
        assert email in out
        assert authenticate(RequestFactory().post("/"), username=email, password=DEMO_PASSWORD)
    assert DEMO_PASSWORD in out
    assert verify_chain().intact
    assert (
        Decision.objects.filter(revision__stage__project=triage, outcome="request_changes").count()
        == 1
    )
    # a TA approval on stages 1-6, and an expert's on 1, 3, 5 and 6, all in cycle 1
    crop_approvals = Decision.objects.filter(revision__stage__project=crops, outcome="approve")
    assert crop_approvals.count() == 6 + 4


def test_seed_demo_is_idempotent():
    call_command("seed_demo")
    counts = (Project.objects.count(), AuditEvent.objects.count(), Course.objects.count())
    call_command("seed_demo")
    assert (Project.objects.count(), AuditEvent.objects.count(), Course.objects.count()) == counts


def test_seed_demo_is_refused_with_production_settings(settings):
    settings.LRB_DEMO_ALLOWED = False
    with pytest.raises(CommandError, match="refused"):
        call_command("seed_demo")
    assert not Course.objects.exists()
