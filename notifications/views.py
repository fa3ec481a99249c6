"""The in-app notification centre: a person's own notifications, newest first, marking them
read, and for course staff the e-mails of their courses that could not be sent."""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from accounts.models import User
from lifecycle.models import STAFF_ROLES, Membership

from .models import EmailStatus, Notification, NotificationKind
from .services import notification_mark_read, notifications_mark_all_read

PAGE_SIZE = 50
FAILED_SHOWN = 20


def link_path(link: str) -> str:
    """The path (with query and fragment) of a stored link. Links are stored absolute, for
    e-mail, with SITE_URL's host; in the app only the path is used, so it works on whatever host
    serves the page. Anything that is not a plain local path falls back to the list."""
    parts = urlsplit(link or "")
    path = urlunsplit(("", "", parts.path, parts.query, parts.fragment))
    if path.startswith("/") and url_has_allowed_host_and_scheme(path, allowed_hosts=None):
        return path
    return reverse("notifications:list")


def get_notification_for_user(user: Any, pk: int) -> Notification:
    """Only the recipient ever sees a notification; anyone else gets a 404."""
    return get_object_or_404(Notification, pk=pk, recipient_id=user.pk)


def failed_emails_for_staff(user: Any) -> tuple[bool, list[Notification], bool]:
    """(is course staff anywhere, the newest failed e-mails of their courses' projects and
    rosters, more exist). Two queries whatever the number of rows: one for the courses, one
    for the rows."""
    course_ids = list(
        Membership.objects.filter(user_id=user.pk, role__in=STAFF_ROLES)
        .order_by()  # the model's ordering would join courses and users for nothing
        .values_list("course_id", flat=True)
    )
    if not course_ids:
        return False, [], False
    rows = list(
        Notification.objects.filter(
            # A course's own e-mails (a roster's invitations) have no project.
            Q(project__course_id__in=course_ids)
            | Q(
                project__isnull=True,
                kind=NotificationKind.INVITATION,
                payload__course__in=course_ids,
            ),
            email_status=EmailStatus.FAILED,
        )
        .select_related("recipient", "project")
        .order_by("-created_at", "-pk")[: FAILED_SHOWN + 1]
    )
    return True, rows[:FAILED_SHOWN], len(rows) > FAILED_SHOWN


def _own(user: Any) -> QuerySet[Notification]:
    return Notification.objects.filter(recipient_id=user.pk).order_by("-created_at", "-pk")


@login_required
@require_GET
def notification_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(
        _own(request.user)
        .select_related("project")
        .only(
            "pk",
            "kind",
            "subject",
            "body",
            "link",
            "created_at",
            "read_at",
            "project__title",
        ),
        PAGE_SIZE,
    ).get_page(request.GET.get("page"))
    for n in page.object_list:
        n.href = link_path(n.link)  # type: ignore[attr-defined]
    is_staff, failed, more_failed = failed_emails_for_staff(request.user)
    return render(
        request,
        "notifications/centre.html",
        {
            "page": page,
            "is_course_staff": is_staff,
            "failed": failed,
            "more_failed": more_failed,
        },
    )


@login_required
@require_POST
def notification_read(request: HttpRequest, pk: int) -> HttpResponse:
    user = cast(User, request.user)  # login_required
    notification = get_notification_for_user(user, pk)
    notification_mark_read(user=user, notification=notification)
    return redirect(link_path(notification.link))


@login_required
@require_POST
def notifications_read_all(request: HttpRequest) -> HttpResponse:
    marked = notifications_mark_all_read(user=cast(User, request.user))  # login_required
    if marked:
        messages.success(
            request, f"Marked {marked} notification{'s' if marked != 1 else ''} as read."
        )
    return redirect("notifications:list")
