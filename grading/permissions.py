"""Who grades: course staff read scores and grades; instructors moderate, and so does the TA
a course names in its grading settings."""

from __future__ import annotations

from typing import Any

from lifecycle import permissions as lifecycle_permissions
from lifecycle.models import Course, Role

from .models import GradingSettings


def can_moderate(user: Any, course: Course, settings_row: GradingSettings | None) -> bool:
    if settings_row is None:
        return False
    role = lifecycle_permissions.course_role(user, course)
    if role == Role.INSTRUCTOR:
        return True
    return role == Role.TA and settings_row.moderator_id == getattr(user, "pk", None)
