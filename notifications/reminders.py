"""The daily reminder sweep.

Reviewers whose review has been pending longer than the course's interval are reminded, once
per interval, up to the course's limit; after that the course staff get one escalation. Teams
are nudged two days before a stage is due and when a request for changes has sat unanswered for
the interval. Every reminder has a unique identity, so a second sweep (or a second beat) finds
it taken and sends nothing; queries grow with the number of batches, not of assignments.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from lifecycle.models import STAFF_ROLES, Membership, ProjectStage, ProjectStatus, StageStatus
from reviews.models import AssignmentState, Decision, DecisionOutcome, ReviewAssignment

from .models import Notification, NotificationKind, Reminder
from .services import build_notification, review_link, stage_link, store

BATCH = 500


@dataclass
class Planned:
    reminder: Reminder
    notifications: list[Notification] = field(default_factory=list)


def _commit(planned: list[Planned]) -> int:
    """Insert the batch's reminders; only those that were not there yet get notifications.
    Returns how many reminders were new."""
    if not planned:
        return 0
    identities = [p.reminder.identity for p in planned]
    with transaction.atomic():
        existing = set(
            Reminder.objects.filter(identity__in=identities).values_list("identity", flat=True)
        )
        fresh = [p for p in planned if p.reminder.identity not in existing]
        Reminder.objects.bulk_create([p.reminder for p in fresh], ignore_conflicts=True)
        # Notifications carry the reminder's identity in their dedupe key, so a sweep racing
        # this one inserts nothing twice even if both thought a reminder was theirs.
        store([n for p in fresh for n in p.notifications])
    return len(fresh)


def _staff_by_course(course_ids: set[int]) -> dict[int, list[Any]]:
    staff: dict[int, list[Any]] = defaultdict(list)
    for m in Membership.objects.filter(
        course_id__in=course_ids, role__in=STAFF_ROLES
    ).select_related("user"):
        staff[m.course_id].append(m.user)
    return staff


def review_reminders(now: dt.datetime) -> int:
    """Reminders and escalations for reviews pending longer than the course's interval."""
    stages = (
        ProjectStage.objects.filter(
            status=StageStatus.IN_REVIEW,
            project__status=ProjectStatus.ACTIVE,
            current_revision__isnull=False,
        )
        .select_related("project__course", "definition", "current_revision")
        .order_by("pk")
    )
    created = 0
    last_pk = 0
    while True:
        batch = list(stages.filter(pk__gt=last_pk)[:BATCH])
        if not batch:
            return created
        last_pk = batch[-1].pk
        by_project: dict[int, list[ProjectStage]] = defaultdict(list)
        for stage in batch:
            by_project[stage.project_id].append(stage)
        assignments = ReviewAssignment.objects.filter(
            project_id__in=by_project, state=AssignmentState.ACTIVE
        ).select_related("reviewer")
        decided = set(
            Decision.objects.filter(
                revision_id__in=[s.current_revision_id for s in batch], replaced_at__isnull=True
            ).values_list("revision_id", "reviewer_id")
        )
        staff = _staff_by_course({s.project.course_id for s in batch})
        planned: list[Planned] = []
        for assignment in assignments:
            for stage in by_project[assignment.project_id]:
                if not assignment.covers(stage.definition_id):
                    continue
                revision = stage.current_revision
                if revision is None or (revision.pk, assignment.reviewer_id) in decided:
                    continue
                course = stage.project.course
                interval = dt.timedelta(days=course.reminder_interval_days)
                waiting_since = max(revision.created_at, assignment.created_at)
                periods = int((now - waiting_since) / interval) if interval else 0
                title = f"stage {stage.definition.order} “{stage.definition.title}”"
                # Only the reminder due now: a sweep that did not run for a week must not send
                # reminders 1 and 2 in one go. Earlier numbers are never planned again, as
                # ``periods`` only grows while the revision waits.
                n = min(periods, course.reminder_limit)
                if n >= 1:
                    identity = f"review_reminder:a{assignment.pk}:r{revision.pk}:{n}"
                    planned.append(
                        Planned(
                            Reminder(
                                kind=NotificationKind.REVIEW_REMINDER,
                                assignment=assignment,
                                stage=stage,
                                revision=revision,
                                sequence=n,
                                identity=identity,
                            ),
                            [
                                build_notification(
                                    assignment.reviewer,
                                    kind=NotificationKind.REVIEW_REMINDER,
                                    key=identity,
                                    stage=stage,
                                    link=review_link(stage),
                                    subject=f"[{stage.project.title}] Reminder {n}: your review of "
                                    f"{title} is waiting",
                                    body=f"Revision {revision.number} has waited "
                                    f"{(now - waiting_since).days} days for your decision.",
                                )
                            ],
                        )
                    )
                if periods > course.reminder_limit:
                    identity = f"review_escalation:a{assignment.pk}:r{revision.pk}"
                    planned.append(
                        Planned(
                            Reminder(
                                kind=NotificationKind.REVIEW_ESCALATION,
                                assignment=assignment,
                                stage=stage,
                                revision=revision,
                                sequence=1,
                                identity=identity,
                            ),
                            [
                                build_notification(
                                    person,
                                    kind=NotificationKind.REVIEW_ESCALATION,
                                    key=identity,
                                    stage=stage,
                                    link=review_link(stage),
                                    subject=f"[{stage.project.title}] Overdue review: "
                                    f"{assignment.reviewer.name} on {title}",
                                    body=f"{assignment.reviewer.name} has not decided on revision "
                                    f"{revision.number} after {course.reminder_limit} "
                                    "reminders. Reassign the review or follow up.",
                                )
                                # Not the late reviewer, if they are staff themselves.
                                for person in staff[course.pk]
                                if person.pk != assignment.reviewer_id
                            ],
                        )
                    )
        created += _commit(planned)


