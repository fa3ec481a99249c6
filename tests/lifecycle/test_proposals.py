"""The "we should not build this" proposal, the team's side: a frozen, hashed revision of its
own, transitions from one table, audit events, and no conclusion without approval."""

from __future__ import annotations

import pytest
from factories import advance_to, current_stage, fill_and_submit

from lifecycle import proposals
from lifecycle.audit import canonical_json, sha256_hex, verify_chain
from lifecycle.errors import IllegalTransition, InvalidAnswers, NotAllowed
from lifecycle.models import (
    PROPOSAL_TRANSITIONS,
    AuditEvent,
    NotPursuedProposal,
    Outcome,
    Project,
    ProjectStatus,
    ProposalRevision,
    ProposalStatus,
    StageStatus,
    can_transition_proposal,
)

ANSWERS = {
    "reasons": ["social", "should_not"],
    "reasoning": "Teachers, parents and officials do not agree on what success is.",
    "alternative": "A weekly meeting between teachers and parents.",
}


def propose(p, actor=None, answers=None):
    return proposals.proposal_submit(
        project=p.project, actor=actor or p.alice, answers=answers or ANSWERS
    )


def test_a_proposal_is_a_frozen_hashed_revision_in_review_and_the_project_goes_on(personas):
    p = personas
    revision = propose(p)
    proposal = revision.proposal
    assert proposal.status == ProposalStatus.IN_REVIEW
    assert proposal.current_revision == revision
    assert revision.number == 1
    # Stored in the offered order, whatever order the form sent.
    assert revision.answers["reasons"] == ["should_not", "social"]
    stage = current_stage(p.project)
    expected = canonical_json(
        {
            "kind": "not_pursued",
            "answers": revision.answers,
            "stage": stage.definition.key,
            "cycle": 1,
        }
    )
    assert revision.content_sha256 == sha256_hex(expected)
    revision.answers = {"reasoning": "rewritten"}
    with pytest.raises(ValueError, match="immutable"):
        revision.save()
    project = Project.objects.get(pk=p.project.pk)
    assert project.status == ProjectStatus.ACTIVE and project.outcome == ""
    event = AuditEvent.objects.get(verb="proposal.submit")
    assert event.actor == p.alice and event.project_id == p.project.pk
    assert event.new["sha256"] == revision.content_sha256
    assert event.new["stage"] == stage.definition.key
    assert verify_chain().intact


def test_the_transition_table_allows_only_the_proposal_lifecycle():
    assert PROPOSAL_TRANSITIONS[ProposalStatus.APPROVED] == frozenset()
    assert PROPOSAL_TRANSITIONS[ProposalStatus.WITHDRAWN] == frozenset()
    assert can_transition_proposal("in_review", "approved")
    assert can_transition_proposal("changes_requested", "in_review")
    assert not can_transition_proposal("changes_requested", "approved")
    assert not can_transition_proposal("withdrawn", "in_review")


def test_only_team_members_propose_and_only_with_reasons_and_reasoning(personas):
    p = personas
    for outsider in (p.carol, p.tina, p.ian, p.erin):
        with pytest.raises(NotAllowed):
            propose(p, actor=outsider)
    with pytest.raises(InvalidAnswers) as invalid:
        propose(p, answers={"reasons": [], "reasoning": " "})
    assert set(invalid.value.errors) == {"reasons", "reasoning"}
    with pytest.raises(InvalidAnswers):
        propose(p, answers={"reasons": ["made_up"], "reasoning": "x"})
    assert not NotPursuedProposal.objects.exists()
    assert not AuditEvent.objects.filter(verb__startswith="proposal.").exists()


@pytest.mark.parametrize("order", [1, 3, 7])
def test_a_proposal_can_be_made_at_every_stage(personas, order):
    p = personas
    advance_to(p.project, order, team_member=p.alice, reviewer=p.tina)
    revision = propose(p)
    assert revision.proposal.stage.definition.order == order


def test_a_proposal_can_be_made_while_the_stage_is_in_review(personas):
    p = personas
    fill_and_submit(current_stage(p.project), p.alice)
    assert current_stage(p.project).status == StageStatus.IN_REVIEW
    assert propose(p).proposal.status == ProposalStatus.IN_REVIEW


