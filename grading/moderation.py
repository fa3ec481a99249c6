"""Every write of grading's rubric and moderation side: the course's grading settings, the
moderated grade of a stage and of a project. Same rules as the other layers' services: one
transaction, the row locked first, permission and state checked, an audit event, then the
domain event the LMS passback subscribes to."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from lifecycle import events as lifecycle_events
from lifecycle import permissions as lifecycle_permissions
from lifecycle.audit import audit_record
from lifecycle.errors import IllegalTransition, InvalidAnswers, NotAllowed
from lifecycle.models import Course, Project, ProjectStage, Role

from . import events
from .compute import apply_penalty, cents, criteria_of, rubric_total
from .late import penalty_for_stage
from .models import GradingSettings, ProjectGrade, StageGrade
from .permissions import can_moderate

PROJECT_MAX = Decimal("100.00")


def stage_max_points(stage: ProjectStage) -> Decimal:
    """The most a stage's rubric gives (every criterion at its top level)."""
    return rubric_total(criteria_of(stage.definition.rubric), {})[1]


def _settings_for_update(course: Course) -> GradingSettings:
    row = GradingSettings.objects.select_for_update().filter(course=course).first()
    if row is None:
        raise IllegalTransition("This course does not grade: turn grading on in its settings.")
    return row


@transaction.atomic
def grading_settings_update(
    *,
    course: Course,
    actor: Any,
    scorers: str,
    team_sees: str,
    moderator: Any = None,
    stage_weights: dict[str, Any] | None = None,
) -> GradingSettings:
    """Turn grading on for a course (the first save) or change who scores, what the team sees,
    the moderating TA and the stages' weights. The late policy has its own page."""
    if not lifecycle_permissions.is_instructor(actor, course):
        raise NotAllowed("Only the course's instructors change how it grades.")
    if moderator is not None and lifecycle_permissions.course_role(moderator, course) != Role.TA:
        raise InvalidAnswers({"moderator": ["The moderator must be a TA of this course."]})
    for key, weight in (stage_weights or {}).items():
        try:
            ok = Decimal(str(weight)) >= 0
        except ArithmeticError:
            ok = False
        if not ok:
            raise InvalidAnswers({"stage_weights": [f"The weight of {key} must be 0 or more."]})
    row = GradingSettings.objects.select_for_update().filter(course=course).first()
    old = None
    if row is None:
        row = GradingSettings(course=course)
    else:
        old = {
            "scorers": row.scorers,
            "team_sees": row.team_sees,
            "moderator": row.moderator_id,
            "stage_weights": row.stage_weights,
        }
    row.scorers = scorers
    row.team_sees = team_sees
    row.moderator = moderator
    if stage_weights is not None:
        row.stage_weights = {k: str(v) for k, v in stage_weights.items()}
    row.updated_at = timezone.now()
    row.save()
    audit_record(
        actor=actor,
        verb="grading.settings_update" if old else "grading.settings_create",
        obj=row,
        course=course,
        old=old,
        new={
            "scorers": row.scorers,
            "team_sees": row.team_sees,
            "moderator": row.moderator_id,
            "stage_weights": row.stage_weights,
        },
    )
    return row


