"""The gate as a pure function: no database."""

from __future__ import annotations

import pytest

from reviews.gate import APPROVE, EXPERT, REQUEST_CHANGES, STAFF, GatePolicy, Vote, evaluate_gate

REV = 7
DEFAULT = GatePolicy(min_approvals=2, min_staff=1, min_expert=1)


def vote(reviewer_id, role=STAFF, outcome=APPROVE, revision=REV, name=None, **kw):
    return Vote(reviewer_id, name or f"R{reviewer_id}", role, outcome, revision, **kw)


def test_one_staff_and_one_expert_approval_satisfy_the_default_gate():
    result = evaluate_gate(DEFAULT, [vote(1), vote(2, EXPERT)], current_revision_id=REV)
    assert result.satisfied
    assert (result.approvals, result.staff_approvals, result.expert_approvals) == (2, 1, 1)
    assert result.summary == "The gate is satisfied."


def test_two_staff_approvals_do_not_replace_the_expert():
    result = evaluate_gate(DEFAULT, [vote(1), vote(2)], current_revision_id=REV)
    assert not result.satisfied
    assert result.missing == ["needs 1 more domain-expert approval"]


def test_approvals_on_an_older_revision_are_stale():
    result = evaluate_gate(
        DEFAULT, [vote(1, revision=6), vote(2, EXPERT, revision=6)], current_revision_id=REV
    )
    assert not result.satisfied
    assert result.approvals == 0


def test_the_same_person_counts_once():
    policy = GatePolicy(min_approvals=2, min_staff=0)
    result = evaluate_gate(policy, [vote(1), vote(1)], current_revision_id=REV)
    assert result.approvals == 1 and not result.satisfied
    assert result.missing == ["needs 1 more approval"]


def test_project_members_never_count():
    result = evaluate_gate(GatePolicy(1, 1), [vote(1)], current_revision_id=REV, member_ids=[1])
    assert not result.satisfied


def test_a_request_for_changes_blocks_the_gate_and_names_the_question():
    votes = [
        vote(1),
        vote(2, EXPERT),
        vote(3, EXPERT, REQUEST_CHANGES, name="Dr Chen", question_key="labels"),
    ]
    result = evaluate_gate(
        DEFAULT, votes, current_revision_id=REV, question_labels={"labels": "question 3"}
    )
    assert not result.satisfied
    assert result.blocking == ["Dr Chen requested changes on question 3"]
    assert "Dr Chen requested changes on question 3" in result.summary


def test_an_unassigned_request_for_changes_does_not_block():
    votes = [vote(1), vote(2, EXPERT), vote(3, EXPERT, REQUEST_CHANGES, assigned=False)]
    assert evaluate_gate(DEFAULT, votes, current_revision_id=REV).satisfied


def test_a_request_for_changes_on_an_older_revision_is_resolved_by_the_new_one():
    votes = [vote(3, EXPERT, REQUEST_CHANGES, revision=6), vote(1), vote(2, EXPERT)]
    assert evaluate_gate(DEFAULT, votes, current_revision_id=REV).satisfied


def test_nothing_submitted_never_satisfies():
    assert not evaluate_gate(GatePolicy(1, 0, 0), [], current_revision_id=None).satisfied


@pytest.mark.parametrize(
    ("policy", "roles", "satisfied", "missing"),
    [
        (GatePolicy(1, 1, 0), [STAFF], True, []),
        (GatePolicy(1, 1, 0), [EXPERT], False, ["needs 1 more course-staff approval"]),
        (GatePolicy(3, 1, 1), [STAFF, EXPERT], False, ["needs 1 more approval"]),
        (GatePolicy(3, 1, 1), [STAFF, EXPERT, EXPERT], True, []),
        (GatePolicy(2, 0, 2), [EXPERT], False, ["needs 1 more domain-expert approval"]),
        (
            GatePolicy(4, 2, 1),
            [],
            False,
            [
                "needs 2 more course-staff approvals",
                "needs 1 more domain-expert approval",
                "needs 1 more approval",
            ],
        ),
    ],
)
def test_role_minimums_and_the_total(policy, roles, satisfied, missing):
    votes = [vote(i, role) for i, role in enumerate(roles, start=1)]
    result = evaluate_gate(policy, votes, current_revision_id=REV)
    assert result.satisfied is satisfied
    assert result.missing == missing
