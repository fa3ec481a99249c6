"""The navbar's unread-notification count, on every page that renders base.html."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from .unread import unread_count

__all__ = ["notifications", "unread_count"]


def notifications(request: HttpRequest) -> dict[str, Any]:
    # Lazy: a page that never shows the navbar (a JSON view, a redirect) runs no query, and a
    # page that mentions the count twice runs one.
    return {
        "unread_notifications": SimpleLazyObject(
            lambda: unread_count(getattr(request, "user", None))
        )
    }
