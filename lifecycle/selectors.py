"""Reads used by more than one view: always scoped to what the user may see."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.http import Http404

from .models import STAFF_ROLES, Course, Project, ProjectStage


def courses_for_user(user: Any) -> QuerySet[Course]:
    if not getattr(user, "is_authenticated", False):
        return Course.objects.none()
    return Course.objects.filter(memberships__user=user).distinct()


def projects_for_user(user: Any) -> QuerySet[Project]:
    """Projects the user is on, and every project of the courses they teach."""
    if not getattr(user, "is_authenticated", False):
        return Project.objects.none()
    return Project.objects.filter(
        Q(members=user)
        | Q(course__memberships__user=user, course__memberships__role__in=STAFF_ROLES)
    ).distinct()


def get_project_for_user(user: Any, pk: int) -> Project:
    """The project, or 404 for anyone who may not see it (never 403: its existence is private)."""
    project = (
        projects_for_user(user)
        .select_related("course", "template", "current_stage__definition")
        .filter(pk=pk)
        .first()
    )
    if project is None:
        raise Http404("No such project.")
    return project


def cycle_timeline(project: Project, cycle: int | None = None) -> list[ProjectStage]:
    """One row per stage definition for ``cycle`` (the current one by default): the stage's row
    in that cycle, or, for stages before its loop-back point, the latest row of an earlier
    cycle."""
    rows = (
        ProjectStage.objects.filter(project=project, cycle__lte=cycle or project.cycle)
        .select_related("definition", "current_revision")
        .order_by("definition__order", "-cycle")
    )
    latest: dict[int, ProjectStage] = {}
    for row in rows:
        latest.setdefault(row.definition_id, row)
    return sorted(latest.values(), key=lambda s: s.definition.order)


def current_cycle_timeline(project: Project) -> list[ProjectStage]:
    return cycle_timeline(project)
