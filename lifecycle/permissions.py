"""Who may see and do what in a course. Every view and service asks here."""

from __future__ import annotations

from typing import Any

from .models import STAFF_ROLES, Course, Membership, Project, Role


def _authenticated(user: Any) -> bool:
    return bool(user is not None and getattr(user, "is_authenticated", False))


def course_role(user: Any, course: Course) -> str | None:
    if not _authenticated(user):
        return None
    return (
        Membership.objects.filter(course=course, user=user).values_list("role", flat=True).first()
    )


def is_course_member(user: Any, course: Course) -> bool:
    return course_role(user, course) is not None


def is_course_staff(user: Any, course: Course) -> bool:
    return course_role(user, course) in STAFF_ROLES


def is_instructor(user: Any, course: Course) -> bool:
    return course_role(user, course) == Role.INSTRUCTOR


def is_project_member(user: Any, project: Project) -> bool:
    if not _authenticated(user):
        return False
    # A page that has fetched the team already answers from it, without another query.
    cached = getattr(project, "_prefetched_objects_cache", {}).get("members")
    if cached is not None:
        return any(member.pk == user.pk for member in cached)
    return project.members.filter(pk=user.pk).exists()


def can_view_project(user: Any, project: Project) -> bool:
    return is_project_member(user, project) or is_course_staff(user, project.course)
