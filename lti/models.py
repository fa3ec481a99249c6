"""LTI 1.3 Advantage: the board as a tool of a course's learning platform (LMS).

A site admin registers each platform (issuer, client id, its endpoints and JWKS, the deployment
ids it uses); the tool signs with its own RSA key. Launches map the platform's people and
contexts onto our users and courses; Names and Role Provisioning keeps the roster; Assignment and
Grade Services receives grades through an outbox of scores.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class LtiPlatform(models.Model):
    """One registration of the board with a platform (issuer + client id)."""

    name = models.CharField(max_length=200, help_text="E.g. 'University Canvas'.")
    issuer = models.URLField(
        max_length=500, help_text="The platform's 'iss', e.g. https://canvas.instructure.com"
    )
    client_id = models.CharField(
        max_length=255, help_text="The client id the platform gave the tool."
    )
    auth_login_url = models.URLField(max_length=500, help_text="OIDC authorisation endpoint.")
    auth_token_url = models.URLField(max_length=500, help_text="OAuth 2 token endpoint (services).")
    auth_audience = models.CharField(
        max_length=500,
        blank=True,
        help_text="The 'aud' of the tool's token request, if the platform wants one other "
        "than the token URL.",
    )
    key_set_url = models.URLField(max_length=500, help_text="The platform's JWKS URL.")
    deployment_ids = models.JSONField(
        default=list, blank=True, help_text='Deployment ids the board accepts, e.g. ["1", "7"].'
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        verbose_name = "LTI platform"
        constraints = [
            models.UniqueConstraint(fields=["issuer", "client_id"], name="lti_platform_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.issuer}, client {self.client_id})"


class LtiToolKey(models.Model):
    """The tool's RSA key pair: the private key signs deep-linking responses and service token
    requests; the public one is served at /lti/jwks/. The newest active key signs; older active
    keys stay published until platforms have fetched the new one (rotation)."""

    kid = models.CharField("key id", max_length=100, unique=True)
    private_key_pem = models.TextField()
    public_key_pem = models.TextField()
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = "LTI tool key"

    def __str__(self) -> str:
        return f"tool key {self.kid}"


class LtiContext(models.Model):
    """A platform's course (context) and the board course it is linked to, with the service
    endpoints of the latest launch."""

    platform = models.ForeignKey(LtiPlatform, on_delete=models.CASCADE, related_name="contexts")
    context_id = models.CharField(max_length=255)
    deployment_id = models.CharField(max_length=255, blank=True)
    title = models.CharField(max_length=255, blank=True)
    label = models.CharField(max_length=255, blank=True)
    course = models.ForeignKey(
        "lifecycle.Course",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="lti_contexts",
    )
    nrps_url = models.URLField("NRPS memberships URL", max_length=500, blank=True)
    ags_lineitems_url = models.URLField("AGS line items URL", max_length=500, blank=True)
    ags_scopes = models.JSONField(default=list, blank=True)
    last_roster_sync_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["platform", "context_id"]
        verbose_name = "LTI context"
        constraints = [
            models.UniqueConstraint(fields=["platform", "context_id"], name="lti_context_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.title or self.context_id} on {self.platform.name}"


class LtiUser(models.Model):
    """A platform's person (its 'sub') and our account."""

    platform = models.ForeignKey(LtiPlatform, on_delete=models.CASCADE, related_name="users")
    sub = models.CharField(max_length=255)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="lti_identities"
    )
    lms_user_id = models.CharField(
        "LMS user id", max_length=255, blank=True, help_text="The platform's own id when sent."
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_launch_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["platform", "sub"]
        verbose_name = "LTI user"
        constraints = [
            models.UniqueConstraint(fields=["platform", "sub"], name="lti_user_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.sub} on {self.platform.name} → {self.user}"


class LtiRosterRemoval(models.Model):
    """A student the platform's roster no longer lists: their membership was removed; kept so
    that staff see who lost access and why (the membership row itself is gone)."""

    context = models.ForeignKey(LtiContext, on_delete=models.CASCADE, related_name="removals")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    role = models.CharField(max_length=12)
    removed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-removed_at"]

    def __str__(self) -> str:
        return f"{self.user} removed from {self.context}"


class LtiLineItem(models.Model):
    """The platform's gradebook column for one graded stage (or the project total)."""

    context = models.ForeignKey(LtiContext, on_delete=models.CASCADE, related_name="line_items")
    stage_key = models.CharField(max_length=80, help_text="The line item's resourceId.")
    url = models.URLField(max_length=700)
    label = models.CharField(max_length=255, blank=True)
    score_maximum = models.DecimalField(max_digits=9, decimal_places=3, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["context", "stage_key"]
        verbose_name = "LTI line item"
        constraints = [
            models.UniqueConstraint(fields=["context", "stage_key"], name="lti_line_item_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.stage_key} → {self.url}"


class ScoreState(models.TextChoices):
    PENDING = "pending", "Waiting to be sent"
    SENDING = "sending", "Being sent"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed: needs staff"


class LtiScore(models.Model):
    """A grade on its way to the platform (the passback outbox). Never deleted: a score the
    platform refused stays here, failed, for course staff to see and retry."""

    context = models.ForeignKey(LtiContext, on_delete=models.CASCADE, related_name="scores")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    lti_user = models.ForeignKey(LtiUser, on_delete=models.CASCADE, related_name="scores")
    stage_key = models.CharField(max_length=80)
    label = models.CharField(max_length=255, blank=True)
    score_given = models.DecimalField(max_digits=9, decimal_places=3)
    score_maximum = models.DecimalField(max_digits=9, decimal_places=3)
    comment = models.TextField(blank=True)
    state = models.CharField(max_length=10, choices=ScoreState.choices, default=ScoreState.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    lease_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # The moment of the grade, sent as the score's timestamp (the platform keeps the latest).
    graded_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = "LTI score (passback)"
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="lti_score_due")]
        constraints = [
            # One waiting score per person and column: a newer grade replaces the waiting one
            # (one being sent may exist beside it; the platform keeps the latest timestamp).
            models.UniqueConstraint(
                fields=["context", "stage_key", "user"],
                condition=Q(state="pending"),
                name="lti_score_one_waiting",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.stage_key} for {self.user}: {self.score_given}/{self.score_maximum}"


class LtiUsedNonce(models.Model):
    """Nonces of accepted launches: a second launch with the same nonce is a replay."""

    platform = models.ForeignKey(LtiPlatform, on_delete=models.CASCADE, related_name="+")
    nonce = models.CharField(max_length=255)
    used_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["platform", "nonce"], name="lti_nonce_once"),
        ]
        indexes = [models.Index(fields=["used_at"], name="lti_nonce_used_at")]

    def __str__(self) -> str:
        return self.nonce


class LtiProblem(models.Model):
    """A refused launch or login: the site-level log (for those with no course; those with one
    are also in the course's audit trail)."""

    created_at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=40)
    message = models.CharField(max_length=500)
    issuer = models.CharField(max_length=500, blank=True)
    client_id = models.CharField(max_length=255, blank=True)
    deployment_id = models.CharField(max_length=255, blank=True)
    context_id = models.CharField(max_length=255, blank=True)
    sub = models.CharField(max_length=255, blank=True)
    course = models.ForeignKey(
        "lifecycle.Course", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    remote_addr = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = "LTI problem"

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.kind}: {self.message}"
