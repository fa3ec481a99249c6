"""The review layer: who reviews what, invitations for outside experts, decisions on exact
revisions and comment threads. Depends on lifecycle; lifecycle never imports this app."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from lifecycle.models import (
    Course,
    Project,
    ProposalRevision,
    StageDefinition,
    StageRevision,
)


class ReviewerRole(models.TextChoices):
    STAFF = "staff", "Course staff"
    EXPERT = "expert", "Domain expert"


class AssignmentState(models.TextChoices):
    ACTIVE = "active", "Active"
    WITHDRAWN = "withdrawn", "Withdrawn"
    # Staff no longer trust this expert: their decisions stop counting on every stage still
    # in review (a stage already approved stays approved; its approval is history).
    REVOKED = "revoked", "Revoked"


class ReviewAssignment(models.Model):
    """A reviewer for one stage of a project (in every cycle), or for the whole project when
    ``stage_definition`` is empty."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="assignments")
    stage_definition = models.ForeignKey(
        StageDefinition,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Empty: every stage of the project.",
    )
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="review_assignments"
    )
    role = models.CharField(max_length=8, choices=ReviewerRole.choices)
    state = models.CharField(
        max_length=10, choices=AssignmentState.choices, default=AssignmentState.ACTIVE
    )
    due_date = models.DateField(null=True, blank=True)
    assigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    # Who proposed this expert: an accepted invitation names its sender.
    invitation = models.ForeignKey(
        "Invitation", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    needs_confirmation = models.BooleanField(
        default=False,
        help_text="An expert a team proposed: their decisions are refused until staff confirm.",
    )
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    confirmed_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # What this reviewer may approve as a question's owner, e.g. ["ethics", "clinical"].
    expertise_tags = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["project", "stage_definition__order", "created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "stage_definition", "reviewer"],
                condition=Q(state="active", stage_definition__isnull=False),
                name="assignment_active_stage_unique",
            ),
            # NULL never equals NULL in a unique index: whole-project assignments need their own.
            models.UniqueConstraint(
                fields=["project", "reviewer"],
                condition=Q(state="active", stage_definition__isnull=True),
                name="assignment_active_project_unique",
            ),
        ]
        indexes = [models.Index(fields=["reviewer", "state"], name="assignment_reviewer_state")]

    def __str__(self) -> str:
        scope = self.stage_definition.title if self.stage_definition else "whole project"
        return f"{self.reviewer} reviews {self.project} ({scope})"

    @property
    def is_active(self) -> bool:
        return self.state == AssignmentState.ACTIVE

    def covers(self, definition_id: int) -> bool:
        return self.stage_definition_id is None or self.stage_definition_id == definition_id

    @property
    def awaiting_confirmation(self) -> bool:
        return self.needs_confirmation and self.confirmed_at is None

    @property
    def proposed_by(self) -> Any:
        """Who put this reviewer forward: the invitation's sender, else whoever assigned."""
        return self.invitation.invited_by if self.invitation is not None else self.assigned_by


