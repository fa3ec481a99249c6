"""Writes for accounts: signing up and a person's own profile.

(The sign-in throttle is django-axes, configured in accounts/throttle.py.)
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

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


# --- E-mail verification ----------------------------------------------------------------

log = logging.getLogger(__name__)

VERIFY_SALT = "accounts.email-verification"


def verification_max_age() -> int:
    """Seconds a verification link works: three days unless settings say otherwise."""
    return int(getattr(settings, "EMAIL_VERIFICATION_MAX_AGE_SECONDS", 3 * 24 * 3600))


def email_verification_token(user: User, *, join_code: str = "") -> str:
    """A signed, timestamped token naming the account and the address it was sent to, so a
    link stops working once the address changes; a join code from sign-up rides along."""
    payload: dict[str, Any] = {"u": user.pk, "e": user.email}
    if join_code:
        payload["c"] = join_code
    return signing.dumps(payload, salt=VERIFY_SALT, compress=True)


class VerificationFailed(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Verified:
    user: User
    join_code: str
    newly: bool


@transaction.atomic
def email_verify(*, token: str) -> Verified:
    """Mark the address of the token's account verified (once; later clicks change nothing)."""
    try:
        payload = signing.loads(token, salt=VERIFY_SALT, max_age=verification_max_age())
    except signing.SignatureExpired:
        raise VerificationFailed(
            "This verification link has expired. Sign in and ask for a new one."
        ) from None
    except signing.BadSignature:
        raise VerificationFailed(
            "This verification link is not valid. Check that you copied all of it."
        ) from None
    user = (
        User.objects.select_for_update(no_key=True)
        .filter(pk=payload.get("u"), is_active=True)
        .first()
    )
    if user is None or user.email.lower() != str(payload.get("e", "")).lower():
        raise VerificationFailed("This verification link is for an address no longer in use.")
    newly = user.email_verified_at is None
    if newly:
        user.email_verified_at = timezone.now()
        user.save(update_fields=["email_verified_at"])
    return Verified(user=user, join_code=str(payload.get("c", "")), newly=newly)


def _send_verification(user: User, token: str) -> None:
    link = settings.SITE_URL.rstrip("/") + reverse("accounts:verify_email", args=[token])
    context = {"user": user, "link": link, "days": max(1, verification_max_age() // 86400)}
    message = EmailMultiAlternatives(
        subject="Verify your e-mail address for the Lifecycle Review Board",
        body=render_to_string("accounts/emails/verify_email.txt", context),
        to=[user.email],
    )
    message.attach_alternative(
        render_to_string("accounts/emails/verify_email.html", context), "text/html"
    )
    try:
        message.send()
    except Exception as exc:
        # Like an invitation that did not go out: the person asks for another link.
        log.warning("verification e-mail to %s not sent: %s", user.email, exc)


def email_verification_send(*, user: User, join_code: str = "") -> bool:
    """Queue a verification e-mail (on commit, like invitations). At most one a minute per
    account, so the button cannot be used to flood a mailbox; returns False when held back."""
    if user.email_verified_at is not None:
        return False
    key = f"verify-email:sent:{user.pk}"
    if not cache.add(key, 1, timeout=getattr(settings, "EMAIL_VERIFICATION_RESEND_SECONDS", 60)):
        return False
    token = email_verification_token(user, join_code=join_code)
    transaction.on_commit(lambda: _send_verification(user, token))
    return True


# --- Sign-up limits -----------------------------------------------------------------------


@dataclass(frozen=True)
class SignUpLimits:
    per_address: int
    per_code: int
    window_seconds: int


def sign_up_limits() -> SignUpLimits:
    """10 accounts an hour from one client address and 200 an hour on one join code (a
    lecture hall signing up at once), unless settings say otherwise."""
    return SignUpLimits(
        per_address=getattr(settings, "SIGNUP_LIMIT_PER_ADDRESS", 10),
        per_code=getattr(settings, "SIGNUP_LIMIT_PER_CODE", 200),
        window_seconds=getattr(settings, "SIGNUP_LIMIT_WINDOW_SECONDS", 3600),
    )


def _count(key: str, window: int) -> int:
    # add() sets only a missing key and starts the window; incr() is atomic on a shared cache
    # (Redis), so two web processes never both take the last place.
    cache.add(key, 0, timeout=window)
    try:
        return int(cache.incr(key))
    except ValueError:  # the window ended between add() and incr()
        cache.add(key, 1, timeout=window)
        return 1


class SignUpLimited(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def sign_up_take_place(*, ip: str | None, join_code: str = "") -> None:
    """Count one sign-up for the client address and the join code; raise SignUpLimited when
    either is over its limit in this window (the refused attempt counts too)."""
    limits = sign_up_limits()
    if ip:
        n = _count(f"signup:ip:{ip}", limits.window_seconds)
        if n > limits.per_address:
            raise SignUpLimited(
                "__all__",
                "Too many accounts were created from your network recently. Try again in an "
                "hour, or ask your course staff to enrol you.",
            )
    if join_code:
        digest = hashlib.sha256(join_code.upper().encode("utf-8")).hexdigest()[:32]
        n = _count(f"signup:code:{digest}", limits.window_seconds)
        if n > limits.per_code:
            raise SignUpLimited(
                "code",
                "Too many accounts were created with this join code recently. Try again "
                "later, or create the account without the code and join the course afterwards.",
            )
