"""Audit-trail downloads for course staff: the course's events as CSV or JSON Lines.

The form page pins the chain head (``upto``) when it renders, so the CSV and its head, fetched
by two requests, describe the same events even while the course keeps working.
(The form lives here rather than in lifecycle/forms.py because only this page uses it.)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlencode

from crispy_forms.bootstrap import StrictButton
from crispy_forms.helper import FormHelper
from crispy_forms.layout import Layout
from django import forms
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.reauth import password_confirmed_recently, reauth_redirect
from lifecycle import limits, permissions, selectors
from lifecycle.exports import (
    FORMATS,
    HEAD_SUFFIX,
    ChainHead,
    ExportFilters,
    chain_head_at,
    count_rows,
    csv_head_record,
    head_json,
    stream_export,
)
from lifecycle.models import AuditEvent, Course, Project

CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}
# One download at a time per person: a whole course's trail streams for minutes, and a second
# one started alongside would only halve both. The slot expires on its own in case a worker
# dies mid-stream; a download still running after that no longer blocks the next.
EXPORTS_AT_ONCE = 1
EXPORT_SLOT_SECONDS = 15 * 60


class HoldingSlot:
    """The export's rows, holding the user's export slot until the response is closed: the
    server calls close() when the last row is sent or the client goes away, even if iteration
    never started (a generator's ``finally`` would not run then)."""

    def __init__(self, rows: Iterable[Any], slot: limits.Slot) -> None:
        self.rows = rows
        self.slot = slot

    def __iter__(self) -> Iterator[Any]:
        try:
            yield from self.rows
        finally:
            self.slot.release()

    def close(self) -> None:
        self.slot.release()


PROJECT_CHOICES = 200
VERB_WINDOW = 5000


class AuditExportForm(forms.Form):
    format = forms.ChoiceField(
        choices=[("csv", "CSV (with a .head.json)"), ("jsonl", "JSON Lines (head included)")],
        initial="csv",
    )
    project: forms.ModelChoiceField[Project] = forms.ModelChoiceField(
        queryset=Project.objects.none(), required=False, empty_label="All projects"
    )
    since = forms.DateField(
        required=False, label="From (UTC day)", widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        required=False, label="To (UTC day)", widget=forms.DateInput(attrs={"type": "date"})
    )
    verbs = forms.MultipleChoiceField(
        required=False,
        label="Event kinds",
        help_text="None selected: every kind.",
        widget=forms.SelectMultiple(attrs={"size": 6}),
    )
    upto = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)

    def __init__(self, *args: Any, course: Course, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        projects = course.projects.order_by("title", "pk")
        self.fields["project"].queryset = projects  # type: ignore[attr-defined]
        # What the drop-downs list is capped: the first PROJECT_CHOICES projects by title (the
        # queryset above still accepts any project of the course), and the kinds of the course's
        # latest VERB_WINDOW events, read backwards along (course, seq), not a DISTINCT over a
        # trail that only grows. A kind or project already chosen is always listed.
        chosen_project = str(self.data.get("project") or "") if self.is_bound else ""
        shown = list(projects.values_list("pk", "title")[:PROJECT_CHOICES])
        if chosen_project.isdigit() and int(chosen_project) not in {pk for pk, _ in shown}:
            shown += list(projects.filter(pk=int(chosen_project)).values_list("pk", "title"))
        self.fields["project"].widget.choices = [("", "All projects"), *shown]
        self.fields["project"].help_text = (
            f"The first {PROJECT_CHOICES} projects by title are listed."
            if len(shown) >= PROJECT_CHOICES
            else ""
        )
        recent = (
            AuditEvent.objects.filter(course=course)
            .order_by("-seq")
            .values_list("verb", flat=True)[:VERB_WINDOW]
        )
        verbs = set(recent)
        if self.is_bound:
            posted = self.data.getlist("verbs") if hasattr(self.data, "getlist") else []
            verbs.update(v for v in posted if isinstance(v, str) and v)
        self.fields["verbs"].choices = [(verb, verb) for verb in sorted(verbs)]  # type: ignore[attr-defined]
        self.helper = FormHelper()
        self.helper.form_method = "get"
        self.helper.form_id = "audit-export-form"
        self.helper.layout = Layout(
            "format",
            "project",
            "since",
            "until",
            "verbs",
            "upto",
            StrictButton("Prepare export", type="submit", css_class="btn-primary"),
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise forms.ValidationError("The first day is after the last day.")
        return data

    def filters(self, course: Course) -> ExportFilters:
        data = self.cleaned_data
        return ExportFilters(
            course_id=course.pk,
            project_id=data["project"].pk if data.get("project") else None,
            since=data.get("since"),
            until=data.get("until"),
            verbs=tuple(data.get("verbs") or ()),
        )


def get_course_for_staff(user: Any, course_pk: int) -> Course:
    """The course, if the user teaches it; everyone else learns nothing (404)."""
    course = selectors.courses_for_user(user).filter(pk=course_pk).first()
    if course is None or not permissions.is_course_staff(user, course):
        raise Http404("No such course.")
    return course


def _export_name(course: Course, fmt: str, head: ChainHead) -> str:
    # Named after the pinned head, so the CSV and its .head.json pair up as verify_audit expects.
    return f"audit-{course.code}-upto{head.last_seq}.{fmt}"


@login_required
@require_GET
def audit_export(request: HttpRequest, course_pk: int) -> HttpResponseBase:
    course = get_course_for_staff(request.user, course_pk)
    if "format" not in request.GET:
        form = AuditExportForm(
            initial={"upto": chain_head_at(counted=False).last_seq}, course=course
        )
        return render(request, "lifecycle/exports.html", {"course": course, "form": form})
    if not request.GET.get("project") and not password_confirmed_recently(request):
        # The whole course's trail (every team's events) needs the password again.
        return reauth_redirect(request)
    form = AuditExportForm(request.GET, course=course)
    if not form.is_valid():
        return render(
            request, "lifecycle/exports.html", {"course": course, "form": form}, status=400
        )
    fmt = form.cleaned_data["format"]
    filters = form.filters(course)
    upto = form.cleaned_data.get("upto")
    # The chain's count goes into an export's signed head, once the body has been read
    # (exports.chain_count); this page shows only the head's seq and hash.
    head = chain_head_at(upto, counted=False)
    if request.GET.get("head") == "1":
        return _head_response(course, filters, head)
    if request.GET.get("download") == "1":
        try:
            slot = limits.acquire(
                "audit-export",
                request.user,
                limit=EXPORTS_AT_ONCE,
                expires=EXPORT_SLOT_SECONDS,
                message=(
                    "An export of yours is still downloading. Wait for it to finish, "
                    "then download this one."
                ),
            )
        except limits.Busy as busy:
            return limits.busy_response(request, busy)
        response = StreamingHttpResponse(
            HoldingSlot(stream_export(fmt, filters, head), slot), content_type=CONTENT_TYPES[fmt]
        )
        name = _export_name(course, fmt, head)
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        response["X-Content-Type-Options"] = "nosniff"
        return response
    # Pin the head so that both downloads describe the same events.
    query = {**request.GET.dict(), "upto": str(head.last_seq)}
    query.pop("verbs", None)
    pinned = urlencode(query) + "".join("&" + urlencode({"verbs": verb}) for verb in filters.verbs)
    context = {
        "course": course,
        "form": form,
        "fmt": fmt,
        "head": head,
        "rows": count_rows(filters, head),
        "download_query": pinned + "&download=1",
        "head_query": pinned + "&head=1" if fmt == "csv" else "",
        "formats": FORMATS,
    }
    return render(request, "lifecycle/exports.html", context)


def _head_response(course: Course, filters: ExportFilters, head: ChainHead) -> HttpResponse:
    record = csv_head_record(filters, head)
    response = HttpResponse(head_json(record), content_type="application/json")
    name = _export_name(course, "csv", head) + HEAD_SUFFIX
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