class ConflictDeclaration(models.Model):
    """A domain expert's declaration of conflicts of interest, made once per project before
    their first decision on it; course staff read it on the reviewers page."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="conflict_declarations"
    )
    has_conflict = models.BooleanField()
    details = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["project", "created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "reviewer"], name="conflict_declaration_once_per_project"
            ),
        ]

    def __str__(self) -> str:
        said = "declares a conflict" if self.has_conflict else "declares no conflict"
        return f"{self.reviewer} {said} on {self.project}"


class InvitationScope(models.TextChoices):
    COURSE = "course", "Course"
    PROJECT = "project", "Project"
    STAGE = "stage", "Stage"


class Invitation(models.Model):
    """An e-mailed link for a domain expert. Only the SHA-256 of the token is stored; the link
    is single-use, expires and can be revoked."""

    email = models.EmailField()
    name = models.CharField(max_length=150, blank=True)
    token_hash = models.CharField(max_length=64, unique=True)
    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="invitations")
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, null=True, blank=True, related_name="invitations"
    )
    stage_definition = models.ForeignKey(
        StageDefinition, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    message = models.TextField(blank=True)
    due_date = models.DateField(null=True, blank=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    needs_confirmation = models.BooleanField(default=False)
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    confirmed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    # Copied to the expert's assignment on acceptance (owners per question).
    expertise_tags = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(stage_definition__isnull=True) | Q(project__isnull=False),
                name="invitation_stage_needs_project",
            ),
        ]

    def __str__(self) -> str:
        return f"Invitation for {self.email} ({self.scope})"

    @property
    def scope(self) -> str:
        if self.stage_definition_id:
            return InvitationScope.STAGE
        if self.project_id:
            return InvitationScope.PROJECT
        return InvitationScope.COURSE

    def state(self, now=None) -> str:
        now = now or timezone.now()
        if self.revoked_at:
            return "revoked"
        if self.accepted_at:
            return "accepted"
        if self.expires_at <= now:
            return "expired"
        if self.needs_confirmation and not self.confirmed_at:
            return "awaiting_confirmation"
        return "pending"


class DecisionOutcome(models.TextChoices):
    APPROVE = "approve", "Approve"
    REQUEST_CHANGES = "request_changes", "Request changes"


class Decision(models.Model):
    """A reviewer's judgement of one exact revision. A changed decision replaces the earlier
    one (kept, with ``replaced_at`` set), so history stays whole."""

    revision = models.ForeignKey(StageRevision, on_delete=models.PROTECT, related_name="decisions")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="review_decisions"
    )
    assignment = models.ForeignKey(
        ReviewAssignment, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    role = models.CharField(max_length=8, choices=ReviewerRole.choices)
    outcome = models.CharField(max_length=16, choices=DecisionOutcome.choices)
    comment = models.TextField(blank=True)
    question_key = models.CharField(
        max_length=60, blank=True, help_text="The question a request for changes is about."
    )
    created_at = models.DateTimeField(default=timezone.now)
    replaced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["revision", "created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["revision", "reviewer"],
                condition=Q(replaced_at__isnull=True),
                name="decision_one_current_per_reviewer",
            ),
        ]
        indexes = [
            # The inbox's "your decisions": a reviewer's standing decisions, newest first, read
            # a page at a time from the index however many they made over the years.
            models.Index(
                "reviewer",
                models.F("created_at").desc(),
                models.F("id").desc(),
                condition=Q(replaced_at__isnull=True),
                name="decision_standing_by_reviewer",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reviewer}: {self.get_outcome_display()} on {self.revision}"


class EditorialAcceptance(models.Model):
    """A reviewer accepts that a revision the team marked editorial changes nothing they
    judged: under the stage's "editorial" dismissal their approval of the earlier revision
    carries to this one."""

    revision = models.ForeignKey(StageRevision, on_delete=models.PROTECT, related_name="+")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["revision", "reviewer"], name="editorial_acceptance_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reviewer} accepts {self.revision} as editorial"


class ProposalDecision(models.Model):
    """A reviewer's judgement of one exact revision of a "we should not build this" proposal:
    the same rules as a stage's Decision (one standing decision per reviewer and revision; a
    changed one is kept with ``replaced_at``)."""

    revision = models.ForeignKey(
        ProposalRevision, on_delete=models.PROTECT, related_name="decisions"
    )
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="proposal_decisions"
    )
    assignment = models.ForeignKey(
        ReviewAssignment, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    role = models.CharField(max_length=8, choices=ReviewerRole.choices)
    outcome = models.CharField(max_length=16, choices=DecisionOutcome.choices)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    replaced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["revision", "created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["revision", "reviewer"],
                condition=Q(replaced_at__isnull=True),
                name="proposal_decision_one_current",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reviewer}: {self.get_outcome_display()} on {self.revision}"

    # The gate's Vote reads these, as on a stage decision.
    question_key = ""


class Comment(models.Model):
    """A thread on a revision, or on one question of it; the team resolves it."""

    revision = models.ForeignKey(StageRevision, on_delete=models.PROTECT, related_name="comments")
    question_key = models.CharField(max_length=60, blank=True)
    parent = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="replies"
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="review_comments"
    )
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        ordering = ["revision", "created_at"]

    def __str__(self) -> str:
        return f"Comment by {self.author} on {self.revision}"


class DossierRenderStatus(models.TextChoices):
    PREPARING = "preparing", "Preparing"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


def dossier_upload_path(render: DossierRender, filename: str) -> str:
    return f"dossiers/{render.project_id}/{filename}"


class DossierRender(models.Model):
    """A dossier PDF, rendered by a Celery worker (never by a web worker) for one reader and one
    state of the project: ``content_hash`` fingerprints every row the dossier shows to that
    reader. A change to the project changes the hash, so the next request starts a new render;
    the unique constraint makes two simultaneous requests share one render."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    content_hash = models.CharField(max_length=64)
    status = models.CharField(
        max_length=10, choices=DossierRenderStatus.choices, default=DossierRenderStatus.PREPARING
    )
    file = models.FileField(upload_to=dossier_upload_path, blank=True)
    error = models.TextField(blank=True)
    requested_at = models.DateTimeField(default=timezone.now)
    # Set by the worker that claims the render; a claim older than the lease is abandoned.
    claimed_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    render_seconds = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "requested_by", "content_hash"], name="dossier_render_once"
            )
        ]
        indexes = [models.Index(fields=["requested_by", "status"], name="dossier_render_by_user")]

    def __str__(self) -> str:
        return f"Dossier of {self.project} for {self.requested_by} ({self.status})"