@transaction.atomic
def stage_grade_set(
    *,
    stage: ProjectStage,
    actor: Any,
    points: Decimal,
    comment: str = "",
    release: bool = False,
) -> StageGrade:
    """The moderator's grade of a stage, out of its rubric's maximum: the late penalty of the
    stage as it stands (``grading.late``) is applied and its reason recorded, and the grade
    replaces the standing one (kept, marked replaced)."""
    # The stage row is the lock: two moderators grading one stage take turns, and the second
    # replaces the first's grade instead of both standing.
    stage = (
        ProjectStage.objects.select_for_update(of=("self",), no_key=True)
        .select_related("definition", "project__course", "current_revision")
        .get(pk=stage.pk)
    )
    course = stage.project.course
    settings_row = GradingSettings.objects.filter(course=course).first()
    if settings_row is None:
        raise IllegalTransition("This course does not grade: turn grading on in its settings.")
    if not can_moderate(actor, course, settings_row):
        raise NotAllowed("Only the course's instructors or its named moderator set grades.")
    maximum = stage_max_points(stage)
    if maximum <= 0:
        raise IllegalTransition(f"{stage.definition.title} has no rubric: it is not graded.")
    points = Decimal(points)
    if not points.is_finite() or not (0 <= points <= maximum):
        raise InvalidAnswers({"points": [f"A grade is from 0 to {maximum} points."]})
    points = cents(points)
    penalty = penalty_for_stage(stage)
    now = timezone.now()
    standing = StageGrade.objects.filter(stage=stage, replaced_at__isnull=True).first()
    if standing is not None:
        standing.replaced_at = now
        standing.save(update_fields=["replaced_at"])
    grade = StageGrade.objects.create(
        stage=stage,
        revision=stage.current_revision,
        points=points,
        max_points=maximum,
        late_penalty_percent=penalty.percent,
        late_reason=penalty.reason,
        final_points=apply_penalty(points, penalty.percent),
        comment=comment.strip(),
        moderator=actor,
        released=release,
        created_at=now,
    )
    audit_record(
        actor=actor,
        verb="grade.stage_set",
        obj=grade,
        project=stage.project,
        old=_stage_grade_payload(standing) if standing else None,
        new={**_stage_grade_payload(grade), "stage": stage.definition.key, "cycle": stage.cycle},
    )
    lifecycle_events.publish(events.STAGE_GRADE_SET, grade=grade, actor=actor)
    return grade


def _stage_grade_payload(grade: StageGrade) -> dict[str, Any]:
    return {
        "points": str(grade.points),
        "max_points": str(grade.max_points),
        "late_penalty_percent": str(grade.late_penalty_percent),
        "late_reason": grade.late_reason,
        "final_points": str(grade.final_points),
        "comment": grade.comment,
        "released": grade.released,
        "revision": grade.revision.number if grade.revision_id and grade.revision else None,
    }


@transaction.atomic
def project_grade_set(
    *,
    project: Project,
    actor: Any,
    points: Decimal,
    comment: str = "",
    release: bool = False,
) -> ProjectGrade:
    """The moderator's grade of a whole project, out of 100, replacing the standing one."""
    project = (
        Project.objects.select_for_update(of=("self",), no_key=True)
        .select_related("course")
        .get(pk=project.pk)
    )
    settings_row = GradingSettings.objects.filter(course=project.course).first()
    if settings_row is None:
        raise IllegalTransition("This course does not grade: turn grading on in its settings.")
    if not can_moderate(actor, project.course, settings_row):
        raise NotAllowed("Only the course's instructors or its named moderator set grades.")
    points = Decimal(points)
    if not points.is_finite() or not (0 <= points <= PROJECT_MAX):
        raise InvalidAnswers({"points": [f"A project grade is from 0 to {PROJECT_MAX}."]})
    now = timezone.now()
    standing = ProjectGrade.objects.filter(project=project, replaced_at__isnull=True).first()
    if standing is not None:
        standing.replaced_at = now
        standing.save(update_fields=["replaced_at"])
    grade = ProjectGrade.objects.create(
        project=project,
        points=cents(points),
        max_points=PROJECT_MAX,
        comment=comment.strip(),
        moderator=actor,
        released=release,
        created_at=now,
    )
    payload = {
        "points": str(grade.points),
        "max_points": str(grade.max_points),
        "comment": grade.comment,
        "released": grade.released,
    }
    audit_record(
        actor=actor,
        verb="grade.project_set",
        obj=grade,
        project=project,
        old={
            "points": str(standing.points),
            "comment": standing.comment,
            "released": standing.released,
        }
        if standing
        else None,
        new=payload,
    )
    lifecycle_events.publish(events.PROJECT_GRADE_SET, grade=grade, actor=actor)
    return grade
