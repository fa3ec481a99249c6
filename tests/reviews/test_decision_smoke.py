"""The review flow end to end through the services (the detailed cases live beside this)."""

from __future__ import annotations

import pytest
from factories import current_stage, declare_no_conflict, fill_and_submit

from lifecycle.models import StageStatus
from reviews import services
from reviews.models import Decision

pytestmark = pytest.mark.django_db


def test_staff_and_expert_approval_pass_stage_one_and_open_stage_two(personas):
    p = personas
    stage = current_stage(p.project)
    services.assignment_create(
        project=p.project,
        actor=p.tina,
        reviewer=p.erin,
        role="expert",
        stage_definition=stage.definition,
    )
    declare_no_conflict(p.project, p.erin)
    revision = fill_and_submit(stage, p.alice)
    services.decision_record(revision=revision, reviewer=p.tina, outcome="approve")
    stage.refresh_from_db()
    assert stage.status == StageStatus.IN_REVIEW
    assert services.gate_for_stage(stage).missing == ["needs 1 more domain-expert approval"]
    services.decision_record(
        revision=revision,
        reviewer=p.erin,
        outcome="request_changes",
        comment="Which clinics?",
        question_key="problem-statement",
    )
    stage.refresh_from_db()
    assert stage.status == StageStatus.CHANGES_REQUESTED
    second = fill_and_submit(stage, p.alice, **{"problem-statement": "Rural and city clinics"})
    services.decision_record(revision=second, reviewer=p.erin, outcome="approve")
    services.decision_record(revision=second, reviewer=p.tina, outcome="approve")
    stage.refresh_from_db()
    assert stage.status == StageStatus.APPROVED
    assert current_stage(p.project).definition.order == 2
    assert Decision.objects.filter(revision=revision).count() == 2
