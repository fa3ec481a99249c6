"""The reviewer quality loop's pages: the team rates and flags a review from the feedback beside
its stage (htmx swaps the one review's box; without script, a plain POST and a redirect back),
and course staff list and resolve the flags of their course."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from lifecycle.errors import DomainError, InvalidAnswers

from .. import quality
from ..anonymity import names_for
from ..dashboard import get_course_for_staff
from ..forms import FlagResolveForm, ReviewFlagForm, ReviewRatingForm
from ..models import Decision, FlagState
from .common import domain_error_page, signed_in
from .stages import _next_or

FLAGS_PAGE_SIZE = 25


def _is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def _back(request: HttpRequest, decision: Decision) -> str:
    stage = decision.revision.stage
    return _next_or(request, f"{stage.get_absolute_url()}#review-{decision.pk}")


def _box(request: HttpRequest, decision: Decision, *, error: str = "", saved: str = "") -> str:
    """The one review's rating and flag box, as the stage page shows it to this team member."""
    project = decision.revision.stage.project
    names_for(request.user, project, is_member=True).mask([decision], "reviewer")
    quality.attach_team_member_view([decision], request.user)
    return render_to_string(
        "reviews/partials/review_quality.html",
        {
            "d": decision,
            "can_act": True,
            "quality_error": error,
            "quality_saved": saved,
        },
        request=request,
    )


def _answer(request: HttpRequest, decision: Decision, *, done: str = "", error: str = "") -> Any:
    """htmx: the refreshed box (a refusal shown inside it, 200 so htmx swaps it); otherwise
    a message and a redirect to the stage page."""
    if _is_htmx(request):
        return HttpResponse(_box(request, decision, error=error, saved=done))
    if error:
        messages.error(request, error)
    else:
        messages.success(request, done)
    return redirect(_back(request, decision))


def _problems(form: Any) -> str:
    return " ".join(str(m) for msgs in form.errors.values() for m in msgs)


def _refusal(error: DomainError) -> str:
    if isinstance(error, InvalidAnswers):
        return " ".join(m for msgs in error.errors.values() for m in msgs)
    return error.message


@login_required
@require_POST
def review_rate(request: HttpRequest, decision_pk: int) -> HttpResponse:
    decision = quality.get_decision_for_team_member(request.user, decision_pk)
    form = ReviewRatingForm(request.POST)
    if not form.is_valid():
        return _answer(request, decision, error=f"Not rated: {_problems(form)}")
    try:
        quality.review_rate(
            decision=decision,
            rater=signed_in(request),
            helpfulness=form.cleaned_data["helpfulness"],
            note=form.cleaned_data["note"],
        )
    except InvalidAnswers as invalid:
        return _answer(request, decision, error=f"Not rated: {_refusal(invalid)}")
    except DomainError as error:
        if _is_htmx(request):
            return _answer(request, decision, error=_refusal(error))
        return domain_error_page(request, error, back_url=_back(request, decision))
    return _answer(request, decision, done="Your rating is saved.")


@login_required
@require_POST
def review_flag(request: HttpRequest, decision_pk: int) -> HttpResponse:
    decision = quality.get_decision_for_team_member(request.user, decision_pk)
    form = ReviewFlagForm(request.POST)
    if not form.is_valid():
        return _answer(request, decision, error=f"Not flagged: {_problems(form)}")
    try:
        quality.review_flag(
            decision=decision, actor=signed_in(request), reason=form.cleaned_data["reason"]
        )
    except InvalidAnswers as invalid:
        return _answer(request, decision, error=f"Not flagged: {_refusal(invalid)}")
    except DomainError as error:
        if _is_htmx(request):
            return _answer(request, decision, error=_refusal(error))
        return domain_error_page(request, error, back_url=_back(request, decision))
    return _answer(request, decision, done="Flagged as unfair; course staff have been told.")


@login_required
@require_POST
def review_flag_withdraw(request: HttpRequest, decision_pk: int) -> HttpResponse:
    decision = quality.get_decision_for_team_member(request.user, decision_pk)
    try:
        quality.review_flag_withdraw(decision=decision, actor=signed_in(request))
    except DomainError as error:
        if _is_htmx(request):
            return _answer(request, decision, error=_refusal(error))
        return domain_error_page(request, error, back_url=_back(request, decision))
    return _answer(request, decision, done="Your flag is withdrawn.")


STATE_FILTERS = {"open": FlagState.OPEN, "resolved": FlagState.RESOLVED, "all": None}


@login_required
@require_GET
def course_flags(request: HttpRequest, course_pk: int) -> HttpResponse:
    course = get_course_for_staff(request.user, course_pk)
    shown = request.GET.get("state", "open")
    if shown not in STATE_FILTERS:
        shown = "open"
    flags = quality.course_flags(course=course, state=STATE_FILTERS[shown])
    page = Paginator(flags, FLAGS_PAGE_SIZE).get_page(request.GET.get("page"))
    for flag in page.object_list:
        # A TA reading a flag on their own review does not learn who raised it, nor resolves it.
        flag.own_review = flag.decision.reviewer_id == request.user.pk  # type: ignore[attr-defined]
    return render(
        request,
        "reviews/course_flags.html",
        {
            "course": course,
            "page": page,
            "shown": shown,
            "filters": [("open", "Open"), ("resolved", "Resolved"), ("all", "All")],
            "here": request.get_full_path(),
        },
    )


@login_required
@require_POST
def flag_resolve(request: HttpRequest, flag_pk: int) -> HttpResponse:
    flag = quality.get_flag_for_staff(request.user, flag_pk)
    course_id = flag.decision.revision.stage.project.course_id
    back = _next_or(request, reverse("reviews:course_flags", args=[course_id]))
    form = FlagResolveForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Not resolved: {_problems(form)}")
        return redirect(back)
    try:
        quality.review_flag_resolve(
            flag=flag, actor=signed_in(request), note=form.cleaned_data["note"]
        )
    except InvalidAnswers as invalid:
        messages.error(request, f"Not resolved: {_refusal(invalid)}")
        return redirect(back)
    except DomainError as error:
        return domain_error_page(request, error, back_url=back)
    messages.success(request, "The flag is resolved; your note is in the audit trail.")
    return redirect(back)
