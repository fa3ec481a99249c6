"""The "risks traced" gate rule: every risk of severity >= X in the frozen register has a
mitigation and a linked test before the stage passes. Property tests over the pure function,
then the rule end to end on stage 5 of the lecture default (X = 4)."""

from __future__ import annotations

import pytest
from factories import advance_to, complete_answers
from hypothesis import given, settings
from hypothesis import strategies as st

from lifecycle import risks, services
from lifecycle.models import StageStatus
from reviews import services as review_services
from reviews.gate import APPROVE, STAFF, GatePolicy, RiskTrace, Vote, evaluate_gate, untraced_risks

POLICY = GatePolicy(min_approvals=1, min_staff=1)
APPROVED = [Vote(1, "Tina", STAFF, APPROVE, 7)]

risk_traces = st.lists(
    st.builds(
        RiskTrace,
        title=st.text(min_size=1, max_size=20),
        severity=st.integers(min_value=1, max_value=5),
        has_mitigation=st.booleans(),
        has_test=st.booleans(),
    ),
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(risk_traces, st.integers(min_value=0, max_value=5))
def test_the_gate_passes_exactly_when_every_serious_risk_is_mitigated_and_tested(risks_, x):
    result = evaluate_gate(
        POLICY, APPROVED, current_revision_id=7, risks=risks_, risk_min_severity=x
    )
    traced = all(r.has_mitigation and r.has_test for r in risks_ if x > 0 and r.severity >= x)
    assert result.satisfied == traced
    assert len(untraced_risks(risks_, x)) == sum(
        1 for r in risks_ if x > 0 and r.severity >= x and not (r.has_mitigation and r.has_test)
    )


@settings(max_examples=100, deadline=None)
@given(risk_traces)
def test_the_rule_switched_off_never_blocks(risks_):
    assert evaluate_gate(
        POLICY, APPROVED, current_revision_id=7, risks=risks_, risk_min_severity=0
    ).satisfied


@settings(max_examples=100, deadline=None)
@given(risk_traces, st.integers(min_value=1, max_value=5))
def test_the_rule_never_replaces_the_approvals(risks_, x):
    assert not evaluate_gate(
        POLICY, [], current_revision_id=7, risks=risks_, risk_min_severity=x
    ).satisfied


def test_the_summary_names_the_risk_and_what_it_lacks():
    result = evaluate_gate(
        POLICY,
        APPROVED,
        current_revision_id=7,
        risks=[RiskTrace("Missed blight", 5, True, False), RiskTrace("Minor", 2, False, False)],
        risk_min_severity=4,
    )
    assert not result.satisfied
    assert result.missing == ["risk “Missed blight” (severity 5) needs a linked test"]


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
