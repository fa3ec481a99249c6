"""Who hears about what. The layers below publish domain events (lifecycle.events,
reviews.events) inside their transactions; the handlers here write the notification rows in
that same transaction, so an event and what it causes commit together or not at all."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.db.models import Q

from accounts.models import User
from lifecycle import events
from lifecycle.models import STAFF_ROLES, Membership, Project, ProjectStage
from reviews import events as review_events
from reviews.models import AssignmentState, Decision, DecisionOutcome, ReviewAssignment

from .models import NotificationKind
from .services import absolute, notify, review_link, stage_link

# --- recipients -----------------------------------------------------------------------------


def project_members(project: Project) -> list[User]:
    return list(project.members.all())


def course_staff(project: Project) -> list[User]:
    return [
        m.user
        for m in Membership.objects.filter(
            course_id=project.course_id, role__in=STAFF_ROLES
        ).select_related("user")
    ]


def stage_reviewers(project: Project, definition_ids: Iterable[int]) -> list[User]:
    ids = list(definition_ids)
    return [
        a.reviewer
        for a in ReviewAssignment.objects.filter(
            Q(stage_definition_id__in=ids) | Q(stage_definition__isnull=True),
            project=project,
            state=AssignmentState.ACTIVE,
        ).select_related("reviewer")
    ]


def _title(stage: ProjectStage) -> str:
    return f"stage {stage.definition.order} “{stage.definition.title}”"


# --- lifecycle events ---------------------------------------------------------------------


def _still_asking(stage: ProjectStage, revision: Any) -> list[User]:
    """Reviewers whose latest word on an earlier revision of this stage was a request for
    changes: a reviewer who asked on revision 1 and approved revision 2 is not waiting."""
    latest: dict[int, Decision] = {}
    for d in (
        Decision.objects.filter(revision__stage=stage, replaced_at__isnull=True)
        .exclude(revision=revision)
        .select_related("reviewer")
        .order_by("created_at", "pk")
    ):
        latest[d.reviewer_id] = d
    return [d.reviewer for d in latest.values() if d.outcome == DecisionOutcome.REQUEST_CHANGES]


def on_stage_submitted(
    *, stage: ProjectStage, revision: Any, actor: Any, resubmission: bool
) -> None:
    project = stage.project
    assigned = stage_reviewers(project, [stage.definition_id])
    staff = course_staff(project) if (resubmission or not assigned) else []
    reviewers = assigned or staff
    asked: list[User] = []
    if resubmission:
        # Only people who may still review the stage: an expert whose assignment was withdrawn
        # since asking would get a link to a page they can no longer open.
        may_review = {u.pk for u in [*assigned, *staff]}
        asked = [u for u in _still_asking(stage, revision) if u.pk in may_review]
        notify(
            recipients=asked,
            kind=NotificationKind.RESUBMITTED,
            project=project,
            stage=stage,
            key=f"resubmitted:r{revision.pk}:asked",
            subject=f"[{project.title}] Revision {revision.number} of {_title(stage)} answers "
            "your request for changes",
            body=f"{actor.name} resubmitted {_title(stage)} after the changes you asked for.",
            link=review_link(stage),
        )
    # One notification per person and event: whoever heard "answers your request" above does
    # not also get the general one.
    already = {u.pk for u in asked}
    notify(
        recipients=[u for u in reviewers if u.pk not in already],
        kind=NotificationKind.RESUBMITTED if resubmission else NotificationKind.REVIEW_REQUESTED,
        project=project,
        stage=stage,
        key=f"review_requested:r{revision.pk}",
        subject=f"[{project.title}] Review requested: {_title(stage)}, revision {revision.number}",
        body=f"{actor.name} submitted {_title(stage)} for review. Approve it or request changes "
        "on exactly this revision.",
        link=review_link(stage),
    )


def on_changes_requested(*, stage: ProjectStage, revision: Any, actor: Any, reason: str) -> None:
    project = stage.project
    notify(
        recipients=project_members(project),
        kind=NotificationKind.CHANGES_REQUESTED,
        project=project,
        stage=stage,
        key=f"changes_requested:r{revision.pk}",
        subject=f"[{project.title}] Changes requested on {_title(stage)}",
        body=f"{actor.name} asked for changes on revision {revision.number}:\n\n{reason}\n\n"
        "Revise the answers and submit again.",
        link=stage_link(stage),
    )


def on_stage_approved(
    *, stage: ProjectStage, revision: Any, actor: Any, next_stage: Any, override: bool
) -> None:
    project = stage.project
    opened = (
        f" {next_stage.definition.order}. {next_stage.definition.title} is open."
        if (next_stage)
        else " Choose the project's outcome on the Iterate stage."
    )
    notify(
        recipients=project_members(project),
        kind=NotificationKind.STAGE_APPROVED,
        project=project,
        stage=stage,
        key=f"stage_approved:s{stage.pk}:r{revision.pk}",
        subject=f"[{project.title}] Approved: {_title(stage)}",
        body=f"Revision {revision.number} of {_title(stage)} passed its gate.{opened}",
        link=stage_link(next_stage or stage),
    )
    if override:
        notify(
            recipients=[*project_members(project), *course_staff(project)],
            kind=NotificationKind.OVERRIDE,
            project=project,
            stage=stage,
            key=f"override:s{stage.pk}:r{revision.pk}",
            subject=f"[{project.title}] Instructor override on {_title(stage)}",
            body=f"{actor.name} approved {_title(stage)} without its quorum. Justification: "
            f"{stage.override_justification}",
            link=stage_link(stage),
        )


def on_looped_back(
    *, project: Project, actor: Any, from_stage: ProjectStage, to_stage: ProjectStage, reason: str
) -> None:
    reopened = list(
        project.stages.filter(cycle=project.cycle).values_list("definition_id", flat=True)
    )
    notify(
        recipients=[*project_members(project), *stage_reviewers(project, reopened)],
        kind=NotificationKind.LOOPED_BACK,
        project=project,
        stage=to_stage,
        key=f"looped_back:p{project.pk}:c{project.cycle}",
        subject=f"[{project.title}] Back to {_title(to_stage)}: cycle {project.cycle}",
        body=f"{actor.name} looped the project back to {_title(to_stage)} — cycle "
        f"{project.cycle}. What they learned:\n\n{reason}",
        link=stage_link(to_stage),
    )


def on_assignment_created(*, assignment: ReviewAssignment) -> None:
    """A reviewer assigned while the stage waits in review hears about it at once."""
    from lifecycle.models import StageStatus

    stages = ProjectStage.objects.filter(
        project_id=assignment.project_id, status=StageStatus.IN_REVIEW
    ).select_related("definition", "project", "current_revision")
    for stage in stages:
        if not assignment.covers(stage.definition_id) or stage.current_revision is None:
            continue
        notify(
            recipients=[assignment.reviewer],
            kind=NotificationKind.REVIEW_REQUESTED,
            project=stage.project,
            stage=stage,
            key=f"review_requested:r{stage.current_revision_id}",
            subject=f"[{stage.project.title}] Review requested: {_title(stage)}, revision "
            f"{stage.current_revision.number}",
            body=f"You were assigned to review {_title(stage)} of “{stage.project.title}”.",
            link=review_link(stage),
        )


def on_project_nudged(
    *, project: Project, actor: Any, stage: ProjectStage | None, message: str, day: dt.date
) -> None:
    """Course staff nudged the team from the board: once per project, person and day."""
    link = absolute(stage.get_absolute_url() if stage else project.get_absolute_url())
    notify(
        recipients=project.members.filter(is_active=True),
        kind=NotificationKind.NUDGE,
        key=f"nudge:p{project.pk}:a{actor.pk}:{day.isoformat()}",
        project=project,
        stage=stage,
        subject=f"[{project.title}] A nudge from {actor.name}",
        body=message or f"{actor.name} is waiting to hear from your team.",
        link=link,
        payload={"nudged_by": actor.pk},
    )


def connect() -> None:
    events.subscribe(events.STAGE_SUBMITTED, on_stage_submitted)
    events.subscribe(events.STAGE_CHANGES_REQUESTED, on_changes_requested)
    events.subscribe(events.STAGE_APPROVED, on_stage_approved)
    events.subscribe(events.PROJECT_LOOPED_BACK, on_looped_back)
    review_events.subscribe(review_events.ASSIGNMENT_CREATED, on_assignment_created)
    review_events.subscribe(review_events.PROJECT_NUDGED, on_project_nudged)
