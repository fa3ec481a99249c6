"""Writes for accounts: signing up, a person's own profile, and the sign-in throttle's counters.

The throttle lives in Django's cache (LocMemCache by default; production should point CACHES at
Redis so that every web process shares one count). Only failed sign-ins count, and a lock is
keyed by e-mail address and by client IP separately: the e-mail lock protects one account from
password guessing, the IP lock slows one client spraying many accounts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction

from .models import EmailFrequency, User


def user_update_profile(
    *,
    user: User,
    display_name: str,
    affiliation: str,
    expertise: str,
    email_frequency: str | None = None,
) -> User:
    """Save what a person says about themselves, and how notification e-mails reach them
    (``None`` or empty keeps the current choice). Reviewers see the name and affiliation next
    to every decision, so surrounding whitespace is not kept."""
    user.display_name = display_name.strip()
    user.affiliation = affiliation.strip()
    user.expertise = expertise.strip()
    fields = ["display_name", "affiliation", "expertise"]
    if email_frequency:
        # Notifications already waiting keep the status they were written with: a switch to
        # the digest holds only what comes next, a switch back leaves today's digest to go out.
        user.email_frequency = EmailFrequency(email_frequency)
        fields.append("email_frequency")
    user.save(update_fields=fields)
    return user


# --- Sign-up ------------------------------------------------------------------------------


class EmailTaken(Exception):
    """Another account already uses this e-mail address (in any letter case)."""

    def __init__(self, email: str) -> None:
        super().__init__(f"An account with the e-mail address {email} exists already.")
        self.email = email


def user_sign_up(*, email: str, password: str, display_name: str) -> User:
    """Create a person's account. The address is stored lower-case, and sign-in matches it
    case-insensitively, so two accounts may never differ only in case. The password has been
    checked against AUTH_PASSWORD_VALIDATORS by the form."""
    email = email.strip().lower()
    if User.objects.filter(email__iexact=email).exists():
        raise EmailTaken(email)
    try:
        # A savepoint: two sign-ups with one address at once both pass the check above, and
        # the unique index refuses the second without spoiling the caller's transaction.
        with transaction.atomic():
            return User.objects.create_user(
                email=email, password=password, display_name=display_name.strip()
            )
    except IntegrityError as error:
        raise EmailTaken(email) from error


# --- Sign-in throttle ---------------------------------------------------------------------


@dataclass(frozen=True)
class LoginThrottlePolicy:
    max_failures: int
    window_seconds: int
    lockout_seconds: int

    @property
    def lockout_minutes(self) -> int:
        return max(1, round(self.lockout_seconds / 60))


def login_throttle_policy() -> LoginThrottlePolicy:
    """5 failures within 15 minutes lock for 15 minutes, unless settings say otherwise."""
    return LoginThrottlePolicy(
        max_failures=getattr(settings, "LOGIN_THROTTLE_MAX_FAILURES", 5),
        window_seconds=getattr(settings, "LOGIN_THROTTLE_WINDOW_SECONDS", 15 * 60),
        lockout_seconds=getattr(settings, "LOGIN_THROTTLE_LOCKOUT_SECONDS", 15 * 60),
    )


def _scopes(*, email: str, ip: str | None) -> list[str]:
    scopes = []
    normalised = email.strip().lower()
    if normalised:
        # Hashed so that cache keys are short, safe for memcached and hold no addresses.
        scopes.append("email:" + hashlib.sha256(normalised.encode("utf-8")).hexdigest()[:32])
    if ip:
        scopes.append("ip:" + ip)
    return scopes


def _failures_key(scope: str) -> str:
    return f"login-throttle:failures:{scope}"


def _lock_key(scope: str) -> str:
    return f"login-throttle:lock:{scope}"


def login_is_locked(*, email: str, ip: str | None) -> bool:
    keys = [_lock_key(scope) for scope in _scopes(email=email, ip=ip)]
    return bool(keys) and bool(cache.get_many(keys))


def login_failure_record(*, email: str, ip: str | None) -> bool:
    """Count one failed sign-in for the address and the client; returns True if this failure
    locked either of them."""
    policy = login_throttle_policy()
    locked = False
    for scope in _scopes(email=email, ip=ip):
        key = _failures_key(scope)
        # The window starts at the first failure: add() only sets a missing key, incr() is
        # atomic on every cache backend that has shared state.
        cache.add(key, 0, timeout=policy.window_seconds)
        try:
            failures = cache.incr(key)
        except ValueError:  # the window expired between add() and incr()
            cache.set(key, 1, timeout=policy.window_seconds)
            failures = 1
        if failures >= policy.max_failures:
            cache.set(_lock_key(scope), True, timeout=policy.lockout_seconds)
            cache.delete(key)
            locked = True
    return locked


def login_failures_clear(*, email: str, ip: str | None = None) -> None:
    """Forget the failures of a successful sign-in (or of a completed password reset, which
    proves the mailbox). Clearing the client's count too keeps one classroom behind one NAT
    address from locking itself out through everyone's typos; each account stays protected by
    its own e-mail count, which only the account's password can clear."""
    keys = []
    for scope in _scopes(email=email, ip=ip):
        keys += [_failures_key(scope), _lock_key(scope)]
    if keys:
        cache.delete_many(keys)
