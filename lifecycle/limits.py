"""Per-user limits on expensive requests: how many may run at once, and how many per minute.

One implementation for every endpoint that can cost more than a page (exports, previews, the
dossier). Both limits live in Django's cache and use only its atomic operations — ``add`` (set
if absent) and ``incr`` — so they hold across threads, and across processes when the cache is
shared (Redis in production). Every key expires: a worker that crashes while holding a slot
frees it after ``expires`` seconds instead of locking its user out for good.

A refused request gets a :class:`Busy` the view turns into a 429 page with a plain message.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

TOO_MANY_REQUESTS = 429


@dataclass(frozen=True)
class Busy(Exception):
    """A request refused by a limit; ``message`` is for the person who made it."""

    message: str
    retry_after: int = 5

    def __str__(self) -> str:
        return self.message


def _who(user: Any) -> str:
    return str(getattr(user, "pk", None) or "anonymous")


@dataclass
class Slot:
    """A held place among a user's concurrent requests of one kind; release it once done
    (idempotent, so both a streaming response's close() and a finally may call it)."""

    key: str
    token: str
    released: bool = False

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        # Delete only our own slot: if it expired and someone else took it, leave theirs.
        if cache.get(self.key) == self.token:
            cache.delete(self.key)


def acquire(kind: str, user: Any, *, limit: int = 1, expires: int = 120, message: str) -> Slot:
    """Take one of ``limit`` slots for this user and kind, or raise Busy(message)."""
    token = uuid.uuid4().hex
    for n in range(limit):
        key = f"limits:slot:{kind}:{_who(user)}:{n}"
        if cache.add(key, token, timeout=expires):
            return Slot(key, token)
    raise Busy(message)


@contextmanager
def concurrency_slot(
    kind: str, user: Any, *, limit: int = 1, expires: int = 120, message: str
) -> Iterator[Slot]:
    slot = acquire(kind, user, limit=limit, expires=expires, message=message)
    try:
        yield slot
    finally:
        slot.release()


def _clock() -> float:
    return time.time()


def check_rate(kind: str, user: Any, *, per_minute: int, message: str) -> None:
    """Count this request in the user's current minute; raise Busy(message) above the rate."""
    now = _clock()
    window = int(now // 60)
    key = f"limits:rate:{kind}:{_who(user)}:{window}"
    cache.add(key, 0, timeout=120)
    try:
        count = cache.incr(key)
    except ValueError:  # the key expired between add and incr: this is the window's first
        cache.add(key, 1, timeout=120)
        count = 1
    if count > per_minute:
        raise Busy(message, retry_after=60 - int(now) % 60)


def busy_response(request: HttpRequest, busy: Busy) -> HttpResponse:
    """429 with the message: a small fragment for htmx, a full page otherwise."""
    template = "lifecycle/partials/busy.html" if request.headers.get("HX-Request") else "busy.html"
    response = HttpResponse(
        render_to_string(template, {"message": busy.message}, request=request),
        status=TOO_MANY_REQUESTS,
    )
    response["Retry-After"] = str(busy.retry_after)
    return response
