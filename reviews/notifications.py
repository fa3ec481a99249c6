"""Who hears about what. Each event writes Notification rows in the transaction of the state
change (the outbox); delivery is queued on commit and the sweeper catches whatever that missed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from accounts.models import EmailFrequency, User
from lifecycle import events
from lifecycle.models import STAFF_ROLES, Membership, Project, ProjectStage
from notifications.models import EmailStatus, Notification, NotificationKind

from .models import AssignmentState, Decision, DecisionOutcome, ReviewAssignment


def absolute(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def review_link(stage: ProjectStage) -> str:
    try:
        return absolute(reverse("reviews:review_stage", args=[stage.pk]))
    except NoReverseMatch:  # the review pages are not installed (never in production)
        return absolute(stage.get_absolute_url())


def stage_link(stage: ProjectStage) -> str:
    return absolute(stage.get_absolute_url())


def build_notification(
    user: User,
    *,
    kind: str,
    key: str,
    subject: str,
    body: str,
    link: str,
    project: Project | None = None,
    stage: ProjectStage | None = None,
    payload: dict[str, Any] | None = None,
) -> Notification:
    """One person's row for the event ``key``; people on the daily digest wait for it."""
    return Notification(
        recipient=user,
        email=user.email,
        kind=kind,
        project=project if project is not None else (stage.project if stage else None),
        stage=stage,
        subject=subject[:250],
        body=body,
        link=link,
        payload=payload or {},
        dedupe_key=f"{key}:u{user.pk}"[:200],
        email_status=(
            EmailStatus.DIGEST
            if user.email_frequency == EmailFrequency.DAILY_DIGEST
            else EmailStatus.PENDING
        ),
    )


def store(rows: list[Notification]) -> list[int]:
    """Insert the rows (those whose dedupe key exists already are left alone) and queue the
    e-mails due now for after the commit. Returns their ids."""
    if not rows:
        return []
    Notification.objects.bulk_create(rows, ignore_conflicts=True)
    ids = list(
        Notification.objects.filter(
            dedupe_key__in=[r.dedupe_key for r in rows], email_status=EmailStatus.PENDING
        ).values_list("pk", flat=True)
    )
    if ids:
        from .tasks import enqueue_delivery

        transaction.on_commit(lambda: enqueue_delivery(ids))
    return ids


def notify(
    *,
    recipients: Iterable[User],
    kind: str,
    key: str,
    subject: str,
    body: str,
    link: str,
    project: Project | None = None,
    stage: ProjectStage | None = None,
    payload: dict[str, Any] | None = None,
) -> list[int]:
    """Write one notification per distinct active recipient for the event ``key``; replaying
    the event writes nothing new. Returns the ids of rows to e-mail now."""
    people = {u.pk: u for u in recipients if u is not None and u.is_active}
    return store(
        [
            build_notification(
                user,
                kind=kind,
                key=key,
                subject=subject,
                body=body,
                link=link,
                project=project,
                stage=stage,
                payload=payload,
            )
            for user in people.values()
        ]
    )


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


def on_assignment_created(assignment: ReviewAssignment) -> None:
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


def connect() -> None:
    events.subscribe(events.STAGE_SUBMITTED, on_stage_submitted)
    events.subscribe(events.STAGE_CHANGES_REQUESTED, on_changes_requested)
    events.subscribe(events.STAGE_APPROVED, on_stage_approved)
    events.subscribe(events.PROJECT_LOOPED_BACK, on_looped_back)


# --- reading in the app ---------------------------------------------------------------------
# A person's own flag on their own rows: no lock, no audit event. The conditional UPDATE names
# the recipient, so nobody can mark someone else's notification, and a second click is a no-op.


def notification_mark_read(*, user: User, notification: Notification) -> bool:
    return bool(
        Notification.objects.filter(
            pk=notification.pk, recipient_id=user.pk, read_at__isnull=True
        ).update(read_at=timezone.now())
    )


def notifications_mark_all_read(*, user: User) -> int:
    return Notification.objects.filter(recipient_id=user.pk, read_at__isnull=True).update(
        read_at=timezone.now()
    )
