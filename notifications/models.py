"""Notifications: the in-app notification and e-mail outbox row, and the reminders the daily
sweep sends. Above the review layer: this app reads reviews, lifecycle and accounts; none of
them imports it (they publish domain events that notifications.subscribers turns into rows).

The tables keep the names they had when these models lived in reviews (``db_table``), so the
move changed no data (see migrations/0001_initial.py)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from lifecycle.models import Project, StageRevision
from reviews.models import ReviewAssignment


class NotificationKind(models.TextChoices):
    REVIEW_REQUESTED = "review_requested", "Review requested"
    CHANGES_REQUESTED = "changes_requested", "Changes requested"
    RESUBMITTED = "resubmitted", "Revision resubmitted"
    STAGE_APPROVED = "stage_approved", "Stage approved"
    LOOPED_BACK = "looped_back", "Project looped back"
    INVITATION = "invitation", "Invitation"
    OVERRIDE = "override", "Instructor override"
    DUE_SOON = "due_soon", "Due date approaching"
    CHANGES_UNANSWERED = "changes_unanswered", "Change request unanswered"
    REVIEW_REMINDER = "review_reminder", "Review reminder"
    REVIEW_ESCALATION = "review_escalation", "Overdue review escalated"
    NUDGE = "nudge", "Nudge from course staff"
    AUDIT_CHECKPOINT = "audit_checkpoint", "Audit checkpoint"
    COMMENT = "comment", "New comment"
    COMMENT_REPLY = "comment_reply", "Reply to a comment"
    EXPERT_CONFIRMATION = "expert_confirmation", "Expert awaiting confirmation"
    RESPONSE_TO_REVIEWERS = "response_to_reviewers", "Response to reviewers"
    REVIEW_FLAGGED = "review_flagged", "Review flagged as unfair"


class EmailStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    DIGEST = "digest", "Waiting for the daily digest"
    DIGESTED = "digested", "Sent in a digest"


class Notification(models.Model):
    """In-app notification and e-mail outbox row in one: written in the same transaction as the
    event, delivered by a Celery task queued on commit, or by the sweeper if that task was
    lost. ``dedupe_key`` makes an event notify each person once, however often it is replayed."""

    # None for an e-mail to an address with no account yet (a roster's course invitation):
    # it is delivered like any other row and never shows in anyone's centre.
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="notifications",
    )
    email = models.EmailField(help_text="Where the e-mail goes (the recipient's at the time).")
    kind = models.CharField(max_length=24, choices=NotificationKind.choices)
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    stage = models.ForeignKey(
        "lifecycle.ProjectStage",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
    )
    subject = models.CharField(max_length=250)
    body = models.TextField(blank=True)
    link = models.CharField(max_length=500, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    dedupe_key = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    read_at = models.DateTimeField(null=True, blank=True)
    email_status = models.CharField(
        max_length=10, choices=EmailStatus.choices, default=EmailStatus.PENDING
    )
    email_attempts = models.PositiveSmallIntegerField(default=0)
    email_next_attempt_at = models.DateTimeField(default=timezone.now)
    email_claimed_at = models.DateTimeField(null=True, blank=True)
    email_sent_at = models.DateTimeField(null=True, blank=True)
    email_error = models.TextField(blank=True)

    class Meta:
        db_table = "reviews_notification"
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["recipient", "read_at"], name="notification_unread"),
            models.Index(
                fields=["email_status", "email_next_attempt_at"], name="notification_outbox"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.recipient or self.email}: {self.subject}"


class Reminder(models.Model):
    """One reminder or escalation sent for a pending assignment, or a nudge for a stage. Its
    identity is unique, so a sweep run twice, or by two beat processes, sends nothing twice."""

    kind = models.CharField(max_length=24, choices=NotificationKind.choices)
    assignment = models.ForeignKey(
        ReviewAssignment, on_delete=models.CASCADE, null=True, blank=True, related_name="reminders"
    )
    stage = models.ForeignKey(
        "lifecycle.ProjectStage",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
    )
    revision = models.ForeignKey(
        StageRevision, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    sequence = models.PositiveSmallIntegerField(default=1)
    # The reminder's identity, e.g. "review_reminder:a12:r34:2" (assignment 12, revision 34,
    # second reminder) or "due_soon:s56:2026-12-12". One string, so no NULL slips past the
    # unique index.
    identity = models.CharField(max_length=120, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "reviews_reminder"
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.sequence}"
