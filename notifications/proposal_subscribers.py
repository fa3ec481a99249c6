"""Who hears about a "we should not build this" proposal, through the outbox (notify):

- proposed or resubmitted: everyone who can satisfy its gate — course staff, and the stage's
  assigned reviewers when the stage's gate applies (staff only when the course says so);
- changes requested: the team;
- approved (the project concluded as not pursued): the team and the proposal's reviewers.
A withdrawn proposal notifies nobody: its page says so to a reviewer who follows the link.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from lifecycle import events
from lifecycle.models import NotPursuedGate, NotPursuedProposal

from .models import NotificationKind
from .services import absolute, notify
from .subscribers import course_staff, project_members, stage_reviewers


def proposal_link(proposal: NotPursuedProposal) -> str:
    return absolute(reverse("reviews:review_proposal", args=[proposal.pk]))


def proposal_reviewers(proposal: NotPursuedProposal) -> list[Any]:
    project = proposal.project
    staff = course_staff(project)
    if project.course.not_pursued_gate == NotPursuedGate.STAFF:
        assigned: list[Any] = []
    else:
        assigned = stage_reviewers(project, [proposal.stage.definition_id])
    return [*staff, *assigned]


def _where(proposal: NotPursuedProposal) -> str:
    d = proposal.stage.definition
    return f"at stage {d.order} “{d.title}”"


def on_proposal_submitted(
    *, proposal: NotPursuedProposal, revision: Any, actor: Any, resubmission: bool
) -> None:
    project = proposal.project
    verb = "revised its proposal" if resubmission else "proposes"
    notify(
        recipients=proposal_reviewers(proposal),
        kind=NotificationKind.RESUBMITTED if resubmission else NotificationKind.REVIEW_REQUESTED,
        project=project,
        stage=proposal.stage,
        key=f"proposal_submitted:pr{revision.pk}",
        subject=f"[{project.title}] Review requested: “we should not build this”, revision "
        f"{revision.number}",
        body=f"{actor.name} {verb} that “{project.title}” should not be built ({_where(proposal)})"
        ". Approve it to conclude the project as not pursued, or request changes.",
        link=proposal_link(proposal),
        payload={"proposal": proposal.pk},
    )


def on_proposal_changes_requested(
    *, proposal: NotPursuedProposal, revision: Any, actor: Any, reason: str
) -> None:
    project = proposal.project
    notify(
        recipients=project_members(project),
        kind=NotificationKind.CHANGES_REQUESTED,
        project=project,
        stage=proposal.stage,
        key=f"proposal_changes:pr{revision.pk}",
        subject=f"[{project.title}] Changes requested on your proposal not to build",
        body=f"{actor.name} asked for changes on revision {revision.number}:\n\n{reason}\n\n"
        "Revise your reasoning and propose again, or withdraw the proposal.",
        link=proposal_link(proposal),
        payload={"proposal": proposal.pk},
    )


def on_proposal_approved(*, proposal: NotPursuedProposal, revision: Any, actor: Any) -> None:
    project = proposal.project
    notify(
        recipients=[*project_members(project), *proposal_reviewers(proposal)],
        kind=NotificationKind.STAGE_APPROVED,
        project=project,
        stage=proposal.stage,
        key=f"proposal_approved:p{proposal.pk}",
        subject=f"[{project.title}] Concluded: not pursued",
        body=f"The proposal not to build “{project.title}” passed its gate (revision "
        f"{revision.number}); the project is concluded as not pursued.",
        link=proposal_link(proposal),
        payload={"proposal": proposal.pk},
    )


def connect() -> None:
    events.subscribe(events.PROPOSAL_SUBMITTED, on_proposal_submitted)
    events.subscribe(events.PROPOSAL_CHANGES_REQUESTED, on_proposal_changes_requested)
    events.subscribe(events.PROPOSAL_APPROVED, on_proposal_approved)
