"""Every write of the late policy: the course's rule, its stages' due dates, the teams'
extensions, re-applying the policy to standing grades, and the record of a grade export.

Each service opens its transaction, locks the row it changes, checks that the actor teaches the
course, validates, writes and appends an audit event last (lifecycle's rule). Changing the rule
or a due date never rewrites a moderated grade: ``grades_out_of_policy`` shows staff which
standing grades the policy would now give another penalty, and ``late_penalty_reapply`` applies
it, each as a new grade that replaces the old one (kept, as every replaced grade is).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from lifecycle import events, permissions
from lifecycle.audit import audit_record
from lifecycle.errors import InvalidAnswers, NotAllowed
from lifecycle.models import Course, Project, ProjectStage

from . import permissions as grading_permissions
from .aggregates import graded_stage_columns
from .compute import LatePenalty, apply_penalty
from .events import STAGE_GRADE_SET
from .late import LatePolicy, penalties_for_stages
from .models import (
    DueDateExtension,
    GradingSettings,
    LatePenaltyRule,
    StageDueDate,
    StageGrade,
)

REASON_MAX = 500


def _require_staff(actor: Any, course: Course, what: str) -> None:
    if not permissions.is_course_staff(actor, course):
        raise NotAllowed(f"Only course staff {what}.")


def graded_stage_keys(course: Course) -> dict[str, str]:
    """key -> title of the stages of the course's template that have a rubric, in order."""
    return dict(graded_stage_columns(course))


def _lock_settings(course: Course) -> GradingSettings:
    GradingSettings.objects.get_or_create(course=course)
    return GradingSettings.objects.select_for_update(of=("self",), no_key=True).get(course=course)


def late_policy_errors(rule: str, percent_per_day: Decimal, cap_percent: Decimal) -> dict:
    errors: dict[str, list[str]] = {}
    if rule not in LatePenaltyRule.values:
        errors["rule"] = ["Choose no penalty, a percentage per day or a cut-off."]
    for field, value in (("percent_per_day", percent_per_day), ("cap_percent", cap_percent)):
        if value is None or not Decimal(value).is_finite() or not 0 <= value <= 100:
            errors[field] = ["A percentage from 0 to 100."]
        elif Decimal(value) != Decimal(value).quantize(Decimal("0.01")):
            errors[field] = ["At most two decimal places."]
    if rule == LatePenaltyRule.PER_DAY and not errors:
        if percent_per_day <= 0:
            errors["percent_per_day"] = ["A penalty per day above 0 (or choose no penalty)."]
        elif cap_percent < percent_per_day:
            errors["cap_percent"] = [
                "The cap is below one day's penalty: a day late would already cost more than "
                "the cap. Raise the cap or lower the penalty per day."
            ]
    return errors


@transaction.atomic
def late_policy_update(
    *,
    course: Course,
    actor: Any,
    rule: str,
    percent_per_day: Decimal,
    cap_percent: Decimal,
) -> GradingSettings:
    """Set the course's late rule and its numbers. Standing grades keep their penalty until
    a moderator re-applies the policy to them."""
    _require_staff(actor, course, "set the late policy")
    percent_per_day, cap_percent = Decimal(percent_per_day), Decimal(cap_percent)
    errors = late_policy_errors(rule, percent_per_day, cap_percent)
    if errors:
        raise InvalidAnswers(errors)
    row = _lock_settings(course)
    old: dict[str, Any] = {
        "late_rule": row.late_rule,
        "late_percent_per_day": row.late_percent_per_day,
        "late_cap_percent": row.late_cap_percent,
    }
    new = {
        "late_rule": rule,
        "late_percent_per_day": percent_per_day,
        "late_cap_percent": cap_percent,
    }
    changed = [
        key
        for key in new
        if (old[key] != new[key] if key == "late_rule" else Decimal(old[key]) != new[key])
    ]
    if not changed:
        return row
    for key in changed:
        setattr(row, key, new[key])
    row.updated_at = timezone.now()
    row.save(update_fields=[*changed, "updated_at"])
    audit_record(
        actor=actor,
        verb="grading.late_policy",
        obj=row,
        course=course,
        old={key: old[key] for key in changed},
        new={key: new[key] for key in changed},
    )
    return row


