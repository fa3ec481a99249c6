"""Gate policies that cannot be met are refused when a template or a course is saved; which blind
review applies to a stage of a course."""

from __future__ import annotations

from typing import Any

from .models import (
    Course,
    ExpertInvitationPolicy,
    IndependentReview,
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


def independent_review_mode(course: Course, definition: StageDefinition) -> str:
    """The course's setting for this stage, else the course's for every stage, else the
    template's (an IndependentReview value)."""
    per_stage = course.independent_review_stages or {}
    mode = per_stage.get(definition.key) or course.independent_review
    return mode or definition.independent_review or IndependentReview.OFF


def independent_review_errors(course: Course) -> list[str]:
    valid = set(IndependentReview.values)
    errors = []
    if course.independent_review and course.independent_review not in valid:
        errors.append(f"“{course.independent_review}” is not a kind of independent review.")
    per_stage = course.independent_review_stages
    if not isinstance(per_stage, dict):
        return [*errors, "The per-stage independent review must map stage keys to a setting."]
    keys = (
        set(course.template.stages.values_list("key", flat=True)) if course.template_id else set()
    )
    for key, mode in per_stage.items():
        if key not in keys:
            errors.append(f"The course's template has no stage “{key}”.")
        elif mode not in valid:
            errors.append(f"“{mode}” is not a kind of independent review (stage “{key}”).")
    return errors
