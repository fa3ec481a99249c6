"""The lifecycle domain: courses, versioned templates of the lecture's seven stages, projects
walking through them, frozen revisions and the hash-chained audit trail.

Every write goes through lifecycle.services; these classes hold data and invariants only.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone


def new_join_code() -> str:
    # 8 characters from an unambiguous alphabet: easy to read out in a lecture hall.
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(8))


class Role(models.TextChoices):
    INSTRUCTOR = "instructor", "Instructor"
    TA = "ta", "Teaching assistant"
    STUDENT = "student", "Student"


STAFF_ROLES = (Role.INSTRUCTOR, Role.TA)


class NotPursuedGate(models.TextChoices):
    """Who must approve a team's proposal that the project should not be built."""

    STAGE = "stage", "The gate of the stage the project is at"
    STAFF = "staff", "Course staff only"


class ExpertInvitationPolicy(models.TextChoices):
    NOT_ALLOWED = "not_allowed", "Teams may not invite experts"
    ALLOWED = "allowed", "Teams may invite experts"
    AFTER_CONFIRMATION = "after_confirmation", "Teams may invite experts after staff confirm"


class IndependentReview(models.TextChoices):
    """Who decides before seeing the other reviewers' decisions and comments (blind review)."""

    OFF = "off", "Off: reviewers see each other's decisions and comments at once"
    EXPERTS = "experts", "Domain experts decide before they see the others' decisions and comments"
    EVERYONE = "everyone", "Every reviewer decides before seeing the others' decisions and comments"


# --- Templates ----------------------------------------------------------------------------


