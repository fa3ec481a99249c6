"""The reviewer inbox: what waits for the user's decision, oldest first, and what they decided."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.defaultfilters import truncatechars
from django.urls import reverse
from django.utils import dateformat, timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_GET

from lifecycle.models import Course, Membership, Role
from lifecycle.templatetags.lifecycle_tags import status_badge

from .. import selectors
from ..models import DecisionOutcome
from .common import signed_in

DONE_LIMIT = 30
PENDING_PAGE_SIZE = 30


_PLACEHOLDER = 987654321


def _review_url() -> str:
    """The review page's URL with a placeholder for the stage: reverse() once per page."""
    return reverse("reviews:review_stage", args=[_PLACEHOLDER]).replace(str(_PLACEHOLDER), "{}")


def _when(value, fmt: str) -> str:
    return dateformat.format(timezone.localtime(value), fmt) if value else ""


def pending_rows(pending: Iterable[selectors.PendingReview]) -> list[SafeString]:
    """The rows of the pending table, printed in Python in one pass (no per-row {% url %},
    {% with %} or date filters: they were most of the inbox's time)."""
    url = _review_url()
    rows = []
    for r in pending:
        s = r.stage
        submitted = s.submitted_at or (
            s.current_revision.created_at if s.current_revision else None
        )
        if r.due:
            due = format_html(
                "{}{}",
                dateformat.format(r.due, "j M Y"),
                mark_safe(' <span class="badge text-bg-danger">overdue</span>')
                if r.overdue
                else "",
            )
        else:
            due = mark_safe('<span class="text-body-secondary">—</span>')
        rows.append(
            format_html(
                '<tr class="pending-review{}" data-stage="{}">'
                '<td><a href="{}" class="fw-semibold">{}. {}</a>{}</td>'
                '<td>{}<div class="small text-body-secondary">{}</div></td>'
                "<td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                " table-danger" if r.overdue else "",
                s.pk,
                url.format(s.pk),
                s.definition.order,
                s.definition.title,
                format_html(' <span class="badge text-bg-light border">cycle {}</span>', s.cycle)
                if s.cycle > 1
                else "",
                s.project.title,
                s.project.course.title,
                s.current_revision.number if s.current_revision else "",
                _when(submitted, "j M Y, H:i"),
                due,
                "Domain expert" if r.role == "expert" else "Course staff",
            )
        )
    return rows


def done_items(done: Iterable[selectors.DoneReview]) -> list[SafeString]:
    """The user's decisions as list items, printed in Python in one pass."""
    url = _review_url()
    items = []
    for r in done:
        d = r.decision
        s = d.revision.stage
        approved = d.outcome == DecisionOutcome.APPROVE
        outcome = format_html(
            '<span class="badge {}">{}</span>',
            "text-bg-success" if approved else "text-bg-danger",
            "Approved" if approved else "Requested changes",
        )
        stale = (
            format_html(
                '<span class="badge text-bg-light border">stale: revision {} is current</span>',
                s.current_revision.number,
            )
            if r.stale and s.current_revision
            else ""
        )
        comment = format_html(" · “{}”", truncatechars(d.comment, 120)) if d.comment else ""
        items.append(
            format_html(
                '<li class="list-group-item done-review" data-stage="{}">'
                '<div class="d-flex flex-wrap align-items-center gap-2">'
                '<a href="{}?revision={}" class="me-auto">{}. {} — {}, revision {}</a>'
                ' {} {} <span class="badge {}">Stage {}</span></div>'
                '<div class="small text-body-secondary">{}{}</div></li>',
                s.pk,
                url.format(s.pk),
                d.revision.number,
                s.definition.order,
                s.definition.title,
                s.project.title,
                d.revision.number,
                outcome,
                stale,
                status_badge(s.status),
                s.get_status_display().lower(),
                _when(d.created_at, "j M Y, H:i"),
                comment,
            )
        )
    return items


@login_required
@require_GET
def inbox(request: HttpRequest) -> HttpResponse:
    user = signed_in(request)
    stages = selectors.pending_review_stages(user)
    total, overdue = selectors.pending_counts(stages)
    paginator = Paginator(stages, PENDING_PAGE_SIZE)
    paginator.count = total  # type: ignore[misc]  # a cached_property: counted just above
    # A page past the end shows the last page, a malformed one the first: never a 500.
    page = paginator.get_page(request.GET.get("page"))
    pending = selectors.as_pending_reviews(page.object_list)
    done = selectors.done_reviews_for_user(user, limit=DONE_LIMIT)
    taught = Membership.objects.filter(user=user, role=Role.INSTRUCTOR).values("course_id")
    return render(
        request,
        "reviews/inbox.html",
        {
            "pending": pending,
            "pending_rows": pending_rows(pending),
            "page": page,
            "overdue_count": overdue,
            "done": done,
            "done_items": done_items(done),
            "done_limit": DONE_LIMIT,
            "to_confirm": selectors.invitations_awaiting_confirmation(user),
            "taught_courses": list(Course.objects.filter(pk__in=taught).order_by("title")),
        },
    )
