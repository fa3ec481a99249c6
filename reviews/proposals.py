"""Reviewing a "we should not build this" proposal with the stage gate's machinery: the same
pure evaluator, the same rules (decisions on the exact current revision, by distinct
non-members, no standing request for changes), with the policy of the stage the project is at
or, when the course says so, course staff alone."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import transaction
from django.db.models import prefetch_related_objects
from django.utils import timezone

from accounts.models import User
from lifecycle import proposals as lifecycle_proposals
from lifecycle.audit import audit_record
from lifecycle.errors import IllegalTransition, InvalidAnswers, NotAllowed
from lifecycle.models import (
    NotPursuedGate,
    NotPursuedProposal,
    Project,
    ProposalRevision,
    ProposalStatus,
)

from . import permissions
from .gate import GatePolicy, GateResult, evaluate_gate
from .models import DecisionOutcome, ProposalDecision, ReviewAssignment, ReviewerRole
from .services import _lock_project, _member_ids, decision_refusal, votes_of


def proposal_policy(proposal: NotPursuedProposal, project: Project) -> GatePolicy:
    definition = proposal.stage.definition
    if project.course.not_pursued_gate == NotPursuedGate.STAFF:
        staff = max(1, definition.min_staff_approvals)
        return GatePolicy(staff, staff, 0)
    return GatePolicy(
        definition.min_approvals, definition.min_staff_approvals, definition.min_expert_approvals
    )


def proposal_reviewer_role(
    user: Any, proposal: NotPursuedProposal, project: Project
) -> tuple[str | None, ReviewAssignment | None]:
    """Who decides on a proposal: whoever may decide on the stage it was made at; only staff
    when the course has staff alone decide."""
    role, assignment = permissions.reviewer_role(user, project, proposal.stage.definition_id)
    if role == ReviewerRole.EXPERT and project.course.not_pursued_gate == NotPursuedGate.STAFF:
        return None, None
    return role, assignment


def standing_decisions(revision: ProposalRevision) -> list[ProposalDecision]:
    return list(
        ProposalDecision.objects.filter(revision=revision, replaced_at__isnull=True)
        .select_related("reviewer", "assignment")
        .order_by("created_at", "pk")
    )


def gate_for_proposal(
    proposal: NotPursuedProposal,
    project: Project,
    *,
    decisions: Sequence[ProposalDecision] | None = None,
) -> GateResult:
    if decisions is None:
        decisions = (
            standing_decisions(proposal.current_revision) if proposal.current_revision else []
        )
    return evaluate_gate(
        proposal_policy(proposal, project),
        votes_of(decisions),
        current_revision_id=proposal.current_revision_id,
        member_ids=_member_ids(project),
    )


@transaction.atomic
def proposal_decision_record(
    *,
    revision: ProposalRevision,
    reviewer: User,
    outcome: str,
    comment: str = "",
    change: bool = False,
) -> ProposalDecision:
    """A reviewer's decision on one exact revision of the proposal. A request for changes
    sends it back to the team; the approval that satisfies the gate approves it and concludes
    the project as not pursued, in this same transaction. Two approvals at once: the project
    row's lock orders them, and the second finds the project concluded."""
    outcome = DecisionOutcome(outcome)
    project = _lock_project(revision.proposal.project_id)
    prefetch_related_objects([project], "members")
    proposal = lifecycle_proposals.lock_proposal(revision.proposal_id)
    proposal.project = project
    if not project.is_active:
        raise IllegalTransition("This project was concluded; its proposal takes no decisions.")
    role, assignment = proposal_reviewer_role(reviewer, proposal, project)
    if role is None:
        raise NotAllowed("You are not a reviewer of this proposal.")
    refusal = decision_refusal(reviewer, project, role, assignment)
    if refusal:
        raise IllegalTransition(refusal)
    if proposal.current_revision_id != revision.pk:
        current = proposal.current_revision.number if proposal.current_revision else "none"
        raise IllegalTransition(
            f"Revision {revision.number} has been superseded by revision {current}; your "
            "decision was not recorded."
        )
    if proposal.status != ProposalStatus.IN_REVIEW:
        raise IllegalTransition(
            f"The proposal is {proposal.get_status_display().lower()}, not in review."
        )
    if outcome == DecisionOutcome.REQUEST_CHANGES and not comment.strip():
        raise InvalidAnswers({"comment": ["Say what needs to change."]})
    previous = (
        ProposalDecision.objects.select_for_update(no_key=True)
        .filter(revision=revision, reviewer=reviewer, replaced_at__isnull=True)
        .first()
    )
    if previous is not None and not change:
        raise IllegalTransition(
            "You have already decided on this revision. Use “change my decision” to replace it."
        )
    now = timezone.now()
    if previous is not None:
        previous.replaced_at = now
        previous.save(update_fields=["replaced_at"])
    decision = ProposalDecision.objects.create(
        revision=revision,
        reviewer=reviewer,
        assignment=assignment,
        role=role,
        outcome=outcome,
        comment=comment.strip(),
        created_at=now,
    )
    audit_record(
        actor=reviewer,
        verb="proposal.decision_change" if previous else "proposal.decision",
        obj=decision,
        project=project,
        old={"outcome": previous.outcome, "comment": previous.comment} if previous else None,
        new={
            "outcome": outcome,
            "comment": decision.comment,
            "role": role,
            "proposal": proposal.pk,
            "revision": revision.number,
            "sha256": revision.content_sha256,
        },
    )
    if outcome == DecisionOutcome.REQUEST_CHANGES:
        lifecycle_proposals.proposal_request_changes(
            proposal=proposal,
            revision=revision,
            actor=reviewer,
            reason=decision.comment,
            already_locked=True,
        )
        return decision
    gate = gate_for_proposal(proposal, project)
    if gate.satisfied:
        lifecycle_proposals.proposal_mark_approved(
            proposal=proposal,
            revision=revision,
            actor=reviewer,
            gate_summary=gate.as_dict(),
            already_locked=True,
        )
    return decision


def proposal_submit_and_approve(
    *,
    project: Project,
    proposer: User,
    reasons: Iterable[str],
    reasoning: str,
    approvers: Iterable[User],
    alternative: str = "",
) -> NotPursuedProposal:
    """Propose "we should not build this" and approve it through the real gate, each approver
    in turn until the project concludes (for the demo seeder and tests). Approvers must be
    able to decide already: staff, or experts assigned, confirmed and declared."""
    revision = lifecycle_proposals.proposal_submit(
        project=project,
        actor=proposer,
        answers={"reasons": list(reasons), "reasoning": reasoning, "alternative": alternative},
    )
    for approver in approvers:
        project.refresh_from_db(fields=["status"])
        if not project.is_active:
            break
        proposal_decision_record(revision=revision, reviewer=approver, outcome="approve")
    proposal = NotPursuedProposal.objects.get(pk=revision.proposal_id)
    if proposal.status != ProposalStatus.APPROVED:
        raise IllegalTransition(
            "These approvers do not satisfy the proposal's gate: "
            + "; ".join(gate_for_proposal(proposal, Project.objects.get(pk=project.pk)).missing)
        )
    return proposal