def _graded_key(course: Course, stage_key: str) -> str:
    if stage_key not in graded_stage_keys(course):
        raise InvalidAnswers({"stage_key": ["Not a graded stage of this course."]})
    return stage_key


@transaction.atomic
def due_date_set(
    *, course: Course, actor: Any, stage_key: str, due_at: dt.datetime | None
) -> StageDueDate | None:
    """The course's due date for a graded stage; ``None`` removes it."""
    _require_staff(actor, course, "set due dates")
    _graded_key(course, stage_key)
    _lock_settings(course)  # one writer of the course's late policy at a time
    row = StageDueDate.objects.filter(course=course, stage_key=stage_key).first()
    old = row.due_at if row else None
    if old == due_at:
        return row
    if due_at is None:
        assert row is not None
        audit_record(
            actor=actor,
            verb="grading.due_date_remove",
            obj=row,
            course=course,
            old={"stage_key": stage_key, "due_at": old},
        )
        row.delete()
        return None
    if row is None:
        row = StageDueDate.objects.create(course=course, stage_key=stage_key, due_at=due_at)
    else:
        row.due_at = due_at
        row.save(update_fields=["due_at"])
    audit_record(
        actor=actor,
        verb="grading.due_date_set",
        obj=row,
        course=course,
        old={"stage_key": stage_key, "due_at": old},
        new={"stage_key": stage_key, "due_at": due_at},
    )
    return row


@transaction.atomic
def extension_grant(
    *, project: Project, actor: Any, stage_key: str, due_at: dt.datetime, reason: str
) -> DueDateExtension:
    """A team's own due date for a graded stage, with the reason; granting again moves it."""
    course = project.course
    _require_staff(actor, course, "grant extensions")
    _graded_key(course, stage_key)
    reason = (reason or "").strip()
    if not reason:
        raise InvalidAnswers({"reason": ["Say why the team gets more time."]})
    if len(reason) > REASON_MAX:
        raise InvalidAnswers({"reason": [f"Keep the reason under {REASON_MAX} characters."]})
    if due_at is None:
        raise InvalidAnswers({"due_at": ["The team's new due date."]})
    _lock_settings(course)
    row = DueDateExtension.objects.filter(project=project, stage_key=stage_key).first()
    old = {"due_at": row.due_at, "reason": row.reason} if row else None
    if row is None:
        row = DueDateExtension.objects.create(
            project=project, stage_key=stage_key, due_at=due_at, reason=reason, granted_by=actor
        )
    else:
        if row.due_at == due_at and row.reason == reason:
            return row
        row.due_at, row.reason, row.granted_by = due_at, reason, actor
        row.created_at = timezone.now()
        row.save(update_fields=["due_at", "reason", "granted_by", "created_at"])
    audit_record(
        actor=actor,
        verb="grading.extension_grant",
        obj=row,
        project=project,
        old=old,
        new={"stage_key": stage_key, "due_at": due_at, "reason": reason},
    )
    return row


@transaction.atomic
def extension_revoke(*, extension: DueDateExtension, actor: Any) -> None:
    project = Project.objects.select_related("course").get(pk=extension.project_id)
    _require_staff(actor, project.course, "revoke extensions")
    _lock_settings(project.course)
    row = DueDateExtension.objects.filter(pk=extension.pk).first()
    if row is None:
        return
    audit_record(
        actor=actor,
        verb="grading.extension_revoke",
        obj=row,
        project=project,
        old={"stage_key": row.stage_key, "due_at": row.due_at, "reason": row.reason},
    )
    row.delete()


# --- standing grades against the policy as it is now -----------------------------------------


@dataclass(frozen=True)
class OutOfPolicy:
    grade: StageGrade
    penalty: LatePenalty  # what the policy gives now

    @property
    def final_points(self) -> Decimal:
        return apply_penalty(self.grade.points, self.penalty.percent)


