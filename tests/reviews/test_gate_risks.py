"""The "risks traced" gate rule: every risk of severity >= X in the frozen register has a
mitigation and a linked test before the stage passes. Property tests over the pure function,
(test_gate_risks_stage.py runs the rule end to end on stage 5)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

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