def test_one_open_proposal_at_a_time(personas):
    p = personas
    propose(p)
    with pytest.raises(IllegalTransition, match="already in review"):
        propose(p, actor=p.bob)
    assert ProposalRevision.objects.count() == 1


def test_changes_requested_then_resubmitted_makes_revision_two_and_decisions_name_it(personas):
    p = personas
    first = propose(p)
    proposals.proposal_request_changes(
        proposal=first.proposal, revision=first, actor=p.tina, reason="Who did you ask?"
    )
    assert NotPursuedProposal.objects.get().status == ProposalStatus.CHANGES_REQUESTED
    second = propose(p, actor=p.bob, answers={**ANSWERS, "reasoning": "We asked 12 teachers."})
    proposal = NotPursuedProposal.objects.get()
    assert (second.number, proposal.current_revision, proposal.status) == (
        2,
        second,
        ProposalStatus.IN_REVIEW,
    )
    assert second.content_sha256 != first.content_sha256
    with pytest.raises(IllegalTransition, match="superseded"):
        proposals.proposal_mark_approved(proposal=proposal, revision=first, actor=p.tina)
    assert [e.verb for e in AuditEvent.objects.filter(verb__startswith="proposal.")] == [
        "proposal.submit",
        "proposal.request_changes",
        "proposal.resubmit",
    ]


def test_withdrawing_leaves_the_project_where_it_was_and_frees_a_new_proposal(personas):
    p = personas
    revision = propose(p)
    proposals.proposal_withdraw(proposal=revision.proposal, actor=p.bob)
    proposal = NotPursuedProposal.objects.get()
    assert proposal.status == ProposalStatus.WITHDRAWN and proposal.closed_at is not None
    assert Project.objects.get(pk=p.project.pk).is_active
    with pytest.raises(IllegalTransition):
        proposals.proposal_withdraw(proposal=proposal, actor=p.bob)
    with pytest.raises(IllegalTransition):
        proposals.proposal_mark_approved(proposal=proposal, revision=revision, actor=p.tina)
    assert propose(p).proposal.pk != proposal.pk
    event = AuditEvent.objects.get(verb="proposal.withdraw")
    assert (event.old, event.new) == ({"status": "in_review"}, {"status": "withdrawn"})


def test_staff_cannot_withdraw_and_the_team_cannot_approve_its_own(personas):
    p = personas
    revision = propose(p)
    with pytest.raises(NotAllowed):
        proposals.proposal_withdraw(proposal=revision.proposal, actor=p.tina)
    with pytest.raises(NotAllowed):
        proposals.proposal_mark_approved(proposal=revision.proposal, revision=revision, actor=p.bob)
    assert Project.objects.get(pk=p.project.pk).is_active


def test_approval_concludes_the_project_as_not_pursued_with_its_audit_trail(personas):
    p = personas
    revision = propose(p)
    project = proposals.proposal_mark_approved(
        proposal=revision.proposal, revision=revision, actor=p.tina
    )
    assert project.status == ProjectStatus.CONCLUDED
    assert project.outcome == Outcome.NOT_PURSUED
    assert project.outcome_reason.startswith(ANSWERS["reasoning"])
    assert "A weekly meeting" in project.outcome_reason
    verbs = list(AuditEvent.objects.order_by("seq").values_list("verb", flat=True))
    assert verbs[-2:] == ["proposal.approve", "project.conclude"]
    conclude = AuditEvent.objects.get(verb="project.conclude")
    assert conclude.new["outcome"] == "not_pursued"
    assert conclude.new["proposal"] == revision.proposal_id
    # Concluded: nothing more moves, the proposal included.
    with pytest.raises(IllegalTransition, match="concluded"):
        propose(p)
    assert verify_chain().intact


def test_deployed_is_refused_while_a_proposal_not_to_build_is_open(personas):
    from lifecycle import services

    p = personas
    iterate = advance_to(p.project, 7, team_member=p.alice, reviewer=p.tina)
    services.stage_mark_approved(
        stage=iterate, revision=fill_and_submit(iterate, p.alice), actor=p.tina
    )
    propose(p)
    with pytest.raises(IllegalTransition, match="withdraw it"):
        services.project_conclude(
            project=p.project, actor=p.alice, outcome=Outcome.DEPLOYED, reason="Works"
        )
