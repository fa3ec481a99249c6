"""Helpers shared by the review views."""

from __future__ import annotations

from typing import Any, cast

from django.http import Http404, HttpRequest
from django.shortcuts import get_object_or_404
from django.urls import reverse

from accounts.models import User
from lifecycle import permissions as lifecycle_permissions
from lifecycle.models import Course, ProjectStage

# Domain errors become pages the lifecycle views already use: NotAllowed → 404 with the
# reason, IllegalTransition → 409, never a 500.
from lifecycle.views.common import domain_error_page

__all__ = ["domain_error_page", "get_course_for_instructor", "signed_in", "stage_landing_url"]


def signed_in(request: HttpRequest) -> User:
    """The user of a @login_required view (never AnonymousUser there)."""
    return cast(User, request.user)


def get_course_for_instructor(user: Any, course_pk: int) -> Course:
    course = get_object_or_404(Course.objects.select_related("template"), pk=course_pk)
    if not lifecycle_permissions.is_instructor(user, course):
        raise Http404("No such course.")
    return course


def stage_landing_url(project: Any, definition: Any) -> str | None:
    """The review page of a stage definition in the project's latest cycle that has it."""
    stage_pk = (
        ProjectStage.objects.filter(project=project, definition=definition)
        .order_by("-cycle")
        .values_list("pk", flat=True)
        .first()
    )
    return reverse("reviews:review_stage", args=[stage_pk]) if stage_pk else None
