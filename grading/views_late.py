"""The late-policy page for course staff: the rule, the graded stages' due dates, the teams'
extensions, and the standing grades the policy as it is now would change, with a button to
re-apply it. Each form posts to its own view; an invalid one comes back with its errors next
to its fields (400), the rest of the page as it was."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from lifecycle.errors import DomainError, InvalidAnswers
from lifecycle.forms import add_service_errors
from lifecycle.models import Course
from lifecycle.views.common import domain_error_page

from . import late_services
from . import permissions as grading_permissions
from .late import LatePolicy
from .late_forms import DueDatesForm, ExtensionForm, LatePolicyForm
from .models import DueDateExtension, GradingSettings, StageDueDate
from .selectors_late import course_extensions, get_course_for_staff, get_extension_for_staff

EXTENSIONS_SHOWN = 100
OUT_OF_POLICY_SHOWN = 100


@dataclass(frozen=True)
class ExtensionRow:
    extension: DueDateExtension
    stage_title: str
    revoke_url: str  # computed once per page, not a {% url %} per row


def _page_url(course: Course) -> str:
    return reverse("grading:late_policy", args=[course.pk])


def _render(
    request: HttpRequest,
    course: Course,
    *,
    rule_form: LatePolicyForm | None = None,
    due_form: DueDatesForm | None = None,
    extension_form: ExtensionForm | None = None,
    status: int = 200,
) -> HttpResponse:
    stages = late_services.graded_stage_keys(course)
    settings_row = GradingSettings.objects.filter(course=course).first()
    policy = LatePolicy.of_course(course.pk)
    if rule_form is None:
        rule_form = LatePolicyForm(
            initial={
                "rule": policy.rule,
                "percent_per_day": settings_row.late_percent_per_day if settings_row else 10,
                "cap_percent": settings_row.late_cap_percent if settings_row else 50,
            },
            action=reverse("grading:late_rule", args=[course.pk]),
        )
    if due_form is None:
        due = dict(StageDueDate.objects.filter(course=course).values_list("stage_key", "due_at"))
        due_form = DueDatesForm(
            initial={f"due_{key}": due.get(key) for key in stages},
            stages=stages,
            action=reverse("grading:due_dates", args=[course.pk]),
        )
    if extension_form is None:
        extension_form = ExtensionForm(
            course=course,
            stages=stages,
            action=reverse("grading:extension_grant", args=[course.pk]),
        )
    extensions, extension_count = course_extensions(course, limit=EXTENSIONS_SHOWN)
    revoke = reverse("grading:extension_revoke", args=[0])
    extension_rows = [
        ExtensionRow(
            extension=extension,
            stage_title=stages.get(extension.stage_key, extension.stage_key),
            revoke_url=revoke.replace("/0/", f"/{extension.pk}/"),
        )
        for extension in extensions
    ]
    out_of_policy = late_services.grades_out_of_policy(course)
    context: dict[str, Any] = {
        "course": course,
        "stages": stages,
        "policy": policy,
        "rule_form": rule_form,
        "due_form": due_form,
        "extension_form": extension_form,
        "extensions": extension_rows,
        "extension_count": extension_count,
        "out_of_policy": out_of_policy[:OUT_OF_POLICY_SHOWN],
        "out_of_policy_count": len(out_of_policy),
        "can_reapply": grading_permissions.can_moderate(request.user, course, settings_row),
        "tz": timezone.get_current_timezone_name(),
    }
    return render(request, "grading/late_policy.html", context, status=status)


@login_required
@require_GET
def late_policy(request: HttpRequest, course_pk: int) -> HttpResponse:
    return _render(request, get_course_for_staff(request.user, course_pk))


@login_required
@require_POST
def late_rule(request: HttpRequest, course_pk: int) -> HttpResponse:
    course = get_course_for_staff(request.user, course_pk)
    form = LatePolicyForm(request.POST, action=reverse("grading:late_rule", args=[course.pk]))
    if form.is_valid():
        try:
            late_services.late_policy_update(course=course, actor=request.user, **form.cleaned_data)
        except InvalidAnswers as invalid:
            add_service_errors(form, invalid.errors)
        except DomainError as error:
            return domain_error_page(request, error, back_url=_page_url(course))
        else:
            messages.success(request, "The late rule is saved. Standing grades keep theirs.")
            return redirect(_page_url(course))
    return _render(request, course, rule_form=form, status=400)


@login_required
@require_POST
def due_dates(request: HttpRequest, course_pk: int) -> HttpResponse:
    course = get_course_for_staff(request.user, course_pk)
    form = DueDatesForm(
        request.POST,
        stages=late_services.graded_stage_keys(course),
        action=reverse("grading:due_dates", args=[course.pk]),
    )
    if form.is_valid():
        try:
            late_services.due_dates_set(
                course=course, actor=request.user, due_dates=form.due_dates()
            )
        except InvalidAnswers as invalid:
            add_service_errors(form, invalid.errors)
        except DomainError as error:
            return domain_error_page(request, error, back_url=_page_url(course))
        else:
            messages.success(request, "The due dates are saved.")
            return redirect(_page_url(course))
    return _render(request, course, due_form=form, status=400)


@login_required
@require_POST
def extension_grant(request: HttpRequest, course_pk: int) -> HttpResponse:
    course = get_course_for_staff(request.user, course_pk)
    form = ExtensionForm(
        request.POST,
        course=course,
        stages=late_services.graded_stage_keys(course),
        action=reverse("grading:extension_grant", args=[course.pk]),
    )
    if form.is_valid():
        data = form.cleaned_data
        try:
            late_services.extension_grant(
                project=data["project"],
                actor=request.user,
                stage_key=data["stage_key"],
                due_at=data["due_at"],
                reason=data["reason"],
            )
        except InvalidAnswers as invalid:
            add_service_errors(form, invalid.errors)
        except DomainError as error:
            return domain_error_page(request, error, back_url=_page_url(course))
        else:
            messages.success(request, f"{data['project'].title} has its extension.")
            return redirect(_page_url(course))
    return _render(request, course, extension_form=form, status=400)


@login_required
@require_POST
def extension_revoke(request: HttpRequest, extension_pk: int) -> HttpResponse:
    extension = get_extension_for_staff(request.user, extension_pk)
    course = extension.project.course
    try:
        late_services.extension_revoke(extension=extension, actor=request.user)
    except DomainError as error:
        return domain_error_page(request, error, back_url=_page_url(course))
    messages.success(request, f"The extension of {extension.project.title} is revoked.")
    return redirect(_page_url(course))


@login_required
@require_POST
def late_reapply(request: HttpRequest, course_pk: int) -> HttpResponse:
    course = get_course_for_staff(request.user, course_pk)
    every = request.POST.get("all") == "1"
    chosen = [int(pk) for pk in request.POST.getlist("grade") if pk.isdigit()]
    if not chosen and not every:
        messages.error(request, "Choose the grades to re-apply the late policy to.")
        return redirect(_page_url(course))
    try:
        changed = late_services.late_penalty_reapply(
            course=course, actor=request.user, grade_ids=None if every else chosen
        )
    except DomainError as error:
        return domain_error_page(request, error, back_url=_page_url(course))
    messages.success(
        request,
        f"The late policy is re-applied to {len(changed)} grade{'s' if len(changed) != 1 else ''}.",
    )
    return redirect(_page_url(course))
