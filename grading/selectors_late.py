"""Reads of the late-policy and export pages, scoped to the person (404 for anyone else)."""

from __future__ import annotations

from typing import Any

from django.http import Http404

from lifecycle import permissions, selectors
from lifecycle.models import Course, Project

from .models import DueDateExtension


def get_course_for_staff(user: Any, course_pk: int) -> Course:
    """The course, if the user teaches it; everyone else learns nothing (404)."""
    course = (
        selectors.courses_for_user(user).select_related("template").filter(pk=course_pk).first()
    )
    if course is None or not permissions.is_course_staff(user, course):
        raise Http404("No such course.")
    return course


def get_extension_for_staff(user: Any, extension_pk: int) -> DueDateExtension:
    extension = (
        DueDateExtension.objects.select_related("project__course")
        .filter(pk=extension_pk, project__course__in=selectors.courses_for_user(user))
        .first()
    )
    if extension is None or not permissions.is_course_staff(user, extension.project.course):
        raise Http404("No such extension.")
    return extension


def course_extensions(course: Course, *, limit: int) -> tuple[list[DueDateExtension], int]:
    rows = DueDateExtension.objects.filter(
        project__in=Project.objects.filter(course=course).values("pk")
    )
    shown = list(rows.select_related("project", "granted_by").order_by("-created_at")[:limit])
    return shown, (rows.count() if len(shown) >= limit else len(shown))
