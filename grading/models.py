"""Grades: rubric scores that are part of a reviewer's decision, the moderated grade of a stage
and of a project, and the course's late policy.

The rubric itself is template data (``StageDefinition.rubric``, see ``grading.rubrics``); a
score names a criterion by its key, so it survives a new version of the template.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from lifecycle.models import Course, Project, ProjectStage, StageRevision
from reviews.models import Decision


class Scorers(models.TextChoices):
    STAFF = "staff", "Course staff"
    EXPERTS = "experts", "Domain experts"
    BOTH = "both", "Course staff and domain experts"


class TeamSees(models.TextChoices):
    NOTHING = "nothing", "Nothing until staff release it"
    FINAL = "final", "The moderated grade and its comment"
    PROVISIONAL = "provisional", "The moderated grade and every reviewer's rubric scores"


class LatePenaltyRule(models.TextChoices):
    NONE = "none", "No penalty"
    PER_DAY = "per_day", "A percentage per day late, up to a cap"
    CUTOFF = "cutoff", "Nothing after the due date"


class GradingSettings(models.Model):
    """How a course grades: who scores rubrics, what the team sees, who moderates, and the
    late policy. One row per course; a course without one does not grade."""

    course = models.OneToOneField(Course, on_delete=models.CASCADE, related_name="grading")
    scorers = models.CharField(max_length=8, choices=Scorers.choices, default=Scorers.BOTH)
    team_sees = models.CharField(max_length=12, choices=TeamSees.choices, default=TeamSees.FINAL)
    # Empty: the course's instructors moderate. A named TA moderates as well as instructors.
    moderator = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="A TA who sets final grades besides the instructors.",
    )
    late_rule = models.CharField(
        max_length=8, choices=LatePenaltyRule.choices, default=LatePenaltyRule.NONE
    )
    late_percent_per_day = models.DecimalField(
        max_digits=5, decimal_places=2, default=Decimal("10")
    )
    late_cap_percent = models.DecimalField(max_digits=5, decimal_places=2, default=Decimal("50"))
    # stage key -> weight of that stage in the project total; a missing key weighs 1.
    stage_weights = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "grading settings"
        constraints = [
            models.CheckConstraint(
                condition=Q(late_percent_per_day__gte=0, late_percent_per_day__lte=100),
                name="grading_late_percent_in_range",
            ),
            models.CheckConstraint(
                condition=Q(late_cap_percent__gte=0, late_cap_percent__lte=100),
                name="grading_late_cap_in_range",
            ),
        ]

    def __str__(self) -> str:
        return f"Grading of {self.course}"


class StageDueDate(models.Model):
    """When a stage is due in a course: its first submission after this is late."""

    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="stage_due_dates")
    stage_key = models.SlugField(max_length=60)
    due_at = models.DateTimeField()

    class Meta:
        ordering = ["course", "due_at"]
        constraints = [
            models.UniqueConstraint(fields=["course", "stage_key"], name="stage_due_once"),
        ]

    def __str__(self) -> str:
        return f"{self.stage_key} due {self.due_at:%Y-%m-%d %H:%M}"


class DueDateExtension(models.Model):
    """A team's own due date for one stage, granted by course staff with a reason."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="extensions")
    stage_key = models.SlugField(max_length=60)
    due_at = models.DateTimeField()
    reason = models.TextField()
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "stage_key"], name="extension_once"),
        ]

    def __str__(self) -> str:
        return f"{self.project}: {self.stage_key} due {self.due_at:%Y-%m-%d %H:%M}"


class CriterionScore(models.Model):
    """One criterion of a rubric as one reviewer scored it in one decision: points, or "not
    applicable" where the criterion allows it. Part of the decision: a changed decision has
    scores of its own, the replaced one keeps its."""

    decision = models.ForeignKey(Decision, on_delete=models.CASCADE, related_name="scores")
    criterion_key = models.SlugField(max_length=60)
    points = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    not_applicable = models.BooleanField(default=False)

    class Meta:
        ordering = ["decision", "criterion_key"]
        constraints = [
            models.UniqueConstraint(
                fields=["decision", "criterion_key"], name="criterion_score_once"
            ),
            models.CheckConstraint(
                condition=Q(not_applicable=True, points__isnull=True)
                | Q(not_applicable=False, points__isnull=False),
                name="criterion_score_points_or_na",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.criterion_key}: {'n/a' if self.not_applicable else self.points}"


class StageGrade(models.Model):
    """The moderated grade of one stage of a project: what the moderator set from the
    reviewers' scores, the late penalty applied and why, and the result. A new grade replaces
    the standing one (kept, ``replaced_at`` set)."""

    stage = models.ForeignKey(ProjectStage, on_delete=models.PROTECT, related_name="grades")
    revision = models.ForeignKey(
        StageRevision, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    points = models.DecimalField(max_digits=7, decimal_places=2)
    max_points = models.DecimalField(max_digits=7, decimal_places=2)
    late_penalty_percent = models.DecimalField(max_digits=5, decimal_places=2, default=0)
    late_reason = models.CharField(max_length=300, blank=True)
    final_points = models.DecimalField(max_digits=7, decimal_places=2)
    comment = models.TextField(blank=True)
    moderator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    released = models.BooleanField(
        default=False, help_text="The team sees it (under the course's 'team sees' setting)."
    )
    created_at = models.DateTimeField(default=timezone.now)
    replaced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["stage", "-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["stage"],
                condition=Q(replaced_at__isnull=True),
                name="stage_grade_one_standing",
            ),
            models.CheckConstraint(
                condition=Q(points__gte=0, max_points__gt=0, points__lte=models.F("max_points")),
                name="stage_grade_points_in_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.stage}: {self.final_points}/{self.max_points}"


class ProjectGrade(models.Model):
    """The moderated grade of a whole project, with the moderator's comment."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="grades")
    points = models.DecimalField(max_digits=7, decimal_places=2)
    max_points = models.DecimalField(max_digits=7, decimal_places=2)
    comment = models.TextField(blank=True)
    moderator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    released = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    replaced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["project", "-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["project"],
                condition=Q(replaced_at__isnull=True),
                name="project_grade_one_standing",
            ),
            models.CheckConstraint(
                condition=Q(points__gte=0, max_points__gt=0, points__lte=models.F("max_points")),
                name="project_grade_points_in_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project}: {self.points}/{self.max_points}"
