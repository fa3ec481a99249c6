"""The reviewer inbox: what waits for the user's decision, oldest first, and what they decided."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.paginator import Page, Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.defaultfilters import truncatechars
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_GET

from lifecycle.models import Role, StageStatus
from lifecycle.templatetags.lifecycle_tags import status_badge

from .. import queue, selectors
from ..dates import day_month_year, local_day_month_year_time
from ..models import ReviewerRole
from ..queue import DONE_COMMENT_CHARS
from .common import signed_in

DONE_LIMIT = 30
PENDING_PAGE_SIZE = 30


_PLACEHOLDER = 987654321


def _review_url() -> str:
    """The review page's URL with a placeholder for the stage: reverse() once per page."""
    return reverse("reviews:review_stage", args=[_PLACEHOLDER]).replace(str(_PLACEHOLDER), "{}")


_ROLE_LABELS: dict[str, str] = {
    ReviewerRole.EXPERT: "Domain expert",
    ReviewerRole.STAFF: "Course staff",
}
_OVERDUE = ' <span class="badge text-bg-danger">overdue</span>'
_NO_DUE = '<span class="text-body-secondary">—</span>'
_PENDING_ROW = (
    '<tr class="pending-review{overdue_class}" data-stage="{pk}">'
    '<td><a href="{url}" class="fw-semibold">{order}. {stage}</a>{cycle}</td>'
    '<td>{project}<div class="small text-body-secondary">{course}</div></td>'
    "<td>{revision}</td><td>{submitted}</td><td>{due}</td><td>{role}</td></tr>"
)


def pending_rows(pending: Iterable[queue.PendingRow]) -> SafeString:
    """The rows of the pending table as one string, printed in Python in one pass (no per-row
    {% url %}, {% with %}, date filters or template loop: they were most of the inbox's time).
    Every value from the database goes through escape(); the rest is this module's own markup."""
    url = _review_url()
    tz = timezone.get_current_timezone()
    rows = []
    for r in pending:
        due = day_month_year(r.due) + (_OVERDUE if r.overdue else "") if r.due else _NO_DUE
        rows.append(
            _PENDING_ROW.format(
                overdue_class=" table-danger" if r.overdue else "",
                pk=r.stage_id,
                url=url.format(r.stage_id),
                order=r.order,
                stage=escape(r.stage_title),
                cycle=(
                    f' <span class="badge text-bg-light border">cycle {r.cycle}</span>'
                    if r.cycle > 1
                    else ""
                ),
                project=escape(r.project_title),
                course=escape(r.course_title),
                revision=r.revision,
                submitted=local_day_month_year_time(r.submitted_at, tz),
                due=due,
                role=_ROLE_LABELS.get(r.role, "Course staff"),
            )
        )
    return mark_safe("".join(rows))


_APPROVED = '<span class="badge text-bg-success">Approved</span>'
_CHANGES = '<span class="badge text-bg-danger">Requested changes</span>'
_DONE_ITEM = (
    '<li class="list-group-item done-review" data-stage="{pk}">'
    '<div class="d-flex flex-wrap align-items-center gap-2">'
    '<a href="{url}?revision={revision}" class="me-auto">{order}. {stage} — {project}, '
    "revision {revision}</a>"
    ' {outcome} {stale} <span class="badge {badge}">Stage {status}</span></div>'
    '<div class="small text-body-secondary">{when}{comment}</div></li>'
)
_STATUS_LABELS = {value: str(label).lower() for value, label in StageStatus.choices}


def _short_comment(comment: str) -> str:
    """truncatechars(comment, DONE_COMMENT_CHARS), without its loop over every character for
    a comment it would return whole: one no longer than the limit and already in NFC."""
    if len(comment) <= DONE_COMMENT_CHARS and unicodedata.is_normalized("NFC", comment):
        return comment
    return truncatechars(comment, DONE_COMMENT_CHARS)


def done_items(done: Iterable[queue.DoneRow]) -> SafeString:
    """The user's decisions as list items in one string, printed in Python in one pass."""
    url = _review_url()
    tz = timezone.get_current_timezone()
    items = []
    for r in done:
        stale = (
            '<span class="badge text-bg-light border">'
            f"stale: revision {r.stale_since} is current</span>"
            if r.stale_since is not None
            else ""
        )
        items.append(
            _DONE_ITEM.format(
                pk=r.stage_id,
                url=url.format(r.stage_id),
                revision=r.revision,
                order=r.order,
                stage=escape(r.stage_title),
                project=escape(r.project_title),
                outcome=_APPROVED if r.approved else _CHANGES,
                stale=stale,
                badge=status_badge(r.stage_status),
                status=_STATUS_LABELS.get(r.stage_status, r.stage_status),
                when=local_day_month_year_time(r.created_at, tz),
                comment=f" · “{escape(_short_comment(r.comment))}”" if r.comment else "",
            )
        )
    return mark_safe("".join(items))


def _page_number(raw: str | None) -> int | None:
    """The page asked for: None past the first end (Paginator.get_page shows the last page for
    0 and below), 1 for anything that is not a number."""
    try:
        number = int(raw) if raw is not None else 1
    except (TypeError, ValueError):
        return 1
    return number if number >= 1 else None


@login_required
@require_GET
def inbox(request: HttpRequest) -> HttpResponse:
    user = signed_in(request)
    scope = queue.reviewer_scope(user, experts=False)  # the inbox does not print that count
    # The page and the counts over every page come in one query; a page past either end is
    # the last page (a second query counts, a third reads it), a malformed one the first.
    asked = _page_number(request.GET.get("page"))
    read = asked or 1
    found = queue.pending_slice(
        user, scope, offset=(read - 1) * PENDING_PAGE_SIZE, limit=PENDING_PAGE_SIZE
    )
    # The paginator only counts (the rows of the page come from the query above).
    paginator: Paginator[Any] = Paginator(range(found.total), PENDING_PAGE_SIZE)
    number = asked if asked is not None and asked <= paginator.num_pages else paginator.num_pages
    if number != read:
        found = queue.pending_slice(
            user, scope, offset=(number - 1) * PENDING_PAGE_SIZE, limit=PENDING_PAGE_SIZE
        )
    page = Page(found.rows, number, paginator)
    done = queue.done_rows(user, limit=DONE_LIMIT)
    context = {
        "pending": found.rows,
        "pending_rows": pending_rows(found.rows),
        "page": page,
        "overdue_count": found.overdue,
        "done": done,
        "done_items": done_items(done),
        "done_limit": DONE_LIMIT,
        "to_confirm": (
            selectors.invitations_awaiting_confirmation(user)
            if scope.invitations_to_confirm
            else []
        ),
        "taught_courses": [
            {"pk": course_id, "title": title}
            for course_id, role, title in scope.staff_courses
            if role == Role.INSTRUCTOR
        ],
    }
    if scope.reviews or done:
        # What the navbar would ask (reviews_anything) is known: no query for it.
        context["shows_reviews"] = True
    return render(request, "reviews/inbox.html", context)
