"""Writes for accounts: signing up and a person's own profile.

(The sign-in throttle is django-axes, configured in accounts/throttle.py.)
"""

from __future__ import annotations

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
