"""Services of the "we should not build this" proposal (the team's side and the transitions
the review layer calls). Same rules as lifecycle.services: one transaction, the project row
locked first, then the proposal, the state checked against PROPOSAL_TRANSITIONS, an audit event
last. Only ``proposal_mark_approved`` concludes a project as not pursued.

The questions come from the lecture: can it, should it be solved by an algorithm? Be willing to
be wrong: DL, ML, any algorithm may not be the right approach; the problem might need a social
solution, not a technical one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from . import events
from .audit import audit_record, canonical_json, sha256_hex
from .errors import IllegalTransition, InvalidAnswers
from .models import (
    NotPursuedProposal,
    Outcome,
    Project,
    ProjectStatus,
    ProposalRevision,
    ProposalStatus,
    can_transition_proposal,
)
from .services import _lock_project, _require_active, _require_member, _require_not_member

# The lecture's reasons a problem should not be solved by an algorithm (or not by this one).
PROPOSAL_REASONS: list[tuple[str, str]] = [
    ("features", "We cannot encode all the relevant features (the state of the world?)."),
    ("metric", "We cannot define a metric for success that the stakeholders agree on."),
    (
        "should_not",
        "We are not comfortable with a machine making this decision — nor are the "
        "people it affects.",
    ),
    ("data", "We cannot acquire enough representative, ethically collected data."),
    ("explanation", "Its decisions must be explained, and this approach cannot explain them."),
    ("harms", "The cost of its errors, or its unintended consequences, are not acceptable."),
    ("social", "The problem needs a social solution, not a technical one."),
]
REASON_KEYS = frozenset(key for key, _ in PROPOSAL_REASONS)
REASON_LABELS = dict(PROPOSAL_REASONS)

PROPOSAL_FIELDS = ("reasons", "reasoning", "alternative")
MAX_TEXT = 20_000


def clean_proposal_answers(answers: Mapping[str, Any]) -> dict[str, Any]:
    """The proposal's answers in their stored shape, or InvalidAnswers naming each field."""
    errors: dict[str, list[str]] = {}
    unknown = set(answers) - set(PROPOSAL_FIELDS)
    for key in sorted(unknown):
        errors[key] = ["Not a field of the proposal."]
    raw = answers.get("reasons") or []
    if isinstance(raw, str):
        raw = [raw]
    reasons = [r for r in dict.fromkeys(str(r) for r in raw)]
    if not reasons:
        errors["reasons"] = ["Choose at least one reason from the lecture's questions."]
    elif set(reasons) - REASON_KEYS:
        errors["reasons"] = ["Choose among the reasons offered."]
    reasoning = str(answers.get("reasoning") or "").strip()
    if not reasoning:
        errors["reasoning"] = [
            "Explain why: what did you learn that says this should not be built?"
        ]
    alternative = str(answers.get("alternative") or "").strip()
    for key, text in (("reasoning", reasoning), ("alternative", alternative)):
        if len(text) > MAX_TEXT:
            errors[key] = [f"Keep this under {MAX_TEXT} characters."]
    if errors:
        raise InvalidAnswers(errors)
    # Stored in the offered order, so the same choice always hashes the same.
    ordered = [key for key, _ in PROPOSAL_REASONS if key in reasons]
    return {"reasons": ordered, "reasoning": reasoning, "alternative": alternative}


def proposal_content(proposal: NotPursuedProposal, answers: Mapping[str, Any]) -> str:
    """What the revision's SHA-256 covers: the answers and where in the life cycle they were
    given (a proposal made at stage 1 is another statement than one made at Iterate)."""
    stage = proposal.stage
    return canonical_json(
        {
            "kind": "not_pursued",
            "answers": answers,
            "stage": stage.definition.key,
            "cycle": stage.cycle,
        }
    )


def _move(proposal: NotPursuedProposal, target: ProposalStatus) -> str:
    old = proposal.status
    if not can_transition_proposal(old, target):
        raise IllegalTransition(
            f"The proposal not to build is {proposal.get_status_display().lower()}; it cannot "
            f"become {ProposalStatus(target).label.lower()}."
        )
    proposal.status = target
    return old


