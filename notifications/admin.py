"""Admin for notifications: read-only. The outbox is written by notifications.services in the
transaction of the event it announces; the one action gives failed e-mails a fresh set of
attempts, through notifications.outbox.retry_failed."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from reviews.admin import ReadOnlyAdmin

from . import outbox
from .models import Notification, Reminder


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    """The outbox as it stands. Nothing is edited here; the one action gives failed e-mails a
    fresh set of attempts, through notifications.outbox.retry_failed."""

    actions = ["retry_failed_emails"]  # type: ignore[assignment]  # the base says None
    list_display = [
        "created_at",
        "recipient",
        "kind",
        "subject",
        "email_status",
        "email_attempts",
        "read_at",
    ]
    list_filter = ["email_status", "kind"]
    search_fields = ["recipient__email", "email", "subject"]
    list_select_related = ["recipient"]
    date_hierarchy = "created_at"

    @admin.action(description="Retry failed e-mails", permissions=["retry"])
    def retry_failed_emails(self, request: HttpRequest, queryset: Any) -> None:
        retried = outbox.retry_failed(queryset.values_list("pk", flat=True))
        skipped = queryset.count() - retried
        self.message_user(
            request,
            f"{retried} e-mail{'s' if retried != 1 else ''} queued again"
            + (f"; {skipped} not failed, left alone." if skipped else "."),
        )

    def has_retry_permission(self, request: HttpRequest) -> bool:
        # The read-only admin grants no change permission, so the action asks for the model's
        # change permission itself: viewing the outbox is not enough to resend from it.
        return request.user.has_perm("notifications.change_notification")


@admin.register(Reminder)
class ReminderAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "kind", "sequence", "identity", "assignment", "stage"]
    list_filter = ["kind"]
    search_fields = ["identity", "assignment__reviewer__email"]
    list_select_related = [
        "assignment__reviewer",
        "assignment__project",
        "assignment__stage_definition",
        "stage__project",
        "stage__definition",
    ]
    date_hierarchy = "created_at"
