"""Reviewing "we should not build this" through the stage gate's machinery: the gate of the
stage the project is at (or staff alone, as a course setting), approve / request changes /
withdraw, notifications to whoever can satisfy the gate, and the race of two approvals."""

from __future__ import annotations

import pytest
from concurrency import outcome_kinds, race
from factories import UserFactory, advance_to, declare_no_conflict, enrol

from lifecycle import proposals as lifecycle_proposals
from lifecycle.audit import verify_chain
from lifecycle.errors import IllegalTransition, InvalidAnswers, NotAllowed
from lifecycle.models import (
    AuditEvent,
    Course,
    NotPursuedGate,
    NotPursuedProposal,
    Outcome,
    Project,
    ProjectStatus,
    ProposalStatus,
    Role,
)
from notifications.models import Notification, NotificationKind
from reviews import proposals, services
from reviews.models import ProposalDecision

ANSWERS = {"reasons": ["should_not"], "reasoning": "Nobody asked the referred families."}


def propose(p, actor=None):
    return lifecycle_proposals.proposal_submit(
        project=p.project, actor=actor or p.alice, answers=ANSWERS
    )


def assign_erin(p):
    services.assignment_create(project=p.project, actor=p.tina, reviewer=p.erin, role="expert")
    declare_no_conflict(p.project, p.erin)


def approve(revision, reviewer, **kw):
    return proposals.proposal_decision_record(
        revision=revision, reviewer=reviewer, outcome="approve", **kw
    )


def project_of(p) -> Project:
    return Project.objects.get(pk=p.project.pk)


# --- the gate ---------------------------------------------------------------------------------


def test_stage_ones_gate_applies_staff_alone_does_not_conclude(personas):
    """Stage 1 of the default template needs a staff and a domain-expert approval."""
    p = personas
    assign_erin(p)
    revision = propose(p)
    approve(revision, p.tina)
    assert project_of(p).is_active
    proposal = NotPursuedProposal.objects.get()
    gate = proposals.gate_for_proposal(proposal, project_of(p))
    assert not gate.satisfied and gate.missing == ["needs 1 more domain-expert approval"]
    approve(revision, p.erin)
    project = project_of(p)
    assert (project.status, project.outcome) == (ProjectStatus.CONCLUDED, Outcome.NOT_PURSUED)
    assert NotPursuedProposal.objects.get().status == ProposalStatus.APPROVED
    approval = AuditEvent.objects.get(verb="proposal.approve")
    assert approval.actor == p.erin
    assert approval.new["gate"]["staff"] == 1 and approval.new["gate"]["expert"] == 1
    assert verify_chain().intact


def test_the_stage_the_project_is_at_sets_the_gate(personas):
    """Stage 2 needs staff only in the default template: one TA approval concludes."""
    p = personas
    advance_to(p.project, 2, team_member=p.alice, reviewer=p.tina)
    approve(propose(p), p.tina)
    assert project_of(p).outcome == Outcome.NOT_PURSUED


def test_a_staff_only_course_needs_staff_and_refuses_experts(personas):
    p = personas
    Course.objects.filter(pk=p.course.pk).update(not_pursued_gate=NotPursuedGate.STAFF)
    assign_erin(p)
    revision = propose(p)
    with pytest.raises(NotAllowed):
        approve(revision, p.erin)
    approve(revision, p.ian)
    assert project_of(p).outcome == Outcome.NOT_PURSUED
    assert ProposalDecision.objects.get().reviewer == p.ian


def test_nobody_on_the_team_and_no_outsider_decides(personas):
    p = personas
    revision = propose(p)
    for person in (p.alice, p.bob, p.carol, p.erin, p.oscar):
        with pytest.raises(NotAllowed):
            approve(revision, person)
    assert not ProposalDecision.objects.exists()


def test_an_unconfirmed_or_undeclared_expert_cannot_decide_yet(personas):
    p = personas
    services.assignment_create(project=p.project, actor=p.tina, reviewer=p.erin, role="expert")
    revision = propose(p)
    with pytest.raises(IllegalTransition, match="conflicts of interest"):
        approve(revision, p.erin)


def test_a_request_for_changes_goes_back_to_the_team_and_stale_approvals_do_not_count(personas):
    p = personas
    assign_erin(p)
    first = propose(p)
    approve(first, p.erin)
    with pytest.raises(InvalidAnswers):
        proposals.proposal_decision_record(
            revision=first, reviewer=p.tina, outcome="request_changes", comment=" "
        )
    proposals.proposal_decision_record(
        revision=first, reviewer=p.tina, outcome="request_changes", comment="Ask the families."
    )
    assert NotPursuedProposal.objects.get().status == ProposalStatus.CHANGES_REQUESTED
    with pytest.raises(IllegalTransition, match="not in review"):
        approve(first, p.ian)
    second = propose(p, actor=p.bob)
    with pytest.raises(IllegalTransition, match="superseded"):
        approve(first, p.ian)
    # Erin's approval was of revision 1: the TA alone does not satisfy revision 2.
    approve(second, p.tina)
    assert project_of(p).is_active
    approve(second, p.erin)
    assert project_of(p).outcome == Outcome.NOT_PURSUED