def lock_proposal(proposal_id: int) -> NotPursuedProposal:
    return (
        NotPursuedProposal.objects.select_for_update(of=("self",), no_key=True)
        .select_related("stage__definition", "current_revision")
        .get(pk=proposal_id)
    )


def open_proposal(project: Project) -> NotPursuedProposal | None:
    return (
        project.not_pursued_proposals.filter(
            status__in=[ProposalStatus.IN_REVIEW, ProposalStatus.CHANGES_REQUESTED]
        )
        .select_related("stage__definition", "current_revision")
        .first()
    )


@transaction.atomic
def proposal_submit(
    *, project: Project, actor: Any, answers: Mapping[str, Any]
) -> ProposalRevision:
    """The team proposes that the project should not be built, at whatever stage it is, or
    answers a request for changes on its proposal: either way a new frozen revision goes to
    review. Nothing concludes here."""
    project = _lock_project(project.pk)
    _require_member(actor, project)
    _require_active(project)
    if project.current_stage_id is None:
        raise IllegalTransition("This project has no open stage.")
    cleaned = clean_proposal_answers(answers)
    existing = open_proposal(project)
    if existing is not None:
        proposal = lock_proposal(existing.pk)
        if proposal.status == ProposalStatus.IN_REVIEW:
            raise IllegalTransition(
                "Your proposal not to build is already in review; withdraw it to change it."
            )
        old_status = _move(proposal, ProposalStatus.IN_REVIEW)
        verb = "proposal.resubmit"
    else:
        proposal = NotPursuedProposal.objects.create(
            project=project, stage_id=project.current_stage_id, created_by=actor
        )
        old_status = ""
        verb = "proposal.submit"
    # The gate that applies is the one of the stage the project is at now.
    proposal.stage = project.current_stage  # type: ignore[assignment]
    number = (proposal.revisions.aggregate(n=Max("number"))["n"] or 0) + 1
    revision = ProposalRevision.objects.create(
        proposal=proposal,
        number=number,
        answers=cleaned,
        content_sha256=sha256_hex(proposal_content(proposal, cleaned)),
        created_by=actor,
    )
    proposal.current_revision = revision
    proposal.save(update_fields=["status", "stage", "current_revision"])
    events.publish(
        events.PROPOSAL_SUBMITTED,
        proposal=proposal,
        revision=revision,
        actor=actor,
        resubmission=bool(old_status),
    )
    audit_record(
        actor=actor,
        verb=verb,
        obj=proposal,
        project=project,
        old={"status": old_status} if old_status else None,
        new={
            "status": proposal.status,
            "revision": number,
            "sha256": revision.content_sha256,
            "stage": proposal.stage.definition.key,
            "cycle": proposal.stage.cycle,
            "reasons": cleaned["reasons"],
        },
    )
    return revision


@transaction.atomic
def proposal_withdraw(*, proposal: NotPursuedProposal, actor: Any) -> NotPursuedProposal:
    """The team takes its proposal back; the project goes on where it is."""
    project = _lock_project(proposal.project_id)
    proposal = lock_proposal(proposal.pk)
    _require_member(actor, project)
    _require_active(project)
    old_status = _move(proposal, ProposalStatus.WITHDRAWN)
    proposal.closed_at = timezone.now()
    proposal.save(update_fields=["status", "closed_at"])
    proposal.project = project
    events.publish(events.PROPOSAL_WITHDRAWN, proposal=proposal, actor=actor)
    audit_record(
        actor=actor,
        verb="proposal.withdraw",
        obj=proposal,
        project=project,
        old={"status": old_status},
        new={"status": proposal.status},
    )
    return proposal


def _require_current(proposal: NotPursuedProposal, revision: ProposalRevision) -> None:
    if revision.proposal_id != proposal.pk or proposal.current_revision_id != revision.pk:
        current = proposal.current_revision.number if proposal.current_revision else None
        raise IllegalTransition(
            f"Revision {revision.number} has been superseded by revision {current}; "
            "decisions count only on the current revision."
        )


