"""The reviewer inbox: what waits for the user's decision, oldest first, and what they decided."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from lifecycle.models import Course, Membership, Role

from .. import selectors
from .common import signed_in

DONE_LIMIT = 30
PENDING_PAGE_SIZE = 30


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
    taught = Membership.objects.filter(user=user, role=Role.INSTRUCTOR).values("course_id")
    return render(
        request,
        "reviews/inbox.html",
        {
            "pending": selectors.as_pending_reviews(page.object_list),
            "page": page,
            "overdue_count": overdue,
            "done": selectors.done_reviews_for_user(user, limit=DONE_LIMIT),
            "done_limit": DONE_LIMIT,
            "to_confirm": selectors.invitations_awaiting_confirmation(user),
            "taught_courses": list(Course.objects.filter(pk__in=taught).order_by("title")),
        },
    )
