"""The course staff's board: projects by stages, bottlenecks, and bulk actions on a selection."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from accounts.models import User
from lifecycle.errors import DomainError, InvalidAnswers
from lifecycle.models import Course, Project, StageDefinition, StageStatus
from lifecycle.services import stage_set_due_date

from .. import dashboard, services
from ..models import ReviewerRole
from .common import domain_error_page, signed_in

ACTIONS = {"assign": "Assign a reviewer", "due": "Move due dates", "nudge": "Nudge"}
WHOLE_PROJECT = ""
BOARD_PAGE_SIZE = 50


def _date_input() -> forms.DateInput:
    return forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


class BulkActionForm(forms.Form):
    """Shape only: whether each project allows the action is the services' business."""

    action = forms.ChoiceField(choices=list(ACTIONS.items()))
    projects = forms.TypedMultipleChoiceField(coerce=int, choices=[])
    next = forms.CharField(required=False)
    reviewer = forms.TypedChoiceField(coerce=int, choices=[], required=False, label="Reviewer")
    role = forms.ChoiceField(
        choices=ReviewerRole.choices, initial=ReviewerRole.STAFF, required=False, label="As"
    )
    assign_stage = forms.ChoiceField(choices=[], required=False, label="Reviews")
    assign_due = forms.DateField(required=False, label="Review due", widget=_date_input())
    due_stage = forms.TypedChoiceField(coerce=int, choices=[], required=False, label="Stage")
    due_date = forms.DateField(required=False, label="New due date", widget=_date_input())
    message = forms.CharField(
        required=False,
        max_length=services.NUDGE_MESSAGE_LIMIT,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Message",
    )

    def __init__(
        self,
        data: Any = None,
        *,
        course: Course,
        people: Iterable[Any],
        definitions: Iterable[Any] | None = None,
    ) -> None:
        """``people``: whom to offer (pk, name, email); ``definitions``: the course's stage
        columns (order, title), read from its template when not given."""
        super().__init__(data)
        if definitions is None:
            definitions = StageDefinition.objects.filter(template_id=course.template_id)
        field = self.fields
        field["projects"].choices = lambda: [  # type: ignore[attr-defined]
            (pk, pk) for pk in course.projects.values_list("pk", flat=True)
        ]
        for name, choices in self.choices(people=people, definitions=definitions).items():
            field[name].choices = choices  # type: ignore[attr-defined]

    @staticmethod
    def choices(*, people: Iterable[Any], definitions: Iterable[Any]) -> dict[str, list]:
        """The choices of the fields that depend on the course, as the board's page writes
        them out (templates/reviews/dashboard.html) and as a submitted form checks them."""
        stages = [(str(d.order), f"{d.order}. {d.title}") for d in definitions]
        return {
            "reviewer": [("", "— choose —")] + [(u.pk, f"{u.name} ({u.email})") for u in people],
            "assign_stage": [(WHOLE_PROJECT, "The whole project"), *stages],
            "due_stage": [("", "— choose —"), *stages],
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        action = cleaned.get("action")
        required = {"assign": ["reviewer", "role"], "due": ["due_stage", "due_date"]}
        for name in required.get(action or "", []):
            if cleaned.get(name) in (None, ""):
                self.add_error(name, "Needed for this action.")
        return cleaned


def _board_url(course: Course) -> str:
    return reverse("reviews:board", args=[course.pk])


def _people(course: Course) -> list[User]:
    return dashboard.assignable_people(course)


@login_required
@require_GET
def board(request: HttpRequest, course_pk: int) -> HttpResponse:
    course = dashboard.get_course_for_staff(request.user, course_pk, audit_head=True)
    filters = dashboard.BoardFilters.from_query(request.GET)
    board = dashboard.course_board(course=course, filters=filters)
    # The counts and bottlenecks cover the whole course; only one page of rows is rendered.
    # get_page: a page past the end shows the last one, a malformed one the first.
    page = Paginator(board.rows, BOARD_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "course": course,
        "board": board,
        "page": page,
        "rows_html": dashboard.rows_html(page.object_list),
        "filters": filters,
        "sorts": dashboard.SORTS,
        "statuses": StageStatus.choices,
        # The bulk actions' choices, written out by the page (no form to build or render).
        "bulk": {
            **BulkActionForm.choices(people=board.assignable, definitions=board.definitions),
            "roles": ReviewerRole.choices,
            "role": BulkActionForm.base_fields["role"].initial,
            "message_limit": services.NUDGE_MESSAGE_LIMIT,
        },
        "here": request.get_full_path(),
        # Course staff: the navigation offers the reviewer inbox (no query to find out).
        "shows_reviews": True,
    }
    return render(request, "reviews/dashboard.html", context)


@login_required
@require_POST
def board_bulk(request: HttpRequest, course_pk: int) -> HttpResponse:
    course = dashboard.get_course_for_staff(request.user, course_pk)
    form = BulkActionForm(request.POST, course=course, people=_people(course))
    back = request.POST.get("next", "")
    if not back.startswith(_board_url(course)) or not url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}
    ):
        back = _board_url(course)
    if not form.is_valid():
        problems = "; ".join(
            f"{form.fields[name].label or name}: {' '.join(map(str, errors))}"
            if name in form.fields
            else " ".join(map(str, errors))
            for name, errors in form.errors.items()
        )
        messages.error(request, f"Nothing was changed — {problems}")
        return redirect(back)
    data = form.cleaned_data
    projects = dashboard.projects_of_course(course, data["projects"])
    try:
        done, failed = BULK[data["action"]](course, signed_in(request), projects, data)
    except DomainError as error:  # a refusal for the whole selection, e.g. not staff any more
        return domain_error_page(request, error, back_url=back)
    if done:
        messages.success(request, f"{ACTIONS[data['action']]}: {', '.join(done)}.")
    for title, reason in failed:
        messages.error(request, f"{title}: {reason}")
    return redirect(back)