def _locked(
    proposal: NotPursuedProposal, already_locked: bool
) -> tuple[Project, NotPursuedProposal]:
    if already_locked:
        if not transaction.get_connection().in_atomic_block:
            raise RuntimeError("already_locked needs the caller's transaction.")
        return proposal.project, proposal
    project = _lock_project(proposal.project_id)
    locked = lock_proposal(proposal.pk)
    locked.project = project
    return project, locked


@transaction.atomic
def proposal_request_changes(
    *,
    proposal: NotPursuedProposal,
    revision: ProposalRevision,
    actor: Any,
    reason: str,
    already_locked: bool = False,
) -> NotPursuedProposal:
    """A reviewer sends the proposal back to the team: its reasoning does not convince yet."""
    project, proposal = _locked(proposal, already_locked)
    _require_active(project)
    _require_not_member(actor, project)
    if not reason.strip():
        raise InvalidAnswers({"reason": ["Say what needs to change."]})
    _require_current(proposal, revision)
    old_status = _move(proposal, ProposalStatus.CHANGES_REQUESTED)
    proposal.save(update_fields=["status"])
    events.publish(
        events.PROPOSAL_CHANGES_REQUESTED,
        proposal=proposal,
        revision=revision,
        actor=actor,
        reason=reason.strip(),
    )
    audit_record(
        actor=actor,
        verb="proposal.request_changes",
        obj=proposal,
        project=project,
        old={"status": old_status},
        new={"status": proposal.status, "revision": revision.number, "reason": reason.strip()},
    )
    return proposal


@transaction.atomic
def proposal_mark_approved(
    *,
    proposal: NotPursuedProposal,
    revision: ProposalRevision,
    actor: Any,
    gate_summary: Mapping[str, Any] | None = None,
    already_locked: bool = False,
) -> Project:
    """The proposal passed its gate: the project concludes as not pursued, in this same
    transaction. The review layer calls this from the decision that satisfied the gate, with
    the project and proposal rows locked (project first)."""
    project, proposal = _locked(proposal, already_locked)
    _require_active(project)
    _require_not_member(actor, project)
    _require_current(proposal, revision)
    old_status = _move(proposal, ProposalStatus.APPROVED)
    now = timezone.now()
    proposal.closed_at = now
    proposal.save(update_fields=["status", "closed_at"])
    answers = revision.answers
    reasons = "; ".join(REASON_LABELS.get(k, k) for k in answers.get("reasons", []))
    reason = answers.get("reasoning", "")
    if answers.get("alternative"):
        reason += f"\n\nInstead: {answers['alternative']}"
    project.status = ProjectStatus.CONCLUDED
    project.outcome = Outcome.NOT_PURSUED
    project.outcome_reason = f"{reason}\n\nReasons: {reasons}" if reasons else reason
    project.concluded_at = now
    project.save(update_fields=["status", "outcome", "outcome_reason", "concluded_at"])
    events.publish(events.PROPOSAL_APPROVED, proposal=proposal, revision=revision, actor=actor)
    events.publish(
        events.PROJECT_CONCLUDED,
        project=project,
        actor=actor,
        outcome=Outcome.NOT_PURSUED,
        reason=project.outcome_reason,
    )
    audit_record(
        actor=actor,
        verb="proposal.approve",
        obj=proposal,
        project=project,
        old={"status": old_status},
        new={
            "status": proposal.status,
            "revision": revision.number,
            "sha256": revision.content_sha256,
            **({"gate": dict(gate_summary)} if gate_summary else {}),
        },
    )
    audit_record(
        actor=actor,
        verb="project.conclude",
        obj=project,
        project=project,
        old={"status": ProjectStatus.ACTIVE},
        new={
            "status": ProjectStatus.CONCLUDED,
            "outcome": Outcome.NOT_PURSUED,
            "reason": project.outcome_reason,
            "stage": proposal.stage.definition.key,
            "cycle": project.cycle,
            "proposal": proposal.pk,
            "revision": revision.number,
        },
    )
    return project
