"""The rubric as a part of a reviewer's decision (``reviews.decision_parts``): the criteria
shown beside the decision on the review page, the scores checked against the stage's rubric,
and one ``CriterionScore`` row per criterion written with the decision, in its transaction.

Who scores follows the course's ``GradingSettings.scorers`` and the reviewer's role on the
stage; a course without grading settings does not grade, and a stage without criteria is not
graded.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db.models import OuterRef, Subquery
from django.http import HttpRequest, QueryDict
from django.template.loader import render_to_string

from lifecycle.errors import InvalidAnswers
from lifecycle.models import ProjectStage
from reviews.models import ReviewerRole

from .compute import Criterion, criteria_of, rubric_total
from .models import CriterionScore, GradingSettings, Scorers

KEY = "rubric"
NOT_APPLICABLE = "na"

SCORERS_BY_ROLE: dict[str, tuple[str, ...]] = {
    ReviewerRole.STAFF: (Scorers.STAFF, Scorers.BOTH),
    ReviewerRole.EXPERT: (Scorers.EXPERTS, Scorers.BOTH),
}


SCORERS_ATTR = "_grading_scorers"


def scorers_of(stage: ProjectStage) -> str | None:
    """The course's ``scorers`` setting, or None when the course does not grade. Read once per
    stage object (a page and its service ask more than once), or with the stage itself
    (``RubricPart.stage_reads``)."""
    if hasattr(stage, SCORERS_ATTR):
        return getattr(stage, SCORERS_ATTR)
    value = (
        GradingSettings.objects.filter(course_id=stage.project.course_id)
        .values_list("scorers", flat=True)
        .first()
    )
    setattr(stage, SCORERS_ATTR, value)
    return value


def scores_with_decision(stage: ProjectStage, role: str) -> bool:
    if not criteria_of(stage.definition.rubric):
        return False
    scorers = scorers_of(stage)
    return scorers is not None and scorers in SCORERS_BY_ROLE.get(role, ())


def _level_text(points: Decimal) -> str:
    return format(points.normalize(), "f")


def _parse(criterion: Criterion, raw: Any) -> tuple[Decimal | None, str]:
    """(points or None for n/a, error)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None, "Score this criterion."
    if isinstance(raw, str) and raw.strip().lower() in (NOT_APPLICABLE, "n/a"):
        if not criterion.allow_na:
            return None, "This criterion cannot be “not applicable”: choose a level."
        return None, ""
    if isinstance(raw, bool):
        return None, "Choose one of the criterion's levels."
    try:
        points = Decimal(str(raw).strip())
    except InvalidOperation:
        return None, "Choose one of the criterion's levels."
    if not points.is_finite() or not criterion.allows(points):
        levels = ", ".join(_level_text(p) for p, _, _ in criterion.levels)
        return None, f"{raw} is not a level of this criterion (its levels: {levels})."
    return points, ""


class RubricPart:
    key = KEY

    def stage_reads(self) -> dict[str, Any]:
        """The course's ``scorers`` setting (the same row ``scorers_of`` reads), read with the
        stage by ``decision_record``."""
        return {
            SCORERS_ATTR: Subquery(
                GradingSettings.objects.filter(course_id=OuterRef("project__course_id"))
                .order_by("pk")
                .values("scorers")[:1]
            )
        }

    def applies(self, *, stage: ProjectStage, role: str) -> bool:
        return scores_with_decision(stage, role)

    def from_post(self, *, stage: ProjectStage, data: QueryDict) -> dict[str, str]:
        return {c.key: data.get(f"{KEY}-{c.key}", "") for c in criteria_of(stage.definition.rubric)}

    def clean(self, *, stage: ProjectStage, role: str, value: Any) -> dict[str, Decimal | None]:
        criteria = criteria_of(stage.definition.rubric)
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise InvalidAnswers({KEY: ["Scores are an object: criterion key → level points."]})
        errors: dict[str, list[str]] = {}
        known = {c.key for c in criteria}
        unknown = sorted(str(k) for k in value if k not in known)
        if unknown:
            errors[KEY] = [f"This stage's rubric has no criterion {', '.join(unknown)}."]
        cleaned: dict[str, Decimal | None] = {}
        for criterion in criteria:
            points, error = _parse(criterion, value.get(criterion.key))
            if error:
                errors[f"{KEY}.{criterion.key}"] = [error]
            else:
                cleaned[criterion.key] = points
        if errors:
            raise InvalidAnswers(errors)
        return cleaned

    def write(
        self, *, decision: Any, stage: ProjectStage, cleaned: dict[str, Decimal | None]
    ) -> dict[str, Any]:
        CriterionScore.objects.bulk_create(
            CriterionScore(
                decision=decision,
                criterion_key=key,
                points=points,
                not_applicable=points is None,
            )
            for key, points in cleaned.items()
        )
        points, maximum = rubric_total(criteria_of(stage.definition.rubric), cleaned)
        return {
            "scores": {k: ("n/a" if v is None else str(v)) for k, v in cleaned.items()},
            "total": str(points),
            "max": str(maximum),
        }

    def render(
        self,
        request: HttpRequest,
        *,
        stage: ProjectStage,
        role: str,
        value: Any,
        errors: Mapping[str, list[str]],
        previous: Any,
    ) -> str:
        chosen: dict[str, str] = {}
        if isinstance(value, Mapping):
            chosen = {k: str(v) for k, v in value.items()}
        elif previous is not None:
            for score in CriterionScore.objects.filter(decision=previous):
                chosen[score.criterion_key] = (
                    NOT_APPLICABLE
                    if score.not_applicable or score.points is None
                    else _level_text(score.points)
                )
        criteria = []
        for criterion in criteria_of(stage.definition.rubric):
            picked = chosen.get(criterion.key, "")
            try:
                picked_points = Decimal(picked) if picked not in ("", NOT_APPLICABLE) else None
            except InvalidOperation:
                picked_points = None
            criteria.append(
                {
                    "key": criterion.key,
                    "title": criterion.title,
                    "description": _description(stage, criterion.key),
                    "name": f"{KEY}-{criterion.key}",
                    "levels": [
                        {
                            "value": _level_text(points),
                            "points": _level_text(points),
                            "label": label,
                            "description": description,
                            "checked": picked_points is not None and picked_points == points,
                        }
                        for points, label, description in criterion.levels
                    ],
                    "allow_na": criterion.allow_na,
                    "na_checked": picked == NOT_APPLICABLE,
                    "max": _level_text(criterion.max_points),
                    "errors": errors.get(f"{KEY}.{criterion.key}", []),
                }
            )
        return render_to_string(
            "grading/partials/rubric_part.html",
            {"criteria": criteria, "errors": errors.get(KEY, []), "role": role},
            request=request,
        )


def _description(stage: ProjectStage, key: str) -> str:
    for item in (stage.definition.rubric or {}).get("criteria", []):
        if item.get("key") == key:
            return str(item.get("description", ""))
    return ""


rubric_part = RubricPart()
