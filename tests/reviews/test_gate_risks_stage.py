"""The "risks traced" rule end to end: stage 5 of the lecture default (severity 4 and up) waits
until every severe risk in the frozen register has a mitigation and a linked test."""

from __future__ import annotations

import pytest
from factories import advance_to, complete_answers

from lifecycle import risks, services
from lifecycle.models import StageStatus
from reviews import services as review_services


@pytest.mark.django_db
def test_stage_five_waits_for_a_test_linked_to_every_severe_risk(personas):
    p = personas
    stage = advance_to(p.project, 5, team_member=p.alice, reviewer=p.ian)
    risk = risks.risk_add(
        project=p.project,
        actor=p.alice,
        title="Missed urgent referral",
        likelihood=2,
        severity=5,
        mitigation="A nurse double-checks.",
    )
    stage.refresh_from_db()
    services.stage_save_draft(
        stage=stage,
        actor=p.alice,
        answers=complete_answers(stage),
        base_version=stage.draft_version,
    )
    revision = services.stage_submit(stage=stage, actor=p.alice)
    stage.refresh_from_db()
    gate = review_services.gate_for_stage(stage)
    assert "risk “Missed urgent referral” (severity 5) needs a linked test" in gate.missing
    review_services.decision_record(revision=revision, reviewer=p.tina, outcome="approve")
    stage.refresh_from_db()
    assert stage.status == StageStatus.IN_REVIEW  # the expert and the trace still missing

    services.stage_request_changes(stage=stage, revision=revision, actor=p.ian, reason="Trace it.")
    risks.risk_update(risk=risk, actor=p.alice, test_link="test-extensively/subgroup-margins")
    stage.refresh_from_db()
    second = services.stage_submit(stage=stage, actor=p.alice)
    stage.refresh_from_db()
    gate = review_services.gate_for_stage(stage)
    assert not any("Missed urgent referral" in line for line in gate.missing)
    assert second.risks[0]["test_link"] == "test-extensively/subgroup-margins"