def test_a_decision_changes_only_with_change_and_a_withdrawn_proposal_takes_none(personas):
    p = personas
    assign_erin(p)
    revision = propose(p)
    approve(revision, p.erin)
    with pytest.raises(IllegalTransition, match="already decided"):
        approve(revision, p.erin)
    lifecycle_proposals.proposal_withdraw(proposal=revision.proposal, actor=p.alice)
    with pytest.raises(IllegalTransition, match="withdrawn"):
        approve(revision, p.tina)
    assert project_of(p).is_active


# --- notifications ------------------------------------------------------------------------------


def test_a_proposal_notifies_staff_and_the_stages_reviewers_not_the_team(
    personas, django_capture_on_commit_callbacks
):
    p = personas
    assign_erin(p)
    propose(p)
    asked = set(
        Notification.objects.filter(kind=NotificationKind.REVIEW_REQUESTED).values_list(
            "recipient__email", flat=True
        )
    )
    assert asked == {p.tina.email, p.ian.email, p.erin.email}


def test_a_staff_only_proposal_does_not_notify_experts(personas):
    p = personas
    Course.objects.filter(pk=p.course.pk).update(not_pursued_gate=NotPursuedGate.STAFF)
    assign_erin(p)
    propose(p)
    asked = set(Notification.objects.values_list("recipient__email", flat=True))
    assert asked == {p.tina.email, p.ian.email}


def test_changes_requested_notify_the_team_and_approval_tells_everyone_once(personas):
    p = personas
    advance_to(p.project, 2, team_member=p.alice, reviewer=p.tina)
    revision = propose(p)
    proposals.proposal_decision_record(
        revision=revision, reviewer=p.tina, outcome="request_changes", comment="Say who."
    )
    told = set(
        Notification.objects.filter(kind=NotificationKind.CHANGES_REQUESTED).values_list(
            "recipient__email", flat=True
        )
    )
    assert told == {p.alice.email, p.bob.email}
    approve(propose(p, actor=p.bob), p.tina)
    concluded = Notification.objects.filter(subject__contains="Concluded: not pursued")
    assert sorted(concluded.values_list("recipient__email", flat=True)) == sorted(
        [p.alice.email, p.bob.email, p.tina.email, p.ian.email]
    )


# --- the demo seeder's call ---------------------------------------------------------------------


def test_submit_and_approve_concludes_through_the_real_gate_or_says_what_is_missing(personas):
    p = personas
    with pytest.raises(IllegalTransition, match="domain-expert"):
        proposals.proposal_submit_and_approve(
            project=p.project,
            proposer=p.alice,
            reasons=["social"],
            reasoning="A social solution.",
            approvers=[p.tina],
        )
    assert project_of(p).is_active
    assign_erin(p)
    lifecycle_proposals.proposal_withdraw(proposal=NotPursuedProposal.objects.get(), actor=p.alice)
    proposal = proposals.proposal_submit_and_approve(
        project=p.project,
        proposer=p.alice,
        reasons=["social"],
        reasoning="A social solution.",
        approvers=[p.tina, p.erin],
    )
    assert proposal.status == ProposalStatus.APPROVED
    assert project_of(p).outcome == Outcome.NOT_PURSUED


# --- the race -----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("needed", [1, 2])
def test_two_approvals_at_once_conclude_the_project_exactly_once(personas, needed):
    """Two TAs approve the same revision at the same instant. With one approval needed, one of
    them concludes and the other is told the project is concluded; with two needed, both are
    recorded and the second concludes. Either way: one approval event, one conclusion."""
    p = personas
    tas = [UserFactory(display_name=f"Racing TA {i}") for i in range(2)]
    for ta in tas:
        enrol(p.course, ta, Role.TA)
    advance_to(p.project, 2, team_member=p.alice, reviewer=p.tina)
    definition = p.project.template.stages.get(order=2)
    type(definition).objects.filter(pk=definition.pk).update(
        min_approvals=needed, min_staff_approvals=needed
    )
    revision = propose(p)

    results = race(2, lambda i: approve(revision, tas[i]).pk)

    kinds = outcome_kinds(results)
    if needed == 1:
        assert kinds == {"ok": 1, "IllegalTransition": 1}
        refused = next(v for s, v in results if s == "error")
        assert "concluded" in refused.message
    else:
        assert kinds == {"ok": 2}
    assert ProposalDecision.objects.count() == (1 if needed == 1 else 2)
    assert AuditEvent.objects.filter(verb="proposal.approve").count() == 1
    assert AuditEvent.objects.filter(verb="project.conclude").count() == 1
    project = project_of(p)
    assert (project.status, project.outcome) == (ProjectStatus.CONCLUDED, Outcome.NOT_PURSUED)
    assert verify_chain().intact
