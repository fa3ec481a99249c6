"""Course staff's grading pages: the course's grading settings, the overview of standing
grades, a stage's reviewers' scores side by side with the moderator's grade form, and a
project's grade."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.models import User
from lifecycle import permissions as lifecycle_permissions
from lifecycle.errors import DomainError, InvalidAnswers
from lifecycle.forms import add_service_errors
from lifecycle.models import ProjectStage, Role
from lifecycle.views.common import domain_error_page
from reviews.selectors import hides_other_reviews

from . import aggregates, moderation
from .forms import GradeForm, GradingSettingsForm
from .models import ProjectGrade, Scorers, StageGrade, TeamSees
from .permissions import can_moderate

PROJECTS_PER_PAGE = 25


@login_required
@require_http_methods(["GET", "POST"])
def grading_settings(request: HttpRequest, course_pk: int) -> HttpResponse:
    course = aggregates.get_course_for_grading_staff(request.user, course_pk)
    row = aggregates.settings_of(course)
    stages = aggregates.graded_stage_columns(course)
    tas = User.objects.filter(memberships__course=course, memberships__role=Role.TA).order_by(
        "email"
    )
    weights = row.stage_weights if row else {}
    form = GradingSettingsForm(
        request.POST or None,
        tas=tas,
        stages=stages,
        initial={
            "scorers": row.scorers if row else Scorers.BOTH,
            "team_sees": row.team_sees if row else TeamSees.FINAL,
            "moderator": row.moderator_id if row else None,
            **{f"weight-{k}": weights.get(k, 1) for k, _ in stages},
        },
    )
    can_edit = lifecycle_permissions.is_instructor(request.user, course)
    status = 200
    if request.method == "POST":
        if not can_edit:
            raise PermissionDenied("Only the course's instructors change how it grades.")
        if form.is_valid():
            try:
                moderation.grading_settings_update(
                    course=course,
                    actor=request.user,
                    scorers=form.cleaned_data["scorers"],
                    team_sees=form.cleaned_data["team_sees"],
                    moderator=form.cleaned_data["moderator"],
                    stage_weights=form.weights(),
                )
            except InvalidAnswers as invalid:
                add_service_errors(form, invalid.errors)
            except DomainError as error:
                return domain_error_page(request, error)
            else:
                messages.success(request, f"The grading settings of {course.title} are saved.")
                return redirect(reverse("grading:settings", args=[course.pk]))
        messages.error(request, "Not saved: correct the fields below.")
        status = 400
    return render(
        request,
        "grading/settings.html",
        {"course": course, "form": form, "row": row, "can_edit": can_edit},
        status=status,
    )


@login_required
@require_GET
def course_grades(request: HttpRequest, course_pk: int) -> HttpResponse:
    """Projects by graded stages with their standing grades, paged; the queries do not grow with
    the number of projects or grades."""
    course = aggregates.get_course_for_grading_staff(request.user, course_pk)
    columns = aggregates.graded_stage_columns(course)
    page = Paginator(aggregates.course_projects(course), PROJECTS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    projects = list(page.object_list)
    ids = [p.pk for p in projects]
    stage_grades = aggregates.standing_stage_grades(ids)
    project_grades = {
        g.project_id: g
        for g in ProjectGrade.objects.filter(project_id__in=ids, replaced_at__isnull=True)
    }
    rows = []
    for project in projects:
        grades = stage_grades.get(project.pk, {})
        rows.append(
            {
                "project": project,
                "url": reverse("grading:project", args=[project.pk]),
                "cells": [
                    {
                        "grade": grades.get(key),
                        "url": reverse("grading:stage", args=[grades[key].stage_id])
                        if key in grades
                        else "",
                    }
                    for key, _ in columns
                ],
                "total": project_grades.get(project.pk),
            }
        )
    return render(
        request,
        "grading/course_grades.html",
        {
            "course": course,
            "columns": columns,
            "rows": rows,
            "page": page,
            "grading_on": aggregates.settings_of(course) is not None,
        },
    )


def _stage_page(
    request: HttpRequest, stage: Any, *, form: GradeForm | None = None, status: int = 200
) -> HttpResponse:
    course = stage.project.course
    row = aggregates.settings_of(course)
    # Independent review: a member of staff who reviews this stage and has not decided yet
    # does not read the others' scores here either.
    blind = hides_other_reviews(request.user, stage)
    scores = aggregates.stage_scores(stage, [] if blind else None)
    standing = aggregates.standing_stage_grade(stage)
    moderates = can_moderate(request.user, course, row) and scores.max_points > 0
    if moderates and form is None:
        initial: dict[str, Any] = {"points": scores.suggested}
        if standing is not None:
            initial = {
                "points": standing.points,
                "comment": standing.comment,
                "release": standing.released,
            }
        form = GradeForm(initial=initial, maximum=scores.max_points, button="Set the grade")
        form.helper.form_action = reverse("grading:stage_grade", args=[stage.pk])
    history = list(
        StageGrade.objects.filter(stage=stage, replaced_at__isnull=False)
        .select_related("moderator")
        .order_by("-created_at")[:20]
    )
    return render(
        request,
        "grading/stage.html",
        {
            "stage": stage,
            "project": stage.project,
            "course": course,
            "row": row,
            "scores": scores,
            "staff_columns": [c for c in scores.columns if c.role == "staff"],
            "standing": standing,
            "history": history,
            "form": form if moderates else None,
            "moderates": moderates,
            "blind": blind,
        },
        status=status,
    )


@login_required
@require_GET
def stage_grading(request: HttpRequest, stage_pk: int) -> HttpResponse:
    return _stage_page(request, aggregates.get_stage_for_grading_staff(request.user, stage_pk))


@login_required
@require_POST
def stage_grade(request: HttpRequest, stage_pk: int) -> HttpResponse:
    stage = aggregates.get_stage_for_grading_staff(request.user, stage_pk)
    course = stage.project.course
    if not can_moderate(request.user, course, aggregates.settings_of(course)):
        raise PermissionDenied("Only the course's instructors or its named moderator grade.")
    maximum = moderation.stage_max_points(stage)
    form = GradeForm(request.POST, maximum=maximum, button="Set the grade")
    form.helper.form_action = reverse("grading:stage_grade", args=[stage.pk])
    back = reverse("grading:stage", args=[stage.pk])
    if form.is_valid():
        try:
            grade = moderation.stage_grade_set(
                stage=stage,
                actor=request.user,
                points=form.cleaned_data["points"],
                comment=form.cleaned_data["comment"],
                release=form.cleaned_data["release"],
            )
        except InvalidAnswers as invalid:
            add_service_errors(form, invalid.errors)
        except DomainError as error:
            return domain_error_page(request, error, title="No grade was set", back_url=back)
        else:
            late = f" Late penalty {grade.late_penalty_percent} %." if grade.late_reason else ""
            messages.success(
                request, f"Grade set: {grade.final_points} of {grade.max_points}.{late}"
            )
            return redirect(back)
    messages.error(request, "No grade was set: correct the fields below.")
    return _stage_page(request, stage, form=form, status=400)


def _project_page(
    request: HttpRequest, project: Any, *, form: GradeForm | None = None, status: int = 200
) -> HttpResponse:
    row = aggregates.settings_of(project.course)
    suggested, maximum, grades = aggregates.suggested_project_total(project, row)
    standing = aggregates.standing_project_grade(project)
    moderates = can_moderate(request.user, project.course, row)
    if moderates and form is None:
        initial: dict[str, Any] = {"points": suggested}
        if standing is not None:
            initial = {
                "points": standing.points,
                "comment": standing.comment,
                "release": standing.released,
            }
        form = GradeForm(initial=initial, maximum=maximum, button="Set the project grade")
        form.helper.form_action = reverse("grading:project_grade", args=[project.pk])
    columns = aggregates.graded_stage_columns(project.course)
    latest = {
        key: pk
        for key, pk in ProjectStage.objects.filter(
            project=project, definition__key__in=[k for k, _ in columns]
        )
        .order_by("cycle")
        .values_list("definition__key", "pk")
    }
    return render(
        request,
        "grading/project.html",
        {
            "project": project,
            "course": project.course,
            "row": row,
            "stage_rows": [
                {
                    "key": key,
                    "title": title,
                    "grade": grades.get(key),
                    "url": reverse("grading:stage", args=[latest[key]]) if key in latest else "",
                }
                for key, title in columns
            ],
            "suggested": suggested,
            "maximum": maximum,
            "standing": standing,
            "form": form if moderates else None,
        },
        status=status,
    )


@login_required
@require_GET
def project_grading(request: HttpRequest, project_pk: int) -> HttpResponse:
    return _project_page(
        request, aggregates.get_project_for_grading_staff(request.user, project_pk)
    )


@login_required
@require_POST
def project_grade(request: HttpRequest, project_pk: int) -> HttpResponse:
    project = aggregates.get_project_for_grading_staff(request.user, project_pk)
    if not can_moderate(request.user, project.course, aggregates.settings_of(project.course)):
        raise PermissionDenied("Only the course's instructors or its named moderator grade.")
    form = GradeForm(request.POST, maximum=moderation.PROJECT_MAX, button="Set the project grade")
    form.helper.form_action = reverse("grading:project_grade", args=[project.pk])
    back = reverse("grading:project", args=[project.pk])
    if form.is_valid():
        try:
            grade = moderation.project_grade_set(
                project=project,
                actor=request.user,
                points=form.cleaned_data["points"],
                comment=form.cleaned_data["comment"],
                release=form.cleaned_data["release"],
            )
        except InvalidAnswers as invalid:
            add_service_errors(form, invalid.errors)
        except DomainError as error:
            return domain_error_page(request, error, title="No grade was set", back_url=back)
        else:
            messages.success(request, f"Project grade set: {grade.points} of {grade.max_points}.")
            return redirect(back)
    messages.error(request, "No grade was set: correct the fields below.")
    return _project_page(request, project, form=form, status=400)
