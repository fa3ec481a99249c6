"""Gate policies that cannot be met are refused when a template or a course is saved."""

from __future__ import annotations

from typing import Any

from .models import (
    Course,
    ExpertInvitationPolicy,
    LifecycleTemplate,
    ProjectStatus,
    StageDefinition,
)


def _expert_errors(course: Any, stages: list[Any]) -> list[str]:
    errors = []
    needing = [s for s in stages if s.min_expert_approvals > 0]
    if needing and not course.allows_experts:
        names = ", ".join(dict.fromkeys(f"{s.order}. {s.title}" for s in needing))
        errors.append(
            f"The course “{course.title}” allows no domain experts, but its template requires "
            f"expert approvals on: {names}. Allow experts or lower those gates."
        )
    return errors


def course_policy_errors(course: Course, template: LifecycleTemplate) -> list[str]:
    stages = list(template.stages.all()) if template.pk else []
    if course.pk:
        # Running projects keep the template version they started on; their gates count too.
        stages += (
            StageDefinition.objects.filter(
                template__projects__course=course, template__projects__status=ProjectStatus.ACTIVE
            )
            .exclude(template_id=template.pk)
            .distinct()
        )
    errors = _expert_errors(course, stages)
    if course.allows_experts is False and course.expert_invitations != (
        ExpertInvitationPolicy.NOT_ALLOWED
    ):
        errors.append("A course without domain experts cannot let teams invite experts.")
    return errors


def stage_policy_errors(stage: StageDefinition) -> list[str]:
    errors = []
    if stage.min_approvals < stage.min_staff_approvals + stage.min_expert_approvals:
        errors.append(
            f"“{stage.title}” asks for {stage.min_staff_approvals} staff and "
            f"{stage.min_expert_approvals} expert approvals but only {stage.min_approvals} in "
            "all; the total must be at least their sum."
        )
    if stage.min_approvals < 1:
        errors.append(f"“{stage.title}” must need at least one approval.")
    if stage.template_id:
        for course in Course.objects.filter(template_id=stage.template_id):
            errors.extend(_expert_errors(course, [stage]))
    return errors
