"""The gate's result asserted whole: counts, approvers, the summary and what goes into the audit
event, so that a wrong count or a stray approver cannot hide behind a right `satisfied`."""

from __future__ import annotations

import dataclasses

import pytest

from reviews.gate import (
    APPROVE,
    EXPERT,
    REQUEST_CHANGES,
    STAFF,
    GatePolicy,
    GateResult,
    Vote,
    evaluate_gate,
)

REV = 7
DEFAULT = GatePolicy(min_approvals=2, min_staff=1, min_expert=1)


def vote(reviewer_id, role=STAFF, outcome=APPROVE, revision=REV, name=None, **kw):
    return Vote(reviewer_id, name or f"R{reviewer_id}", role, outcome, revision, **kw)


def test_the_summary_of_a_satisfied_gate_counts_each_role_and_names_the_approvers_sorted():
    votes = [vote(3, name="Tina"), vote(1, EXPERT, name="Erin"), vote(2, name="Ian")]
    result = evaluate_gate(DEFAULT, votes, current_revision_id=REV)
    assert result.as_dict() == {
        "satisfied": True,
        "approvals": 3,
        "staff": 2,
        "expert": 1,
        "approvers": ["Erin", "Ian", "Tina"],
    }
    assert result.missing == [] and result.blocking == []
    assert result.summary == "The gate is satisfied."


def test_a_reviewer_who_approved_and_then_requested_changes_is_not_an_approver():
    votes = [
        vote(1, name="Tina"),
        vote(2, EXPERT, name="Erin"),
        vote(2, EXPERT, REQUEST_CHANGES, name="Erin", question_key="labels"),
    ]
    result = evaluate_gate(
        DEFAULT, votes, current_revision_id=REV, question_labels={"labels": "question 2"}
    )
    assert result.as_dict() == {
        "satisfied": False,
        "approvals": 1,
        "staff": 1,
        "expert": 0,
        "approvers": ["Tina"],
    }
    assert result.missing == ["needs 1 more domain-expert approval"]
    assert result.blocking == ["Erin requested changes on question 2"]
    assert result.summary == (
        "needs 1 more domain-expert approval; Erin requested changes on question 2"
    )


def test_stale_votes_and_members_votes_are_neither_counted_nor_named():
    votes = [
        vote(1, name="Old", revision=REV - 1),
        vote(2, EXPERT, name="Member"),
        vote(3, STAFF, REQUEST_CHANGES, name="Member too"),
        vote(4, name="Tina"),
    ]
    result = evaluate_gate(GatePolicy(1), votes, current_revision_id=REV, member_ids=[2, 3])
    assert result.as_dict() == {
        "satisfied": True,
        "approvals": 1,
        "staff": 1,
        "expert": 0,
        "approvers": ["Tina"],
    }
    assert result.blocking == []


def test_one_reviewer_requesting_changes_on_two_questions_blocks_once_and_others_still_block():
    votes = [
        vote(5, EXPERT, REQUEST_CHANGES, name="Erin", question_key="a"),
        vote(5, EXPERT, REQUEST_CHANGES, name="Erin", question_key="b"),
        vote(6, STAFF, REQUEST_CHANGES, name="Tina"),
        vote(7, STAFF, REQUEST_CHANGES, name="Ian", question_key="unlabelled"),
    ]
    result = evaluate_gate(
        GatePolicy(0), votes, current_revision_id=REV, question_labels={"a": "question 1"}
    )
    assert result.blocking == [
        "Erin requested changes on question 1",
        "Tina requested changes",
        "Ian requested changes on unlabelled",
    ]
    assert result.missing == []
    assert not result.satisfied
    assert result.approvals == 0 and result.approvers == []


def test_more_approvals_than_needed_leave_nothing_missing():
    votes = [vote(1), vote(2), vote(3, EXPERT), vote(4, EXPERT)]
    result = evaluate_gate(DEFAULT, votes, current_revision_id=REV)
    assert result.satisfied
    assert result.missing == []
    assert (result.approvals, result.staff_approvals, result.expert_approvals) == (4, 2, 2)


def test_exactly_the_minimum_number_of_approvals_satisfies():
    result = evaluate_gate(GatePolicy(2), [vote(1), vote(2, EXPERT)], current_revision_id=REV)
    assert result.satisfied
    assert result.approvals == 2


def test_a_policy_without_role_minimums_is_satisfied_by_experts_or_staff_alone():
    policy = GatePolicy(min_approvals=1)
    assert evaluate_gate(policy, [vote(1, EXPERT)], current_revision_id=REV).satisfied
    assert evaluate_gate(policy, [vote(1, STAFF)], current_revision_id=REV).satisfied


def test_a_gate_that_needs_nothing_still_waits_for_a_submitted_revision():
    result = evaluate_gate(GatePolicy(0), [], current_revision_id=None)
    assert not result.satisfied
    assert result.summary == "Waiting for reviewers."
    assert evaluate_gate(GatePolicy(0), [], current_revision_id=REV).satisfied


def test_singular_and_plural_of_what_is_missing():
    one = evaluate_gate(GatePolicy(1, 1, 1), [], current_revision_id=REV)
    assert one.missing == [
        "needs 1 more course-staff approval",
        "needs 1 more domain-expert approval",
    ]
    two = evaluate_gate(GatePolicy(2), [], current_revision_id=REV)
    assert two.missing == ["needs 2 more approvals"]


@pytest.mark.parametrize(
    "value",
    [
        GatePolicy(1),
        Vote(1, "R1", STAFF, APPROVE, REV),
        GateResult(satisfied=True, approvals=1, staff_approvals=1, expert_approvals=0),
    ],
)
def test_policies_votes_and_results_are_frozen(value):
    field = dataclasses.fields(value)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(value, field, 99)


def test_votes_on_a_later_revision_or_with_nothing_submitted_do_not_count():
    later = evaluate_gate(GatePolicy(1), [vote(1, revision=REV + 1)], current_revision_id=REV)
    assert (later.approvals, later.approvers, later.satisfied) == (0, [], False)
    nothing = evaluate_gate(GatePolicy(0), [vote(1, revision=REV)], current_revision_id=None)
    assert (nothing.approvals, nothing.satisfied) == (0, False)


@pytest.mark.parametrize("outcome", ["abstain", "zzz"])
def test_an_outcome_the_gate_does_not_know_neither_approves_nor_blocks(outcome):
    result = evaluate_gate(GatePolicy(0), [vote(1, outcome=outcome)], current_revision_id=REV)
    assert (result.approvals, result.blocking, result.satisfied) == (0, [], True)


def test_an_approval_in_a_role_the_gate_does_not_know_counts_for_neither_role_minimum():
    votes = [vote(1, "auditor"), vote(2, "visitor")]
    result = evaluate_gate(GatePolicy(2), votes, current_revision_id=REV)
    assert (result.approvals, result.staff_approvals, result.expert_approvals) == (2, 0, 0)
    assert result.satisfied
