"""Re-authentication: the password again, recently, before an action that is hard to undo or
hands out much (an instructor's override, a whole course's audit trail, and later a template
migration or an API token).

A session that was left open on a shared computer, or stolen, is then not enough for those
actions. The session keeps when its owner last typed the password (at sign-in and at the
confirmation page, ``accounts:reauth``); ``@recent_auth_required`` sends anyone whose last
password is older than ``REAUTH_MAX_AGE_SECONDS`` (10 minutes) to confirm it, then back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

SESSION_KEY = "accounts_password_confirmed_at"

View = TypeVar("View", bound=Callable[..., HttpResponse])


def max_age_seconds() -> int:
    return int(getattr(settings, "REAUTH_MAX_AGE_SECONDS", 10 * 60))


def password_confirmed_now(request: HttpRequest) -> None:
    """The person has just typed the right password (signing in, or confirming it)."""
    request.session[SESSION_KEY] = time.time()


def password_confirmed_recently(request: HttpRequest) -> bool:
    confirmed_at = request.session.get(SESSION_KEY)
    if not isinstance(confirmed_at, int | float):
        return False
    age = time.time() - confirmed_at
    return 0 <= age <= max_age_seconds()


def reauth_redirect(request: HttpRequest) -> HttpResponseRedirect:
    """To the confirmation page, coming back to this page afterwards. A POST comes back as a
    GET of the same page: the form is shown again rather than replayed unseen."""
    query = urlencode({"next": request.get_full_path()})
    return HttpResponseRedirect(f"{reverse('accounts:reauth')}?{query}")


def recent_auth_required(view: View) -> View:
    """Let the view run only if the signed-in person typed their password within the last
    ``REAUTH_MAX_AGE_SECONDS``; otherwise ask for it and come back. Put it under
    ``@login_required``: an anonymous visitor is sent to sign in, which counts."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.user.is_authenticated and not password_confirmed_recently(request):
            return reauth_redirect(request)
        return view(request, *args, **kwargs)

    return cast(View, wrapper)
