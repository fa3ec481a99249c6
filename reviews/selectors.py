"""Reads of the review layer used by more than one view."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.http import Http404

from lifecycle.models import ProjectStage

from . import permissions
from .models import AssignmentState, Decision, ReviewAssignment
from .services import gate_for_stage


def assignments_for_stage(stage: ProjectStage) -> QuerySet[ReviewAssignment]:
    return ReviewAssignment.objects.filter(
        Q(stage_definition=stage.definition_id) | Q(stage_definition__isnull=True),
        project_id=stage.project_id,
        state=AssignmentState.ACTIVE,
    ).select_related("reviewer")


def gate_panel_context(stage: ProjectStage) -> dict[str, Any]:
    gate = gate_for_stage(stage)
    decisions = []
    if stage.current_revision_id:
        decisions = list(
            Decision.objects.filter(
                revision_id=stage.current_revision_id, replaced_at__isnull=True
            ).select_related("reviewer")
        )
    decided = {d.reviewer_id for d in decisions}
    waiting = [a for a in assignments_for_stage(stage) if a.reviewer_id not in decided]
    stale = list(
        Decision.objects.filter(revision__stage=stage, replaced_at__isnull=True)
        .exclude(revision_id=stage.current_revision_id)
        .select_related("reviewer", "revision")
        .order_by("-created_at")[:20]
    )
    return {
        "stage": stage,
        "gate": gate,
        "decisions": decisions,
        "waiting": waiting,
        "stale": stale,
    }


def get_reviewable_stage(user: Any, stage_pk: int) -> ProjectStage:
    """The stage, for its team, course staff and its assigned reviewers; 404 for anyone else."""
    stage = (
        ProjectStage.objects.select_related("project__course", "definition", "current_revision")
        .filter(pk=stage_pk)
        .first()
    )
    if stage is None or not permissions.can_see_stage(user, stage):
        raise Http404("No such review.")
    return stage