class LifecycleTemplate(models.Model):
    """One version of a lifecycle template. Editing a template that projects use makes a new
    version (same slug, version + 1); projects keep the version they started on."""

    slug = models.SlugField(max_length=80)
    version = models.PositiveIntegerField(default=1)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # "<stage key>/<question key>" -> {"max_files": n, "types": [...]}: which questions accept
    # evidence files, how many and of which types (evidence.checks.FILE_TYPES).
    evidence_slots = models.JSONField(default=dict, blank=True)
    # artefact -> section -> ["<stage key>/<question key>", ...]: where the model card, the
    # datasheet and the impact assessment take each section from (evidence.artefacts).
    artefact_map = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # A course's own template (made in the editor); empty for shared ones like the lecture's.
    course = models.ForeignKey(
        "Course", on_delete=models.SET_NULL, null=True, blank=True, related_name="own_templates"
    )
    based_on = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["slug", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["slug", "version"], name="template_slug_version_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} (v{self.version})"


class Dismissal(models.TextChoices):
    ALL = "all", "Every approval (a new revision needs fresh approvals)"
    OWNERS = "owners", "Only the approvals of owners whose questions changed"
    EDITORIAL = "editorial", "None, for editorial changes the approving reviewer accepts"


class StageDefinition(models.Model):
    """A stage of a template, with the lecture's guidance and its gate policy."""

    template = models.ForeignKey(LifecycleTemplate, on_delete=models.CASCADE, related_name="stages")
    order = models.PositiveSmallIntegerField()
    key = models.SlugField(max_length=60)
    title = models.CharField(max_length=200)
    summary = models.CharField(max_length=300, blank=True)
    guidance = models.TextField(
        blank=True, help_text="Markdown: the lecture's prompts and examples."
    )
    # Gate policy: approvals on the current revision, by distinct non-members.
    min_approvals = models.PositiveSmallIntegerField(default=1)
    min_staff_approvals = models.PositiveSmallIntegerField(default=1)
    min_expert_approvals = models.PositiveSmallIntegerField(default=0)
    # The template's default; a course overrides it for all its stages or stage by stage
    # (Course.independent_review, Course.independent_review_stages; lifecycle.policy).
    independent_review = models.CharField(
        max_length=10,
        choices=IndependentReview.choices,
        default=IndependentReview.OFF,
        help_text="Who decides before seeing the other reviewers' decisions and comments.",
    )
    # Stage-specific rules, as data so that an edited template can move them.
    requires_stakeholders = models.BooleanField(
        default=False, help_text="Cannot be submitted without at least one stakeholder."
    )
    allows_not_pursued = models.BooleanField(
        default=False, help_text="The team may conclude 'we should not build this' here."
    )
    is_iteration = models.BooleanField(
        default=False,
        help_text="The Iterate stage: the team loops back, concludes or stops from here.",
    )
    # Gate rule "risks traced": every risk of severity >= this has a mitigation and a linked
    # test before the stage passes (reviews.gate.untraced_risks). 0: no such rule.
    risk_min_severity = models.PositiveSmallIntegerField(
        default=0,
        help_text="Every risk of at least this severity (1-5) needs a mitigation and a linked "
        "test before this stage passes. 0: no such rule.",
    )
    # Keys of the earlier stages the Iterate stage may loop back to; empty: any earlier stage.
    loop_targets = models.JSONField(default=list, blank=True)
    # Rules beyond the three minimums, as data the review layer's gate evaluates (each a dict
    # with a "kind" from reviews.gate.RULE_KINDS and an optional "applies_if").
    gate_rules = models.JSONField(default=list, blank=True)
    # question key -> the reviewer expertise that must approve it (the template's "code
    # owners"); kept on the stage so the gate reads it with the definition.
    question_owners = models.JSONField(default=dict, blank=True)
    # The stage's rubric, as data the grading layer reads (grading.compute.criteria_of):
    # {"criteria": [{"key", "title", "allow_na", "levels": [{"points", "label",
    # "description"}]}]}. Empty: the stage is not graded.
    rubric = models.JSONField(default=dict, blank=True)
    dismissal = models.CharField(
        max_length=12,
        choices=Dismissal.choices,
        default=Dismissal.ALL,
        help_text="What a new revision dismisses.",
    )

    class Meta:
        ordering = ["template", "order"]
        constraints = [
            models.UniqueConstraint(fields=["template", "order"], name="stage_def_order_unique"),
            models.UniqueConstraint(fields=["template", "key"], name="stage_def_key_unique"),
            models.CheckConstraint(
                condition=Q(
                    min_approvals__gte=models.F("min_staff_approvals")
                    + models.F("min_expert_approvals")
                ),
                name="stage_def_min_covers_roles",
                violation_error_message=(
                    "The minimum number of approvals must be at least the staff minimum plus "
                    "the expert minimum."
                ),
            ),
            models.CheckConstraint(
                condition=Q(min_approvals__gte=1), name="stage_def_needs_an_approval"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.order}. {self.title}"

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from .policy import stage_policy_errors

        errors = stage_policy_errors(self)
        if errors:
            raise ValidationError(errors)


class QuestionKind(models.TextChoices):
    SHORT_TEXT = "short_text", "Short text"
    LONG_TEXT = "long_text", "Long text (Markdown)"
    YES_NO_UNSURE = "yes_no_unsure", "Yes / no / unsure, with justification"
    SINGLE_CHOICE = "single_choice", "Single choice"
    MULTIPLE_CHOICE = "multiple_choice", "Multiple choice"
    NUMBER = "number", "Number"
    URL = "url", "URL"
    DATE = "date", "Date"


CHOICE_KINDS = (QuestionKind.SINGLE_CHOICE, QuestionKind.MULTIPLE_CHOICE)


class Question(models.Model):
    stage = models.ForeignKey(StageDefinition, on_delete=models.CASCADE, related_name="questions")
    order = models.PositiveSmallIntegerField()
    key = models.SlugField(max_length=60)
    prompt = models.CharField(max_length=500)
    help_text = models.TextField(blank=True)
    kind = models.CharField(max_length=20, choices=QuestionKind.choices)
    choices = models.JSONField(default=list, blank=True, help_text="Options for choice questions.")
    required = models.BooleanField(default=True)

    class Meta:
        ordering = ["stage", "order"]
        constraints = [
            models.UniqueConstraint(fields=["stage", "order"], name="question_order_unique"),
            models.UniqueConstraint(fields=["stage", "key"], name="question_key_unique"),
        ]

    def __str__(self) -> str:
        return self.prompt


class TemplateDraft(models.Model):
    """A course's template being edited: the JSON document of lifecycle.template_data, saved
    as a new template version when staff publish it. ``revision`` is bumped by every edit, so
    the second of two concurrent edits is refused with a conflict."""

    course = models.OneToOneField("Course", on_delete=models.CASCADE, related_name="template_draft")
    data = models.JSONField(default=dict)
    revision = models.PositiveIntegerField(default=1)
    based_on = models.ForeignKey(
        LifecycleTemplate, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"Template draft of {self.course} (edit {self.revision})"


# --- Courses ------------------------------------------------------------------------------


class Course(models.Model):
    """A course board: its members, the template new projects start on, its review settings."""

    title = models.CharField(max_length=200)
    code = models.SlugField(max_length=40, unique=True, help_text="Short name, e.g. 'cs1470-f26'.")
    term = models.CharField(max_length=60, blank=True)
    join_code = models.CharField(max_length=16, unique=True, default=new_join_code)
    join_code_expires_on = models.DateField(
        null=True,
        blank=True,
        help_text="The last day the join code works. Empty: it works until rotated.",
    )
    template = models.ForeignKey(
        LifecycleTemplate,
        on_delete=models.PROTECT,
        related_name="courses",
        help_text="New projects pin this template version.",
    )
    allows_experts = models.BooleanField(
        default=True, help_text="This course uses outside domain experts as reviewers."
    )
    expert_invitations = models.CharField(
        max_length=20,
        choices=ExpertInvitationPolicy.choices,
        default=ExpertInvitationPolicy.ALLOWED,
    )
    team_experts_need_confirmation = models.BooleanField(
        default=True,
        help_text="A domain expert a team invited decides only once course staff confirm them "
        "as independent.",
    )
    not_pursued_gate = models.CharField(
        "who approves “we should not build this”",
        max_length=8,
        choices=NotPursuedGate.choices,
        default=NotPursuedGate.STAGE,
        help_text="A team's proposal not to build passes the gate of the stage it is at, or "
        "needs course staff only.",
    )
    # Blind review. Empty: each stage as the template sets it.
    independent_review = models.CharField(
        max_length=10,
        choices=IndependentReview.choices,
        blank=True,
        default="",
        help_text="Independent review for every stage; empty: as the template sets each stage.",
    )
    # stage key -> IndependentReview value: one stage set apart from the course's setting. Keys,
    # not ids, so the setting survives a new version of the template.
    independent_review_stages = models.JSONField(default=dict, blank=True)
    anonymous_reviewers = models.BooleanField(
        default=False,
        help_text="The team sees 'Reviewer A, domain expert' instead of reviewers' names; course "
        "staff and the audit trail keep the names.",
    )
    invitation_expiry_days = models.PositiveSmallIntegerField(default=14)
    reminder_interval_days = models.PositiveSmallIntegerField(default=3)
    reminder_limit = models.PositiveSmallIntegerField(default=2)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="courses"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "title"]

    def __str__(self) -> str:
        return self.title

    def join_code_expired(self, today: Any = None) -> bool:
        today = today or timezone.localdate()
        return self.join_code_expires_on is not None and today > self.join_code_expires_on

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from .policy import course_policy_errors

        if self.template_id:
            errors = course_policy_errors(self, self.template)
            if errors:
                raise ValidationError(errors)


class Membership(models.Model):
    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=12, choices=Role.choices, default=Role.STUDENT)
    joined_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["course", "role", "user"]
        constraints = [
            models.UniqueConstraint(fields=["course", "user"], name="membership_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.user} — {self.get_role_display()} in {self.course}"

    @property
    def is_staff_role(self) -> bool:
        return self.role in STAFF_ROLES


class RosterEntry(models.Model):
    """A person on a course's uploaded roster: enrolled at once when they have a verified
    account, invited by e-mail (the join link, through the notifications outbox) when they do
    not. Re-uploading the same file finds every row here already and changes nothing."""

    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="roster")
    email = models.EmailField()
    name = models.CharField(max_length=150)
    team = models.CharField(max_length=100, blank=True)
    role = models.CharField(max_length=12, choices=Role.choices, default=Role.STUDENT)
    invited_at = models.DateTimeField(null=True, blank=True)
    # The team the roster placed this person on (None: no team, or not placed yet because
    # they have not joined the course; they are placed when they accept the invitation).
    # Placed once: a student staff later move to another team is not moved back by a re-upload.
    project = models.ForeignKey(
        "Project", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["course", "email"]
        constraints = [
            models.UniqueConstraint(fields=["course", "email"], name="roster_entry_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.email} on the roster of {self.course}"


# --- Projects -----------------------------------------------------------------------------


class ProjectStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    CONCLUDED = "concluded", "Concluded"


class Outcome(models.TextChoices):
    DEPLOYED = "deployed", "Deployed and monitored"
    NOT_PURSUED = "not_pursued", "Not pursued"


class RiskTier(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"


# The project attributes gate rules may name in "applies if".
PROJECT_ATTRIBUTES = ("risk_tier", "domain")


class Project(models.Model):
    course = models.ForeignKey(Course, on_delete=models.PROTECT, related_name="projects")
    template = models.ForeignKey(
        LifecycleTemplate,
        on_delete=models.PROTECT,
        related_name="projects",
        help_text="The template version this project started on.",
    )
    title = models.CharField(max_length=200)
    summary = models.TextField(blank=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="projects")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(
        max_length=12, choices=ProjectStatus.choices, default=ProjectStatus.ACTIVE
    )
    outcome = models.CharField(max_length=12, choices=Outcome.choices, blank=True)
    outcome_reason = models.TextField(blank=True)
    cycle = models.PositiveSmallIntegerField(default=1)
    current_stage = models.ForeignKey(
        "ProjectStage", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    concluded_at = models.DateTimeField(null=True, blank=True)
    # Attributes gate rules read: proposed by the team at stage 1, confirmed by course staff.
    risk_tier = models.CharField(max_length=8, choices=RiskTier.choices, blank=True)
    domain = models.CharField(max_length=60, blank=True)
    attributes_confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    attributes_confirmed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["course", "title"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(status="active", outcome="") | Q(status="concluded") & ~Q(outcome="")),
                name="project_outcome_iff_concluded",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("lifecycle:project_detail", args=[self.pk])

    @property
    def is_active(self) -> bool:
        return self.status == ProjectStatus.ACTIVE


class StageStatus(models.TextChoices):
    LOCKED = "locked", "Locked"
    DRAFTING = "drafting", "Drafting"
    IN_REVIEW = "in_review", "In review"
    CHANGES_REQUESTED = "changes_requested", "Changes requested"
    APPROVED = "approved", "Approved"


# The one table of legal stage transitions; services consult it before every status write.
STAGE_TRANSITIONS: dict[str, frozenset[str]] = {
    StageStatus.LOCKED: frozenset({StageStatus.DRAFTING}),
    StageStatus.DRAFTING: frozenset({StageStatus.IN_REVIEW}),
    StageStatus.IN_REVIEW: frozenset({StageStatus.CHANGES_REQUESTED, StageStatus.APPROVED}),
    StageStatus.CHANGES_REQUESTED: frozenset({StageStatus.IN_REVIEW}),
    StageStatus.APPROVED: frozenset(),
}

EDITABLE_STATUSES = frozenset({StageStatus.DRAFTING, StageStatus.CHANGES_REQUESTED})


def can_transition(current: str, target: str) -> bool:
    return target in STAGE_TRANSITIONS.get(current, frozenset())


class ProjectStage(models.Model):
    """One stage of one project in one cycle. Looping back creates new rows for the new cycle
    and leaves the old ones as they were."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="stages")
    definition = models.ForeignKey(StageDefinition, on_delete=models.PROTECT, related_name="+")
    cycle = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(
        max_length=20, choices=StageStatus.choices, default=StageStatus.LOCKED
    )
    draft_answers = models.JSONField(default=dict, blank=True)
    # Optimistic locking: a save names the version it edited; each save bumps it.
    draft_version = models.PositiveIntegerField(default=0)
    # question key -> draft_version at which it last changed, to name what changed since.
    draft_changed_at = models.JSONField(default=dict, blank=True)
    # question key -> id of the person who changed it last: a stale save by the same person
    # (an autosave racing their own Save click) is no conflict.
    draft_changed_by = models.JSONField(default=dict, blank=True)
    draft_updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    draft_updated_at = models.DateTimeField(null=True, blank=True)
    current_revision = models.ForeignKey(
        "StageRevision", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    prefilled_from = models.ForeignKey(
        "StageRevision",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The approved revision of an earlier cycle this stage was reopened from.",
    )
    due_date = models.DateField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    approved_by_override = models.BooleanField(default=False)
    override_justification = models.TextField(blank=True)

    # Not stored: set on the rows the project page shows (lifecycle.selectors.shown_status).
    shown_status: str
    shown_label: str

    class Meta:
        ordering = ["project", "cycle", "definition__order"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "definition", "cycle"], name="project_stage_unique"
            ),
        ]
        indexes = [
            # The inbox and the board ask for a few projects' stages in one status; without
            # it the planner walks every stage in review of every course.
            models.Index(fields=["project", "status"], name="stage_project_status"),
        ]

    def __str__(self) -> str:
        return f"{self.project} — {self.definition.title} (cycle {self.cycle})"

    def get_absolute_url(self) -> str:
        return reverse(
            "lifecycle:stage_detail", args=[self.project_id, self.cycle, self.definition.key]
        )

    @property
    def is_editable(self) -> bool:
        return self.status in EDITABLE_STATUSES


class StageRevision(models.Model):
    """What the team submitted, frozen. Decisions name the revision they judged."""

    stage = models.ForeignKey(ProjectStage, on_delete=models.PROTECT, related_name="revisions")
    number = models.PositiveIntegerField()
    answers = models.JSONField(default=dict)
    # Stages whose definition requires stakeholders freeze the register with the answers, so
    # reviewers approve the register exactly as it stood.
    stakeholders = models.JSONField(default=list, blank=True)
    # The evidence files attached when it was submitted (question, name, SHA-256, size, type):
    # the content hash covers them, so a file can be neither swapped nor dropped unseen.
    evidence = models.JSONField(default=list, blank=True)
    # The risk register as it stood at submission (every stage: risks are traced through all).
    risks = models.JSONField(default=list, blank=True)
    content_sha256 = models.CharField(max_length=64)
    # The team marks a resubmission as editorial; under the "editorial" dismissal an approval
    # of the earlier revision carries when its reviewer accepts the change as editorial.
    editorial = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    # What the team told the reviewers when resubmitting after a request for changes: what
    # changed and why. Not part of the content hash: reviewers judge the answers.
    response_to_reviewers = models.TextField(blank=True)
    # Per open thread (comment id, as a string) the team's answer, posted to the thread too.
    thread_responses = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["stage", "number"]
        constraints = [
            models.UniqueConstraint(fields=["stage", "number"], name="revision_number_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.stage} — revision {self.number}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not self._state.adding:
            raise ValueError("A stage revision is immutable once written.")
        super().save(*args, **kwargs)


# --- "We should not build this" ---------------------------------------------------------


class ProposalStatus(models.TextChoices):
    IN_REVIEW = "in_review", "In review"
    CHANGES_REQUESTED = "changes_requested", "Changes requested"
    APPROVED = "approved", "Approved: not pursued"
    WITHDRAWN = "withdrawn", "Withdrawn"


# The proposal's legal transitions; its services consult this before every status write. Only
# APPROVED concludes the project (as not pursued); WITHDRAWN leaves it where it was.
PROPOSAL_TRANSITIONS: dict[str, frozenset[str]] = {
    ProposalStatus.IN_REVIEW: frozenset(
        {ProposalStatus.CHANGES_REQUESTED, ProposalStatus.APPROVED, ProposalStatus.WITHDRAWN}
    ),
    ProposalStatus.CHANGES_REQUESTED: frozenset(
        {ProposalStatus.IN_REVIEW, ProposalStatus.WITHDRAWN}
    ),
    ProposalStatus.APPROVED: frozenset(),
    ProposalStatus.WITHDRAWN: frozenset(),
}

OPEN_PROPOSAL_STATUSES = (ProposalStatus.IN_REVIEW, ProposalStatus.CHANGES_REQUESTED)


def can_transition_proposal(current: str, target: str) -> bool:
    return target in PROPOSAL_TRANSITIONS.get(current, frozenset())


class NotPursuedProposal(models.Model):
    """A team's proposal that the project should not be built (lecture: an algorithm may not
    be the right approach; the problem may need a social solution). Reviewed like a stage; only
    its approval concludes the project as not pursued. At most one is open per project."""

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="not_pursued_proposals"
    )
    # The stage the project was at when the current revision was submitted: its gate applies
    # (unless the course has staff alone decide).
    stage = models.ForeignKey(ProjectStage, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(
        max_length=20, choices=ProposalStatus.choices, default=ProposalStatus.IN_REVIEW
    )
    current_revision = models.ForeignKey(
        "ProposalRevision", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["project", "-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["project"],
                condition=Q(status__in=["in_review", "changes_requested"]),
                name="not_pursued_one_open_per_project",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project}: we should not build this ({self.get_status_display()})"

    def get_absolute_url(self) -> str:
        return reverse("lifecycle:project_detail", args=[self.project_id]) + "#proposal"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_PROPOSAL_STATUSES


class ProposalRevision(models.Model):
    """What the team proposed, frozen and hashed like a stage revision; decisions name it."""

    proposal = models.ForeignKey(
        NotPursuedProposal, on_delete=models.PROTECT, related_name="revisions"
    )
    number = models.PositiveIntegerField()
    answers = models.JSONField(default=dict)
    content_sha256 = models.CharField(max_length=64)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["proposal", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["proposal", "number"], name="proposal_revision_number_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.proposal.project} — not-to-build revision {self.number}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not self._state.adding:
            raise ValueError("A proposal revision is immutable once written.")
        super().save(*args, **kwargs)


class StakeholderKind(models.TextChoices):
    DIRECT_USER = "direct_user", "Direct user"
    AFFECTED_COMMUNITY = "affected_community", "Affected community"
    OPERATOR = "operator", "Operator"
    DECISION_MAKER = "decision_maker", "Decision maker"
    DOMAIN_EXPERT = "domain_expert", "Domain expert"
    REGULATOR = "regulator", "Regulator"
    OTHER = "other", "Other"


# The register's fields a team edits (the services accept exactly these).
STAKEHOLDER_FIELDS = (
    "name",
    "kind",
    "interests",
    "possible_harms",
    "possible_benefits",
    "consulted",
    "consultation",
)


class Stakeholder(models.Model):
    """An entry of the project's stakeholder register (lecture: identify the problem and its
    stakeholders; who is the "we" that is comfortable with a machine deciding?)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="stakeholders")
    name = models.CharField("name or group", max_length=200)
    kind = models.CharField(max_length=24, choices=StakeholderKind.choices)
    interests = models.TextField(blank=True)
    possible_harms = models.TextField(blank=True)
    possible_benefits = models.TextField(blank=True)
    consulted = models.BooleanField(default=False)
    consultation = models.TextField("how consulted", blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["project", "created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    def snapshot(self) -> dict[str, Any]:
        return {
            "id": self.pk,
            "name": self.name,
            "kind": self.kind,
            "interests": self.interests,
            "possible_harms": self.possible_harms,
            "possible_benefits": self.possible_benefits,
            "consulted": self.consulted,
            "consultation": self.consultation,
        }


class Likelihood(models.IntegerChoices):
    RARE = 1, "1 — rare"
    UNLIKELY = 2, "2 — unlikely"
    POSSIBLE = 3, "3 — possible"
    LIKELY = 4, "4 — likely"
    ALMOST_CERTAIN = 5, "5 — almost certain"


class Severity(models.IntegerChoices):
    NEGLIGIBLE = 1, "1 — negligible"
    MINOR = 2, "2 — minor"
    MODERATE = 3, "3 — moderate"
    MAJOR = 4, "4 — major"
    CRITICAL = 5, "5 — critical"


# Where a risk is addressed in later stages: the data decision (stage 3), the test that measures
# it per subgroup (stage 5), the monitor and its alert (stage 6). Each link names a question as
# "<stage key>/<question key>"; the traceability view marks a missing or unanswered one a gap.
RISK_LINKS = ("data_link", "test_link", "monitor_link")
RISK_FIELDS = (
    "title",
    "description",
    "likelihood",
    "severity",
    "owner",
    "mitigation",
    *RISK_LINKS,
)


class Risk(models.Model):
    """An entry of the project's risk register: a harm to named stakeholders, scored on the
    course's scale, owned by a team member, mitigated, and traced to the answers and evidence
    that address it. Re-scored each cycle; frozen into every revision."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="risks")
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    stakeholders = models.ManyToManyField(Stakeholder, blank=True, related_name="risks")
    likelihood = models.PositiveSmallIntegerField(choices=Likelihood.choices)
    severity = models.PositiveSmallIntegerField(choices=Severity.choices)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The team member who watches this risk.",
    )
    mitigation = models.TextField(blank=True)
    data_link = models.CharField(max_length=130, blank=True)
    test_link = models.CharField(max_length=130, blank=True)
    monitor_link = models.CharField(max_length=130, blank=True)
    # Evidence files that address it: [{"name": ..., "sha256": ...}], set by the evidence layer.
    evidence = models.JSONField(default=list, blank=True)
    scored_cycle = models.PositiveSmallIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["project", "-severity", "-likelihood", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(likelihood__gte=1, likelihood__lte=5)
                & Q(severity__gte=1, severity__lte=5),
                name="risk_scores_on_the_scale",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def score(self) -> int:
        return self.likelihood * self.severity

    def snapshot(self) -> dict[str, Any]:
        return {
            "id": self.pk,
            "title": self.title,
            "description": self.description,
            "stakeholders": sorted(s.pk for s in self.stakeholders.all()),
            "likelihood": self.likelihood,
            "severity": self.severity,
            "owner": self.owner_id,
            "mitigation": self.mitigation,
            "data_link": self.data_link,
            "test_link": self.test_link,
            "monitor_link": self.monitor_link,
            "evidence": list(self.evidence),
            "scored_cycle": self.scored_cycle,
        }


# --- Audit trail --------------------------------------------------------------------------


class AuditEvent(models.Model):
    """Append-only, hash-chained record of every transition. The database itself refuses
    UPDATE and DELETE on this table (triggers from migration 0002)."""

    seq = models.PositiveBigIntegerField(unique=True)
    created_at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    actor_label = models.CharField(max_length=254, blank=True)
    # The actor's display name when the event was written (hashed from hash_version 2 on;
    # events written before that have it empty).
    actor_name = models.CharField(max_length=150, blank=True, default="")
    verb = models.CharField(max_length=60, db_index=True)
    object_type = models.CharField(max_length=60)
    object_id = models.CharField(max_length=40)
    course = models.ForeignKey(
        Course, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    project = models.ForeignKey(
        Project, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    old = models.JSONField(null=True, blank=True)
    new = models.JSONField(null=True, blank=True)
    flagged = models.BooleanField(
        default=False, help_text="Set on events an auditor must see, such as gate overrides."
    )
    prev_hash = models.CharField(max_length=64, unique=True)
    hash = models.CharField(max_length=64, unique=True)
    # Which fields the hash covers (lifecycle.audit.HASH_VERSIONS); 1 for events written before
    # version 2 existed, which keep verifying with the rule they were written with.
    hash_version = models.PositiveSmallIntegerField(default=1)

    class Meta:
        ordering = ["seq"]
        indexes = [
            models.Index(fields=["course", "seq"], name="audit_course_seq"),
            models.Index(fields=["project", "seq"], name="audit_project_seq"),
            models.Index(fields=["created_at"], name="audit_created_at"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.verb} {self.object_type}:{self.object_id}"