def _batches(queryset: Any) -> Any:
    """Keyset pages of BATCH stages: one query per page, however many rows there are."""
    last_pk = 0
    while True:
        batch = list(queryset.filter(pk__gt=last_pk).order_by("pk")[:BATCH])
        if not batch:
            return
        last_pk = batch[-1].pk
        yield batch


def due_soon_nudges(now: dt.datetime) -> int:
    """Two days before a stage is due, once per due date (a moved date nudges again)."""
    today = timezone.localdate(now)
    stages = (
        ProjectStage.objects.filter(
            status__in=[StageStatus.DRAFTING, StageStatus.CHANGES_REQUESTED],
            project__status=ProjectStatus.ACTIVE,
            due_date__gte=today,
            due_date__lte=today + dt.timedelta(days=2),
        )
        .select_related("project", "definition")
        .prefetch_related("project__members")
    )
    created = 0
    for batch in _batches(stages):
        planned: list[Planned] = []
        for stage in batch:
            identity = f"due_soon:s{stage.pk}:{stage.due_date.isoformat()}"
            title = f"stage {stage.definition.order} “{stage.definition.title}”"
            planned.append(
                Planned(
                    Reminder(kind=NotificationKind.DUE_SOON, stage=stage, identity=identity),
                    [
                        build_notification(
                            member,
                            kind=NotificationKind.DUE_SOON,
                            key=identity,
                            stage=stage,
                            link=stage_link(stage),
                            subject=f"[{stage.project.title}] {title} is due "
                            f"{stage.due_date:%d %b}",
                            body=f"{title.capitalize()} is due on {stage.due_date:%A %d %B}.",
                        )
                        for member in stage.project.members.all()
                    ],
                )
            )
        created += _commit(planned)
    return created


def changes_unanswered_nudges(now: dt.datetime) -> int:
    """A request for changes with no new revision and no work on the draft for the course's
    interval nudges the team, once per revision. The interval runs from the request (not from
    the submission, which may be days older) or from the team's last edit of the draft."""
    stages = (
        ProjectStage.objects.filter(
            status=StageStatus.CHANGES_REQUESTED,
            project__status=ProjectStatus.ACTIVE,
            current_revision__isnull=False,
        )
        .select_related("project__course", "definition", "current_revision")
        .prefetch_related("project__members")
    )
    created = 0
    for batch in _batches(stages):
        # The first request for changes on the revision is the one that sent the stage back.
        requested_at = dict(
            Decision.objects.filter(
                revision_id__in=[s.current_revision_id for s in batch],
                outcome=DecisionOutcome.REQUEST_CHANGES,
            )
            .order_by()
            .values("revision_id")
            .annotate(first=Min("created_at"))
            .values_list("revision_id", "first")
        )
        planned: list[Planned] = []
        for stage in batch:
            revision = stage.current_revision
            interval = dt.timedelta(days=stage.project.course.reminder_interval_days)
            last_activity = max(
                t
                for t in (
                    requested_at.get(revision.pk),
                    revision.created_at,
                    stage.draft_updated_at,
                )
                if t is not None
            )
            if not interval or now - last_activity < interval:
                continue
            identity = f"changes_unanswered:s{stage.pk}:r{revision.pk}"
            title = f"stage {stage.definition.order} “{stage.definition.title}”"
            planned.append(
                Planned(
                    Reminder(
                        kind=NotificationKind.CHANGES_UNANSWERED,
                        stage=stage,
                        revision=revision,
                        identity=identity,
                    ),
                    [
                        build_notification(
                            member,
                            kind=NotificationKind.CHANGES_UNANSWERED,
                            key=identity,
                            stage=stage,
                            link=stage_link(stage),
                            subject=f"[{stage.project.title}] Changes still requested on {title}",
                            body="Reviewers asked for changes and are waiting for your next "
                            "revision.",
                        )
                        for member in stage.project.members.all()
                    ],
                )
            )
        created += _commit(planned)
    return created


def team_nudges(now: dt.datetime) -> int:
    """Two days before a stage is due, and when a change request sits unanswered."""
    return due_soon_nudges(now) + changes_unanswered_nudges(now)


def sweep_reminders(now: dt.datetime | None = None) -> dict[str, int]:
    now = now or timezone.now()
    return {"reviews": review_reminders(now), "teams": team_nudges(now)}
