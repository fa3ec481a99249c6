"""Due dates and the late penalty of a stage, read from the course's settings."""

from __future__ import annotations

from datetime import datetime

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
    settings_row = GradingSettings.objects.filter(course_id=project.course_id).first()
    rule = settings_row.late_rule if settings_row else LatePenaltyRule.NONE
    due_at = due_at_for(
        project_id=project.pk, course_id=project.course_id, stage_key=stage.definition.key
    )
    return late_penalty(
        rule=rule,
        percent_per_day=settings_row.late_percent_per_day if settings_row else 0,
        cap_percent=settings_row.late_cap_percent if settings_row else 0,
        due_at=due_at,
        submitted_at=first_submitted_at(stage),
    )
