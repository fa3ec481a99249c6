"""Reads of grading's rubric side: the lookups that scope grading pages to course staff (404
for anyone else), the reviewers' scores of a stage side by side with their spread, the
suggested grades, and the course overview of standing grades."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import Exists, OuterRef, QuerySet
from django.http import Http404

from lifecycle.models import STAFF_ROLES, Course, Membership, Project, ProjectStage
from reviews.models import Decision, ReviewerRole

from .compute import Criterion, cents, criteria_of, project_total, rubric_total
from .models import GradingSettings, ProjectGrade, StageGrade

HALF = Decimal("0.5")


def _staff_of(user: Any, course_ref: Any) -> Exists:
    return Exists(
        Membership.objects.filter(course=course_ref, user_id=user.pk, role__in=STAFF_ROLES)
    )


def get_course_for_grading_staff(user: Any, course_pk: int) -> Course:
    course = (
        Course.objects.filter(pk=course_pk)
        .filter(_staff_of(user, OuterRef("pk")))
        .select_related("template")
        .first()
    )
    if course is None:
        raise Http404("No such course.")
    return course


def get_stage_for_grading_staff(user: Any, stage_pk: int) -> ProjectStage:
    stage = (
        ProjectStage.objects.filter(pk=stage_pk)
        .filter(_staff_of(user, OuterRef("project__course_id")))
        .select_related("definition", "project__course", "current_revision")
        .first()
    )
    if stage is None:
        raise Http404("No such stage.")
    return stage


def get_project_for_grading_staff(user: Any, project_pk: int) -> Project:
    project = (
        Project.objects.filter(pk=project_pk)
        .filter(_staff_of(user, OuterRef("course_id")))
        .select_related("course")
        .first()
    )
    if project is None:
        raise Http404("No such project.")
    return project


def settings_of(course: Course) -> GradingSettings | None:
    return GradingSettings.objects.filter(course=course).select_related("moderator").first()


@dataclass
class ReviewerColumn:
    decision: Decision
    role: str
    scores: dict[str, Decimal | None]  # criterion key -> points; None: not applicable
    total: Decimal
    maximum: Decimal


@dataclass
class CriterionRow:
    criterion: Criterion
    cells: list[str]  # one per reviewer column: "2", "n/a" or "—"
    minimum: Decimal | None = None
    maximum: Decimal | None = None
    mean: Decimal | None = None
    spread: Decimal | None = None
    disagree: bool = False


@dataclass
class StageScores:
    criteria: list[Criterion]
    columns: list[ReviewerColumn] = field(default_factory=list)
    rows: list[CriterionRow] = field(default_factory=list)
    max_points: Decimal = Decimal(0)
    suggested: Decimal | None = None


def _points_text(points: Decimal | None) -> str:
    return "n/a" if points is None else format(points.normalize(), "f")


def scored_decisions(stage: ProjectStage) -> list[Decision]:
    """The standing decisions on the stage's current revision that carry scores, staff
    first (the order of the columns), with their scores and reviewers: two queries."""
    if stage.current_revision_id is None:
        return []
    decisions = (
        Decision.objects.filter(
            revision_id=stage.current_revision_id,
            replaced_at__isnull=True,
            scores__isnull=False,
        )
        .distinct()
        .select_related("reviewer")
        .prefetch_related("scores")
        .order_by("created_at", "pk")
    )
    order: dict[str, int] = {ReviewerRole.STAFF: 0, ReviewerRole.EXPERT: 1}
    return sorted(decisions, key=lambda d: order.get(d.role, 2))


def stage_scores(stage: ProjectStage, decisions: Iterable[Decision] | None = None) -> StageScores:
    """Every reviewer's scores of the stage side by side, per criterion the lowest, highest
    and mean score and their spread; a criterion is flagged when reviewers disagree by at
    least half its range. The suggested grade is the mean of the reviewers' rubric totals,
    each taken as a share of its own maximum (n/a leaves a criterion out) and scaled to the
    rubric's maximum."""
    criteria = criteria_of(stage.definition.rubric)
    out = StageScores(criteria=criteria, max_points=rubric_total(criteria, {})[1])
    for decision in decisions if decisions is not None else scored_decisions(stage):
        scores = {
            s.criterion_key: (None if s.not_applicable else s.points) for s in decision.scores.all()
        }
        total, maximum = rubric_total(criteria, scores)
        out.columns.append(ReviewerColumn(decision, decision.role, scores, total, maximum))
    for criterion in criteria:
        values: list[Decimal] = [
            points for c in out.columns if (points := c.scores.get(criterion.key)) is not None
        ]
        row = CriterionRow(
            criterion=criterion,
            cells=[
                _points_text(c.scores[criterion.key]) if criterion.key in c.scores else "—"
                for c in out.columns
            ],
        )
        if values:
            lowest_given, highest_given = min(values), max(values)
            row.minimum, row.maximum = lowest_given, highest_given
            row.mean = cents(sum(values, Decimal(0)) / len(values))
            row.spread = highest_given - lowest_given
            lowest = criterion.levels[0][0]
            span = criterion.max_points - lowest
            row.disagree = len(values) > 1 and span > 0 and row.spread >= span * HALF
        out.rows.append(row)
    shares = [c.total / c.maximum for c in out.columns if c.maximum > 0]
    if shares and out.max_points > 0:
        out.suggested = cents(out.max_points * sum(shares, Decimal(0)) / len(shares))
    return out


def standing_stage_grade(stage: ProjectStage) -> StageGrade | None:
    return (
        StageGrade.objects.filter(stage=stage, replaced_at__isnull=True)
        .select_related("moderator", "revision")
        .first()
    )


def standing_project_grade(project: Project) -> ProjectGrade | None:
    return (
        ProjectGrade.objects.filter(project=project, replaced_at__isnull=True)
        .select_related("moderator")
        .first()
    )


def standing_stage_grades(project_ids: Iterable[int]) -> dict[int, dict[str, StageGrade]]:
    """Per project, stage key → the standing grade of that stage in its latest graded cycle;
    one query."""
    out: dict[int, dict[str, StageGrade]] = {}
    grades = (
        StageGrade.objects.filter(stage__project_id__in=list(project_ids), replaced_at__isnull=True)
        .select_related("stage__definition")
        .order_by("stage__project_id", "stage__cycle")
    )
    for grade in grades:
        out.setdefault(grade.stage.project_id, {})[grade.stage.definition.key] = grade
    return out


def suggested_project_total(
    project: Project, settings_row: GradingSettings | None
) -> tuple[Decimal, Decimal, dict[str, StageGrade]]:
    grades = standing_stage_grades([project.pk]).get(project.pk, {})
    total = project_total(
        {k: (g.final_points, g.max_points) for k, g in grades.items()},
        settings_row.stage_weights if settings_row else {},
    )
    return total[0], total[1], grades


def graded_stage_columns(course: Course) -> list[tuple[str, str]]:
    """(key, title) of the course template's stages that have a rubric, in order."""
    if course.template_id is None:
        return []
    return [
        (s.key, s.title)
        for s in course.template.stages.order_by("order").only("key", "title", "rubric")
        if criteria_of(s.rubric)
    ]


def course_projects(course: Course) -> QuerySet[Project]:
    return Project.objects.filter(course=course).order_by("title", "pk")