def grades_out_of_policy(course: Course) -> list[OutOfPolicy]:
    """The course's standing stage grades whose late penalty the policy as it is now would set
    differently, in a fixed number of queries (four) however many there are."""
    standing = list(
        StageGrade.objects.filter(replaced_at__isnull=True, stage__project__course=course)
        .select_related("stage__definition", "stage__project")
        .order_by("stage__project__title", "stage__definition__order", "stage__cycle")
    )
    penalties = penalties_for_stages(
        [grade.stage for grade in standing],
        course_id=course.pk,
        policy=LatePolicy.of_course(course.pk),
    )
    return [
        OutOfPolicy(grade, penalties[grade.stage_id])
        for grade in standing
        if penalties[grade.stage_id].percent != grade.late_penalty_percent
        or penalties[grade.stage_id].reason != grade.late_reason
    ]


@transaction.atomic
def late_penalty_reapply(
    *, course: Course, actor: Any, grade_ids: Iterable[int] | None = None
) -> list[StageGrade]:
    """Apply the late policy as it is now to the course's standing grades it would change
    (those of ``grade_ids`` only, if given): each becomes a new standing grade with the new
    penalty, its reason and final points, the moderator's points and comment kept; the old one
    is kept as replaced. One audit event per grade, and the grade-set event (passback)."""
    settings_row = GradingSettings.objects.filter(course=course).first()
    if not grading_permissions.can_moderate(actor, course, settings_row):
        raise NotAllowed("Only a moderator of this course re-applies the late policy.")
    _lock_settings(course)
    wanted = set(grade_ids) if grade_ids is not None else None
    changed = [
        row for row in grades_out_of_policy(course) if wanted is None or row.grade.pk in wanted
    ]
    if not changed:
        return []
    # The stages first (lifecycle's lock order: project, stage, then the audit chain), so a
    # moderator's grade of the same stage waits for this one rather than forking it.
    list(
        ProjectStage.objects.select_for_update(of=("self",), no_key=True)
        .filter(pk__in=sorted({row.grade.stage_id for row in changed}))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    locked = {
        grade.pk: grade
        for grade in StageGrade.objects.select_for_update(of=("self",), no_key=True).filter(
            pk__in=[row.grade.pk for row in changed], replaced_at__isnull=True
        )
    }
    now = timezone.now()
    new_grades = []
    for row in changed:
        old = locked.get(row.grade.pk)
        if old is None:  # replaced meanwhile by a moderator: theirs stands
            continue
        old.replaced_at = now
        old.save(update_fields=["replaced_at"])
        grade = StageGrade.objects.create(
            stage=row.grade.stage,
            revision_id=old.revision_id,
            points=old.points,
            max_points=old.max_points,
            late_penalty_percent=row.penalty.percent,
            late_reason=row.penalty.reason[:300],
            final_points=row.final_points,
            comment=old.comment,
            moderator_id=old.moderator_id,
            released=old.released,
            created_at=now,
        )
        project = row.grade.stage.project
        audit_record(
            actor=actor,
            verb="grading.stage_grade_late_reapplied",
            obj=grade,
            course=course,
            project=project,
            old={
                "grade": old.pk,
                "late_penalty_percent": old.late_penalty_percent,
                "late_reason": old.late_reason,
                "final_points": old.final_points,
            },
            new={
                "stage": row.grade.stage.definition.key,
                "cycle": row.grade.stage.cycle,
                "late_penalty_percent": grade.late_penalty_percent,
                "late_reason": grade.late_reason,
                "final_points": grade.final_points,
                "max_points": grade.max_points,
            },
        )
        events.publish(STAGE_GRADE_SET, grade=grade, actor=actor)
        new_grades.append(grade)
    return new_grades


@transaction.atomic
def grade_export_record(*, course: Course, actor: Any, rows: int, columns: list[str]) -> None:
    """The audit trail's record of a grade export: who took the course's grades, when, and
    which columns."""
    _require_staff(actor, course, "export grades")
    audit_record(
        actor=actor,
        verb="grading.export",
        obj=course,
        course=course,
        new={"rows": rows, "columns": columns},
    )


@transaction.atomic
def due_dates_set(*, course: Course, actor: Any, due_dates: dict[str, dt.datetime | None]) -> None:
    """Several stages' due dates at once: all of them or none."""
    for stage_key, due_at in due_dates.items():
        due_date_set(course=course, actor=actor, stage_key=stage_key, due_at=due_at)
