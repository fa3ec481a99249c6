"""Due dates and the late penalty of a stage, read from the course's settings."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Min
from django.utils import timezone

from lifecycle.models import ProjectStage, StageRevision

from .compute import LatePenalty, late_penalty
from .models import DueDateExtension, GradingSettings, LatePenaltyRule, StageDueDate


def due_at_for(*, project_id: int, course_id: int, stage_key: str) -> datetime | None:
    """The team's due date for a stage: its extension if staff granted one, else the
    course's."""
    extension = (
        DueDateExtension.objects.filter(project_id=project_id, stage_key=stage_key)
        .values_list("due_at", flat=True)
        .first()
    )
    if extension is not None:
        return extension
    return (
        StageDueDate.objects.filter(course_id=course_id, stage_key=stage_key)
        .values_list("due_at", flat=True)
        .first()
    )


def first_submitted_at(stage: ProjectStage) -> datetime | None:
    """When the team first submitted this stage: a resubmission after a request for changes
    is not late work."""
    return (
        StageRevision.objects.filter(stage_id=stage.pk)
        .order_by("created_at")
        .values_list("created_at", flat=True)
        .first()
    )


def penalty_for_stage(stage: ProjectStage) -> LatePenalty:
    """The late penalty of a stage as it stands: its first submission against the team's due
    date, under the course's rule."""
    project = stage.project
    due_at = due_at_for(
        project_id=project.pk, course_id=project.course_id, stage_key=stage.definition.key
    )
    return LatePolicy.of_course(project.course_id).penalty(
        due_at=due_at, submitted_at=first_submitted_at(stage)
    )


# --- many stages at once, and what the team reads ------------------------------------------


@dataclass(frozen=True)
class LatePolicy:
    rule: str
    percent_per_day: Decimal
    cap_percent: Decimal

    @classmethod
    def of_course(cls, course_id: int) -> LatePolicy:
        row = (
            GradingSettings.objects.filter(course_id=course_id)
            .values_list("late_rule", "late_percent_per_day", "late_cap_percent")
            .first()
        )
        if row is None:
            return cls(LatePenaltyRule.NONE, Decimal(0), Decimal(0))
        return cls(*row)

    def penalty(self, *, due_at: datetime | None, submitted_at: datetime | None) -> LatePenalty:
        return late_penalty(
            rule=self.rule,
            percent_per_day=self.percent_per_day,
            cap_percent=self.cap_percent,
            due_at=due_at,
            submitted_at=submitted_at,
        )

    def in_words(self) -> str:
        """The rule as the team reads it before the due date."""
        if self.rule == LatePenaltyRule.PER_DAY:
            return (
                f"Late work loses {self.percent_per_day.normalize():f} % of its grade for each "
                f"day or part of a day after the due date, up to "
                f"{self.cap_percent.normalize():f} %."
            )
        if self.rule == LatePenaltyRule.CUTOFF:
            return "Work first submitted after the due date gets no credit."
        return "Late work keeps its full grade: this course takes no late penalty."


def penalties_for_stages(
    stages: Iterable[ProjectStage], *, course_id: int, policy: LatePolicy | None = None
) -> dict[int, LatePenalty]:
    """The penalty of each stage (by id) as it stands, in three queries whatever their number:
    the course's due dates, the teams' extensions, the stages' first submissions."""
    stages = list(stages)
    if not stages:
        return {}
    policy = policy or LatePolicy.of_course(course_id)
    due = dict(StageDueDate.objects.filter(course_id=course_id).values_list("stage_key", "due_at"))
    project_ids = {stage.project_id for stage in stages}
    extended = {
        (project_id, key): due_at
        for project_id, key, due_at in DueDateExtension.objects.filter(
            project_id__in=project_ids
        ).values_list("project_id", "stage_key", "due_at")
    }
    first = dict(
        StageRevision.objects.filter(stage_id__in=[stage.pk for stage in stages])
        .order_by()
        .values("stage_id")
        .annotate(first=Min("created_at"))
        .values_list("stage_id", "first")
    )
    out = {}
    for stage in stages:
        key = stage.definition.key
        due_at = extended.get((stage.project_id, key), due.get(key))
        out[stage.pk] = policy.penalty(due_at=due_at, submitted_at=first.get(stage.pk))
    return out


@dataclass(frozen=True)
class DueStatus:
    """What the team sees about one stage's due date."""

    course_due_at: datetime | None
    due_at: datetime  # the team's: its extension, else the course's
    extension_reason: str
    policy: LatePolicy
    submitted_at: datetime | None
    penalty: LatePenalty

    @property
    def extended(self) -> bool:
        return bool(self.extension_reason)

    @property
    def late_now(self) -> bool:
        return self.submitted_at is None and self.penalty.days_late > 0


def due_status(
    stage: ProjectStage, *, now: datetime | None = None, policy: LatePolicy | None = None
) -> DueStatus | None:
    """The stage's due date for its team, the rule, and how late it is (if it is); None when
    the stage has no due date. ``policy``: the course's, when the caller has read it."""
    project = stage.project
    key = stage.definition.key
    course_due = (
        StageDueDate.objects.filter(course_id=project.course_id, stage_key=key)
        .values_list("due_at", flat=True)
        .first()
    )
    extension = (
        DueDateExtension.objects.filter(project_id=project.pk, stage_key=key)
        .values_list("due_at", "reason")
        .first()
    )
    if course_due is None and extension is None:
        return None
    due_at = extension[0] if extension else course_due
    assert due_at is not None
    if policy is None:
        policy = LatePolicy.of_course(project.course_id)
    submitted_at = first_submitted_at(stage)
    # Not submitted yet: as late as it would be if submitted now.
    penalty = policy.penalty(due_at=due_at, submitted_at=submitted_at or now or timezone.now())
    return DueStatus(
        course_due_at=course_due,
        due_at=due_at,
        extension_reason=extension[1] if extension else "",
        policy=policy,
        submitted_at=submitted_at,
        penalty=penalty,
    )