BulkResult = tuple[list[str], list[tuple[str, str]]]  # titles done, (title, reason) not done


def _reason(error: DomainError) -> str:
    if isinstance(error, InvalidAnswers):
        return " ".join(m for msgs in error.errors.values() for m in msgs)
    return error.message


def _each(projects: list[Project], act: Callable[[Project], str | None]) -> BulkResult:
    """Run ``act`` per project, each in the service's own transaction: one team's refusal
    (a reviewer on that team, a concluded project) does not undo the others."""
    done, failed = [], []
    for project in projects:
        try:
            skipped = act(project)
        except DomainError as error:
            failed.append((project.title, _reason(error)))
        else:
            if skipped:
                failed.append((project.title, skipped))
            else:
                done.append(project.title)
    return done, failed


def _bulk_assign(course: Course, actor: User, projects: list[Project], data: dict) -> BulkResult:
    reviewer = next(u for u in _people(course) if u.pk == data["reviewer"])
    order = int(data["assign_stage"]) if data["assign_stage"] else None
    definitions = dashboard.definitions_of_order(projects, order) if order else {}

    def assign(project: Project) -> str | None:
        definition = definitions.get(project.template_id) if order else None
        if order and definition is None:
            return f"its template has no stage {order}."
        services.assignment_create(
            project=project,
            actor=actor,
            reviewer=reviewer,
            role=data["role"],
            stage_definition=definition,
            due_date=data["assign_due"],
        )
        return None

    return _each(projects, assign)


def _bulk_due(course: Course, actor: User, projects: list[Project], data: dict) -> BulkResult:
    stages = dashboard.timeline_stages_of_order(projects, data["due_stage"])

    def move(project: Project) -> str | None:
        stage = stages.get(project.pk)
        if stage is None:
            return f"it has no stage {data['due_stage']}."
        stage_set_due_date(stage=stage, actor=actor, due_date=data["due_date"])
        return None

    return _each(projects, move)


def _bulk_nudge(course: Course, actor: User, projects: list[Project], data: dict) -> BulkResult:
    nudged = {
        p.pk
        for p in services.nudge_projects(
            course=course, actor=actor, projects=projects, message=data["message"]
        )
    }
    done = [p.title for p in projects if p.pk in nudged]
    failed = [
        (p.title, "already nudged by you today." if p.is_active else "the project is concluded.")
        for p in projects
        if p.pk not in nudged
    ]
    return done, failed


BULK: dict[str, Callable[[Course, User, list[Project], dict], BulkResult]] = {
    "assign": _bulk_assign,
    "due": _bulk_due,
    "nudge": _bulk_nudge,
}
