"""Who reviews what. Course staff may review any project of their course; a domain expert only
what an active assignment covers; nobody reviews a project they are a member of."""

from __future__ import annotations

from typing import Any

from django.db.models import F

from lifecycle import permissions as lifecycle_permissions
from lifecycle.models import Project, StageDefinition

from .models import AssignmentState, ReviewAssignment, ReviewerRole


def active_assignment(user: Any, project: Project, definition_id: int) -> ReviewAssignment | None:
    if not getattr(user, "is_authenticated", False):
        return None
    candidates = ReviewAssignment.objects.filter(
        project=project, reviewer=user, state=AssignmentState.ACTIVE
    ).order_by(
        # A stage assignment before a whole-project one (SQLite sorts NULL first by default).
        F("stage_definition_id").asc(nulls_last=True)
    )
    for assignment in candidates:
        if assignment.covers(definition_id):
            return assignment
    return None


def reviewer_role(
    user: Any, project: Project, definition: StageDefinition | int
) -> tuple[str | None, ReviewAssignment | None]:
    """(role, assignment) under which ``user`` may decide on this stage, or (None, None)."""
    if not getattr(user, "is_authenticated", False):
        return None, None
    if lifecycle_permissions.is_project_member(user, project):
        return None, None
    definition_id = definition if isinstance(definition, int) else definition.pk
    assignment = active_assignment(user, project, definition_id)
    if assignment is not None:
        return assignment.role, assignment
    if lifecycle_permissions.is_course_staff(user, project.course):
        return ReviewerRole.STAFF, None
    return None, None


def can_review(user: Any, project: Project, definition: StageDefinition | int) -> bool:
    return reviewer_role(user, project, definition)[0] is not None


def can_see_project_reviews(user: Any, project: Project) -> bool:
    """Team, course staff, and anyone with an active assignment on the project."""
    if lifecycle_permissions.can_view_project(user, project):
        return True
    return (
        bool(getattr(user, "is_authenticated", False))
        and ReviewAssignment.objects.filter(
            project=project, reviewer=user, state=AssignmentState.ACTIVE
        ).exists()
    )


def can_see_stage(user: Any, stage: Any) -> bool:
    project = stage.project
    if lifecycle_permissions.can_view_project(user, project):
        return True
    return active_assignment(user, project, stage.definition_id) is not None
