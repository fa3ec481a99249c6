"""Grades out to the platform: the grading layer publishes a moderated grade, LTI queues it
for every team member the platform knows (Assignment and Grade Services), and the grade
export reads students' LMS user ids from here."""

from __future__ import annotations

from typing import Any

from lifecycle.models import Course

from .models import LtiUser
from .services.passback import queue_project_total, queue_score


def stage_grade_set(*, grade: Any, **_: Any) -> None:
    """A released stage grade goes to the platform's gradebook; an unreleased one stays on
    the board, so the LMS never shows a student a grade staff have not released."""
    if not grade.released:
        return
    stage = grade.stage
    project = stage.project
    for member in project.members.all():
        queue_score(
            course=project.course,
            stage_key=stage.definition.key,
            user=member,
            score_given=grade.final_points,
            score_maximum=grade.max_points,
            comment=grade.comment,
            label=stage.definition.title,
        )


def project_grade_set(*, grade: Any, **_: Any) -> None:
    if not grade.released:
        return
    project = grade.project
    for member in project.members.all():
        queue_project_total(
            course=project.course,
            user=member,
            score_given=grade.points,
            score_maximum=grade.max_points,
            comment=grade.comment,
        )


def lms_user_ids(course: Course, users: list[Any]) -> dict[int, str]:
    """{user id: LMS user id} for the students of a course linked to a platform."""
    rows = LtiUser.objects.filter(
        user__in=[user.pk for user in users], platform__contexts__course=course
    ).values_list("user_id", "lms_user_id", "sub")
    return {user_id: lms_id or sub for user_id, lms_id, sub in rows}
