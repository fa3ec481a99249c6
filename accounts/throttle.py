"""The sign-in throttle: django-axes, counting failed sign-ins in the database.

Every sign-in form (the site's, the admin's, re-authentication) calls Django's ``authenticate``
with the request, so axes sees every password guess. Axes keeps its counts in the database
(``axes.AccessAttempt``), which every web process shares, on SQLite and on PostgreSQL alike:
the count holds however many workers or replicas run.

What locks (settings ``AXES_*`` and ``LOGIN_*``, config/settings/base.py):

- an (account, address) pair after ``AXES_FAILURE_LIMIT`` failures: a guesser at one account
  is stopped, while the account's owner signs in from any other address (a stranger can never
  shut an owner out from where the owner is);
- an address after ``LOGIN_FAILURE_LIMIT_PER_ADDRESS`` failures over any accounts: one client
  spraying many accounts is stopped, at a higher bar than one account's, so that a classroom
  behind one NAT address survives everyone's typos.

Both locks lift after ``AXES_COOLOFF_TIME``. Axes locks on one limit for every parameter; the
handler below gives the per-address parameter its own, higher limit.
"""

from __future__ import annotations

from typing import Any

from axes.backends import AxesBackend
from axes.handlers.database import AxesDatabaseHandler
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.db.models import Sum
from django.http import HttpRequest


class ThrottledModelBackend(AxesBackend):
    """The one authentication backend: axes refuses a locked sign-in (raising PermissionDenied,
    which ``authenticate`` turns into a failure), then Django's ModelBackend checks the password.
    (Axes' own AxesBackend checks only the lock and leaves the password to a second backend; with
    one backend, ``login()`` after sign-up needs no ``backend`` argument.)"""

    def authenticate(  # type: ignore[override]
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        super().authenticate(request, username, password, **kwargs)  # type: ignore[arg-type]
        return ModelBackend.authenticate(self, request, username, password, **kwargs)


def client_ip(request: HttpRequest) -> str | None:
    """The address the throttle counts by (``AXES_CLIENT_IP_CALLABLE``). Behind a reverse proxy
    REMOTE_ADDR is the proxy, so LOGIN_THROTTLE_TRUSTED_PROXIES (how many proxies append to
    X-Forwarded-For) says which entry to believe; the entries left of that are whatever the
    client chose to send. With no trusted proxy, X-Forwarded-For is ignored."""
    proxies = getattr(settings, "LOGIN_THROTTLE_TRUSTED_PROXIES", 0)
    if proxies:
        forwarded = [
            part.strip()
            for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
            if part.strip()
        ]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR") or None


def sign_in_name(request: HttpRequest, credentials: dict[str, Any] | None) -> str | None:
    """The account a guess is for (``AXES_USERNAME_CALLABLE``): addresses match
    case-insensitively at sign-in, so ``Alice@…`` and ``alice@…`` are one count."""
    name = (credentials or {}).get("username")
    if name is None:
        name = request.POST.get("username")
    return name.strip().lower() if isinstance(name, str) else None


class AccountAddressHandler(AxesDatabaseHandler):
    """Axes' database handler with a limit of its own for the per-address count, and a success
    that forgets only the owner's own failures from that address.

    Expects ``AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]``."""

    def get_failures(self, request: HttpRequest, credentials: dict | None = None) -> int:
        per_account, per_address = (
            attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0
            for attempts in self.get_user_attempts(request, credentials)
        )
        if per_address >= settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS:
            return max(per_account, settings.AXES_FAILURE_LIMIT)
        return per_account

    def user_logged_in(self, sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
        super().user_logged_in(sender, request, user, **kwargs)
        # Not AXES_RESET_ON_SUCCESS: that deletes every count of the address too, so a guesser
        # who signs in to an account of their own would wipe the counts of the accounts they
        # guess at from that address.
        AccessAttempt.objects.filter(
            username=user.get_username().lower(),
            ip_address=request.axes_ip_address,  # type: ignore[attr-defined]  # set by axes
        ).delete()


def forget_failures_of(email: str) -> None:
    """A completed password reset proves the mailbox: the account's counts go, everywhere."""
    AccessAttempt.objects.filter(username=email.strip().lower()).delete()
