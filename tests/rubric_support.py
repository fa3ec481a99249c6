"""Helpers shared by the rubric and moderation tests: a course that grades, stage 1 of Alice's
project in review with Erin as its expert, and a full set of scores for its rubric."""

from __future__ import annotations

from typing import Any

from factories import current_stage, declare_no_conflict, fill_and_submit

from grading.models import GradingSettings
from reviews import services as review_services

STAGE_ONE_CRITERIA = ("stakeholders", "can-be-done", "should-be-done")


def grading_on(course: Any, **fields: Any) -> GradingSettings:
    return GradingSettings.objects.create(course=course, **fields)


def stage_one_in_review(p: Any) -> tuple[Any, Any]:
    stage = current_stage(p.project)
    review_services.assignment_create(
        project=stage.project,
        actor=p.tina,
        reviewer=p.erin,
        role="expert",
        stage_definition=stage.definition,
    )
    declare_no_conflict(stage.project, p.erin)
    revision = fill_and_submit(stage, p.alice)
    stage.refresh_from_db()
    return stage, revision


def scores(*values: Any) -> dict[str, Any]:
    """Scores for stage 1's criteria in order; one value scores every criterion alike."""
    if len(values) == 1:
        values = values * len(STAGE_ONE_CRITERIA)
    return dict(zip(STAGE_ONE_CRITERIA, values, strict=True))


def post_scores(*values: Any) -> dict[str, str]:
    return {f"rubric-{k}": str(v) for k, v in scores(*values).items()}
