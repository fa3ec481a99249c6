from __future__ import annotations

from typing import Any, ClassVar

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.utils import timezone


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra: Any) -> User:
        if not email:
            raise ValueError("An e-mail address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        # A site administrator is created from the shell by whoever runs the site.
        extra.setdefault("email_verified_at", timezone.now())
        if not (extra["is_staff"] and extra["is_superuser"]):
            raise ValueError("A superuser needs is_staff and is_superuser.")
        return self._create_user(email, password, **extra)

    def get_by_natural_key(self, username: str | None) -> User:
        # E-mail addresses are stored lower-case, so logins are case-insensitive.
        return self.get(email__iexact=username or "")


class EmailFrequency(models.TextChoices):
    IMMEDIATE = "immediate", "An e-mail for each notification"
    DAILY_DIGEST = "daily", "One daily digest"


class User(AbstractBaseUser, PermissionsMixin):
    """A person: student, course staff, outside domain expert or site admin.

    Course roles live on lifecycle.Membership; being a domain expert is a matter of review
    assignments, so nothing here says what a person may see.
    """

    email = models.EmailField("e-mail address", unique=True)
    display_name = models.CharField(max_length=150, blank=True)
    affiliation = models.CharField(
        max_length=200, blank=True, help_text="University, company or organisation."
    )
    expertise = models.TextField(
        blank=True,
        help_text="Fields you can review as a domain expert, e.g. 'paediatric oncology'.",
    )
    email_frequency = models.CharField(
        "notification e-mails",
        max_length=10,
        choices=EmailFrequency.choices,
        default=EmailFrequency.IMMEDIATE,
        help_text="In-app notifications are always immediate.",
    )
    is_staff = models.BooleanField(
        default=False, help_text="Can sign in to the Django admin (site administrators only)."
    )
    is_active = models.BooleanField(default=True)
    email_verified_at = models.DateTimeField(
        "e-mail verified",
        null=True,
        blank=True,
        help_text="When the person followed a link sent to this address (a verification or "
        "invitation e-mail). Until then the account cannot join a course or review.",
    )
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    EMAIL_FIELD = "email"
    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        return self.display_name or self.email.split("@")[0]

    @property
    def is_email_verified(self) -> bool:
        return self.email_verified_at is not None

    def get_full_name(self) -> str:
        return self.name

    def get_short_name(self) -> str:
        return self.name
