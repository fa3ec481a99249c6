"""Grading's panels on lifecycle's project overview and stage page (registered in
``lifecycle.panels``).

The due-date panel: the team's due date for the stage (its extension, with the reason, where
staff granted one), the course's late rule in words, and, once the date has passed, how late
the stage is and what that costs.

The grade panel: the team sees what the course's ``team_sees`` setting allows, and only once
a moderator has released the stage's grade: nothing, the moderated grade with its comment and
late reason, or that plus every reviewer's rubric scores (named as the course's anonymity
says). Provisional, unmoderated scores never reach the team. Course staff get a link to the
grading page."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from lifecycle import permissions as lifecycle_permissions
from reviews.anonymity import names_for_team

from . import aggregates
from .compute import criteria_of
from .late import LatePolicy, due_status
from .models import GradingSettings, StageGrade, TeamSees


def _grading_of(request: HttpRequest, course_id: int) -> GradingSettings | None:
    """The course's grading settings, read once per request for both panels. A course without
    them grades nothing and has no due dates (saving a late policy or a due date creates
    them), so its pages pay one query for grading."""
    cache = request.__dict__.setdefault("_grading_settings", {})
    if course_id not in cache:
        cache[course_id] = GradingSettings.objects.filter(course_id=course_id).first()
    return cache[course_id]


def due_panel(request: HttpRequest, stage: Any) -> str:
    row = _grading_of(request, stage.project.course_id)
    if row is None or not criteria_of(stage.definition.rubric):
        return ""
    policy = LatePolicy(row.late_rule, row.late_percent_per_day, row.late_cap_percent)
    status = due_status(stage, policy=policy)
    if status is None:
        return ""
    context = {"stage": stage, "due": status, "tz": timezone.get_current_timezone_name()}
    return render_to_string("grading/partials/due_panel.html", context, request=request)


def grade_panel(request: HttpRequest, stage: Any) -> str:
    if not criteria_of(stage.definition.rubric):
        return ""
    project = stage.project
    row = _grading_of(request, project.course_id)
    if row is None:
        return ""
    user = request.user
    if lifecycle_permissions.is_course_staff(user, project.course):
        return render_to_string(
            "grading/partials/stage_panel_staff.html",
            {
                "url": reverse("grading:stage", args=[stage.pk]),
                "grade": StageGrade.objects.filter(stage=stage, replaced_at__isnull=True).first(),
            },
            request=request,
        )
    if not lifecycle_permissions.is_project_member(user, project):
        return ""
    if row.team_sees == TeamSees.NOTHING:
        return ""
    grade = StageGrade.objects.filter(stage=stage, replaced_at__isnull=True, released=True).first()
    if grade is None:
        return ""
    scores = None
    if row.team_sees == TeamSees.PROVISIONAL:
        # The scores of the decisions on the revision the grade was given for.
        decisions = [
            d for d in aggregates.scored_decisions(stage) if d.revision_id == grade.revision_id
        ]
        names_for_team(project).mask(decisions, "reviewer")
        scores = aggregates.stage_scores(stage, decisions)
    return render_to_string(
        "grading/partials/stage_panel_team.html",
        {"grade": grade, "scores": scores},
        request=request,
    )
