"""A course's review settings: experts, who may invite them, link expiry, reminders and blind
review (independent review per course and per stage, anonymous reviewers)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from lifecycle.errors import DomainError, InvalidAnswers
from lifecycle.forms import add_service_errors
from lifecycle.models import Role
from lifecycle.services import course_update_settings

from ..forms import CourseSettingsForm
from .common import domain_error_page, get_course_for_instructor

RECENT_JOINS = 20


@login_required
@require_http_methods(["GET", "POST"])
def course_settings(request: HttpRequest, course_pk: int) -> HttpResponse:
    course = get_course_for_instructor(request.user, course_pk)
    stages = list(course.template.stages.order_by("order"))
    form = CourseSettingsForm(
        request.POST or None,
        initial=CourseSettingsForm.initial_for(course, stages),
        stages=stages,
    )
    if request.method == "POST" and form.is_valid():
        try:
            course_update_settings(course=course, actor=request.user, **form.settings())
        except InvalidAnswers as invalid:
            add_service_errors(form, invalid.errors)
        except DomainError as error:
            return domain_error_page(request, error)
        else:
            messages.success(request, f"The review settings of {course.title} are saved.")
            return redirect(reverse("reviews:course_settings", args=[course.pk]))
    if request.method == "POST":
        messages.error(request, "Not saved: the settings below cannot work together.")
    return render(
        request,
        "reviews/course_settings.html",
        {
            "course": course,
            "form": form,
            "expert_stages": [s for s in stages if s.min_expert_approvals],
            # Who came in lately, so staff notice a leaked code before rotating it.
            "recent_joins": list(
                course.memberships.filter(role=Role.STUDENT)
                .select_related("user")
                .order_by("-joined_at", "-pk")[:RECENT_JOINS]
            ),
            "recent_limit": RECENT_JOINS,
        },
        status=400 if request.method == "POST" else 200,
    )
