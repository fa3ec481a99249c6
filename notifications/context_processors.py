"""The navbar's unread-notification count, on every page that renders base.html."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from .models import Notification


def unread_count(user: Any) -> int:
    """One COUNT on the (recipient, read_at) index; nothing at all for anonymous visitors."""
    if not getattr(user, "is_authenticated", False):
        return 0
    return Notification.objects.filter(recipient_id=user.pk, read_at__isnull=True).count()


def notifications(request: HttpRequest) -> dict[str, Any]:
    # Lazy: a page that never shows the navbar (a JSON view, a redirect) runs no query, and a
    # page that mentions the count twice runs one.
    return {
        "unread_notifications": SimpleLazyObject(
            lambda: unread_count(getattr(request, "user", None))
        )
    }
