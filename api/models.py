"""Personal access tokens and webhooks: how other programs read and drive the board."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from lifecycle.models import Course, Project


class Scope(models.TextChoices):
    READ = "read", "Read what you can see"
    DRAFT = "draft", "Write drafts, stakeholders and evidence of your projects"
    REVIEW = "review", "Decide and comment as a reviewer"


DEFAULT_TOKEN_DAYS = 90
MAX_TOKEN_DAYS = 365
TOKEN_PREFIX = "lrb_"


class PersonalAccessToken(models.Model):
    """A secret a person hands to a notebook or a CI job. Only its SHA-256 is stored; the
    secret is shown once, when it is created."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    # The first characters of the secret, so people can tell their tokens apart.
    prefix = models.CharField(max_length=16)
    token_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "revoked_at"], name="token_user_revoked")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def is_usable(self, now: dt.datetime | None = None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and self.expires_at > now

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        return "active"

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


class WebhookEvent(models.TextChoices):
    STAGE_SUBMITTED = "stage.submitted", "Stage submitted"
    CHANGES_REQUESTED = "stage.changes_requested", "Changes requested"
    STAGE_APPROVED = "stage.approved", "Stage approved"
    STAGE_OVERRIDDEN = "stage.overridden", "Stage approved by override"
    PROJECT_CONCLUDED = "project.concluded", "Project concluded"
    COMMENT_ADDED = "comment.added", "Comment added"


class Webhook(models.Model):
    """An HTTPS endpoint that receives a course's or one project's events, signed."""

    course = models.ForeignKey(
        Course, on_delete=models.CASCADE, null=True, blank=True, related_name="webhooks"
    )
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, null=True, blank=True, related_name="webhooks"
    )
    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=64)
    events = models.JSONField(default=list)
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(course__isnull=False, project__isnull=True)
                | Q(course__isnull=True, project__isnull=False),
                name="webhook_course_xor_project",
            )
        ]

    def __str__(self) -> str:
        return self.url


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    RETRYING = "retrying", "Retrying"
    FAILED = "failed", "Failed"


class WebhookDelivery(models.Model):
    """One event for one hook: the outbox row that the worker claims, and the delivery log."""

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    delivery_id = models.UUIDField(unique=True)
    event = models.CharField(max_length=40, choices=WebhookEvent.choices)
    payload = models.JSONField()
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    redelivery_of = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="delivery_due"),
            models.Index(fields=["webhook", "-created_at"], name="delivery_hook_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.webhook.url} ({self.status})"
