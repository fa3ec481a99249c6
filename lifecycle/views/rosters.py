"""Rosters by upload: course staff preview a CSV (who is new, who exists, which lines are
wrong) before anything is written, then apply it."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from lifecycle import rosters
from lifecycle import template_selectors as selectors
from lifecycle.errors import DomainError, InvalidAnswers
from lifecycle.models import Role
from lifecycle.views.common import domain_error_page


class RosterForm(forms.Form):
    file = forms.FileField(label="Roster CSV", help_text="Columns: email, name, team (optional).")
    role = forms.ChoiceField(
        choices=[(Role.STUDENT, "Students"), (Role.TA, "Teaching assistants")],
        initial=Role.STUDENT,
    )


@login_required
@require_http_methods(["GET", "POST"])
def course_roster(request: HttpRequest, course_pk: int) -> HttpResponse:
    course = selectors.get_course_for_staff(request.user, course_pk)
    here = reverse("lifecycle:course_roster", args=[course.pk])
    role = request.POST.get("role", Role.STUDENT)
    if request.method == "POST" and request.POST.get("action") == "apply":
        try:
            applied = rosters.roster_apply(
                course=course, actor=request.user, text=request.POST.get("csv", ""), role=role
            )
        except InvalidAnswers as invalid:
            for message in invalid.errors.get("file", []):
                messages.error(request, message)
            return redirect(here)
        except DomainError as error:
            return domain_error_page(request, error, back_url=here)
        messages.success(
            request,
            f"Roster applied: {applied.count(rosters.ENROL)} enrolled, "
            f"{applied.count(rosters.NEW)} invited, "
            f"{applied.count(rosters.UPDATE) + applied.count(rosters.RECORD)} updated, "
            f"{applied.count(rosters.UNCHANGED)} unchanged; "
            f"{applied.team_count(rosters.CREATE)} teams created, "
            f"{applied.team_count(rosters.JOIN)} joined.",
        )
        return redirect(here)
    form = RosterForm(request.POST or None, request.FILES or None)
    preview = text = None
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                text = rosters.decode_upload(form.cleaned_data["file"].read())
            except InvalidAnswers as invalid:
                form.add_error("file", invalid.errors["file"][0])
                status = 400
            else:
                preview = rosters.preview_roster(course, text, role=form.cleaned_data["role"])
                status = 200 if preview.ok else 400
        else:
            status = 400
    return render(
        request,
        "lifecycle/course_roster.html",
        {
            "course": course,
            "form": form,
            "preview": preview,
            "csv_text": text,
            "role": role,
            "entries": course.roster.select_related("project").order_by("-created_at", "-pk")[:50],
        },
        status=status,
    )
