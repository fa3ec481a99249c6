"""Builders for the grading tests: rubrics on the course's stages, and moderated grades
written directly (the rubric pages' services set them in the app)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.utils import timezone

from grading.models import GradingSettings, StageGrade
from lifecycle.models import Course, ProjectStage, StageDefinition, StageRevision

RUBRIC = {
    "criteria": [
        {
            "key": "clarity",
            "title": "Clarity",
            "allow_na": False,
            "levels": [{"points": 0, "label": "Missing"}, {"points": 6, "label": "Clear"}],
        },
        {
            "key": "stakeholders",
            "title": "Stakeholders",
            "allow_na": True,
            "levels": [{"points": 0, "label": "None"}, {"points": 4, "label": "All"}],
        },
    ]
}  # maximum 10


def grade_stages(course: Course, count: int = 2) -> list[StageDefinition]:
    """Give the first ``count`` stages of the course's template the rubric, and the others
    none (the default template grades six stages; these tests want a known few)."""
    every = list(course.template.stages.order_by("order"))
    stages = every[:count]
    for stage in every:
        stage.rubric = RUBRIC if stage in stages else {}
        stage.save(update_fields=["rubric"])
    return stages


def set_grade(
    stage: ProjectStage,
    *,
    points: str,
    moderator: Any,
    max_points: str = "10",
    late_percent: str = "0",
    late_reason: str = "",
) -> StageGrade:
    StageGrade.objects.filter(stage=stage, replaced_at__isnull=True).update(
        replaced_at=timezone.now()
    )
    points_d, percent = Decimal(points), Decimal(late_percent)
    return StageGrade.objects.create(
        stage=stage,
        revision=stage.current_revision,
        points=points_d,
        max_points=Decimal(max_points),
        late_penalty_percent=percent,
        late_reason=late_reason,
        final_points=(points_d * (100 - percent) / 100).quantize(Decimal("0.01")),
        moderator=moderator,
    )


def submitted_at(stage: ProjectStage, moment: dt.datetime) -> None:
    """Move the stage's revisions to ``moment`` (revisions are immutable to the app)."""
    StageRevision.objects.filter(stage=stage).update(created_at=moment)


def late_settings(course: Course, **fields: Any) -> GradingSettings:
    row, _ = GradingSettings.objects.get_or_create(course=course)
    for key, value in fields.items():
        setattr(row, key, value)
    row.save()
    return row