# --- the reviewer quality loop (issue 15, part 6) ---------------------------------------------
# After Peergrade and Moodle's "grade for assessment": the team says how helpful each review
# was, and may flag one as unfair; course staff read both per reviewer on the board.

HELPFULNESS_MIN, HELPFULNESS_MAX = 1, 5


class ReviewRating(models.Model):
    """How helpful one team member found one decision's review: one row per (decision, team
    member), changed in place (the audit trail keeps the earlier value). The reviewer never
    learns who rated them; course staff can."""

    decision = models.ForeignKey(Decision, on_delete=models.PROTECT, related_name="ratings")
    rater = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    helpfulness = models.PositiveSmallIntegerField()
    note = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["decision", "created_at"]
        constraints = [
            models.UniqueConstraint(fields=["decision", "rater"], name="review_rating_once"),
            models.CheckConstraint(
                condition=Q(helpfulness__gte=HELPFULNESS_MIN, helpfulness__lte=HELPFULNESS_MAX),
                name="review_rating_in_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rater} rates {self.decision_id}: {self.helpfulness}/{HELPFULNESS_MAX}"


class FlagState(models.TextChoices):
    OPEN = "open", "Open"
    WITHDRAWN = "withdrawn", "Withdrawn"
    RESOLVED = "resolved", "Resolved"


# open → withdrawn (by whoever raised it) | resolved (by course staff, with a note).
FLAG_TRANSITIONS: dict[str, frozenset[str]] = {
    FlagState.OPEN: frozenset({FlagState.WITHDRAWN, FlagState.RESOLVED}),
    FlagState.WITHDRAWN: frozenset(),
    FlagState.RESOLVED: frozenset(),
}


class ReviewFlag(models.Model):
    """A team member's flag on a review they find unfair, with the reason; course staff are
    told, and resolve it with a note. One open flag per (decision, team member)."""

    decision = models.ForeignKey(Decision, on_delete=models.PROTECT, related_name="flags")
    raised_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.TextField()
    state = models.CharField(max_length=10, choices=FlagState.choices, default=FlagState.OPEN)
    created_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    resolution_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["decision", "raised_by"],
                condition=Q(state="open"),
                name="review_flag_one_open",
            ),
        ]
        indexes = [models.Index(fields=["state", "created_at"], name="review_flag_state")]

    def __str__(self) -> str:
        return f"{self.raised_by} flags decision {self.decision_id} ({self.state})"

    @property
    def is_open(self) -> bool:
        return self.state == FlagState.OPEN
