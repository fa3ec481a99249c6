"""Grade arithmetic, pure: rubric totals, late penalties and the project total.

Everything is ``Decimal`` rounded half up to two places, so a grade reads the same in the
page, the CSV and what the LMS receives.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

CENT = Decimal("0.01")
HUNDRED = Decimal("100")
DAY = timedelta(days=1)


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def exact_cents(value: Fraction) -> Decimal:
    """An exact ratio rounded half up (away from zero) to two places, once: a sum of inexact
    Decimal quotients can land a hair below a half cent and round the wrong way."""
    hundredths = abs(value) * 100
    rounded = int(hundredths + Fraction(1, 2))  # floor, for a non-negative number
    return (Decimal(rounded if value >= 0 else -rounded) / HUNDRED).quantize(CENT)


@dataclass(frozen=True)
class Criterion:
    key: str
    title: str
    levels: tuple[tuple[Decimal, str, str], ...]  # (points, label, description), ascending
    allow_na: bool

    @property
    def max_points(self) -> Decimal:
        return max(points for points, _, _ in self.levels)

    def allows(self, points: Decimal) -> bool:
        return any(points == level for level, _, _ in self.levels)


def criteria_of(rubric: Mapping[str, Any] | None) -> list[Criterion]:
    """The criteria of a stage's rubric (``StageDefinition.rubric``); [] when it has none."""
    out = []
    for item in (rubric or {}).get("criteria", []):
        levels = tuple(
            sorted(
                (
                    (
                        Decimal(str(level["points"])),
                        level.get("label", ""),
                        level.get("description", ""),
                    )
                    for level in item.get("levels", [])
                ),
                key=lambda level: level[0],
            )
        )
        if levels:
            out.append(
                Criterion(
                    key=item["key"],
                    title=item.get("title", item["key"]),
                    levels=levels,
                    allow_na=bool(item.get("allow_na", False)),
                )
            )
    return out


def rubric_total(
    criteria: list[Criterion], scores: Mapping[str, Decimal | None]
) -> tuple[Decimal, Decimal]:
    """(points, maximum) of one reviewer's scores. A criterion scored "not applicable"
    (``None``) where the rubric allows it leaves both the points and the maximum; an unscored
    one, or "not applicable" where the rubric does not allow it, counts 0 of its maximum (a
    grade never rises by skipping a criterion the rubric requires)."""
    points = Decimal(0)
    maximum = Decimal(0)
    for criterion in criteria:
        if criterion.allow_na and criterion.key in scores and scores[criterion.key] is None:
            continue
        points += scores.get(criterion.key) or Decimal(0)
        maximum += criterion.max_points
    return cents(points), cents(maximum)


@dataclass(frozen=True)
class LatePenalty:
    percent: Decimal
    days_late: int
    reason: str


def late_penalty(
    *,
    rule: str,
    percent_per_day: Decimal,
    cap_percent: Decimal,
    due_at: datetime | None,
    submitted_at: datetime | None,
) -> LatePenalty:
    """The penalty for a stage first submitted at ``submitted_at`` and due at ``due_at``
    (the team's extension already applied by the caller). A started day counts whole."""
    if due_at is None or submitted_at is None or submitted_at <= due_at:
        return LatePenalty(Decimal(0), 0, "")
    # A started day counts whole: the ceiling, in whole microseconds (a float quotient of two
    # timedeltas loses the last microsecond once the delay is long enough).
    days = -((due_at - submitted_at) // DAY)
    when = f"submitted {days} day{'s' if days != 1 else ''} after the due date"
    if rule == "cutoff":
        return LatePenalty(HUNDRED, days, f"{when.capitalize()}: past the cut-off, no credit.")
    if rule == "per_day":
        percent_per_day, cap_percent = Decimal(percent_per_day), Decimal(cap_percent)
        percent = min(cap_percent, percent_per_day * days, HUNDRED)
        return LatePenalty(
            cents(percent),
            days,
            f"{when.capitalize()}: {cents(percent_per_day)} % a day, capped at "
            f"{cents(cap_percent)} %, a penalty of {cents(percent)} %.",
        )
    return LatePenalty(Decimal(0), days, f"{when.capitalize()}; the course takes no penalty.")


def apply_penalty(points: Decimal, percent: Decimal) -> Decimal:
    """What is left of ``points`` after a penalty of ``percent`` (clamped to 0 to 100)."""
    percent = min(HUNDRED, max(Decimal(0), Decimal(percent)))
    return exact_cents(Fraction(points) * (100 - Fraction(percent)) / 100)


def _weight(value: Any) -> Fraction:
    """A stage's weight as configured; anything that is not a finite non-negative number
    (a typo in the settings) weighs nothing rather than breaking every total of the course."""
    if isinstance(value, bool) or value is None:
        return Fraction(0)
    try:
        weight = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return Fraction(0)
    if not weight.is_finite() or weight < 0:
        return Fraction(0)
    return Fraction(weight)


def project_total(
    stages: Mapping[str, tuple[Decimal, Decimal]], weights: Mapping[str, Any]
) -> tuple[Decimal, Decimal]:
    """The project's total out of 100 from its stages' (final points, maximum), each stage's
    share weighted (a stage without a weight weighs 1). No graded stage: (0, 100)."""
    numerator = Fraction(0)
    denominator = Fraction(0)
    for key, (points, maximum) in stages.items():
        weight = _weight(weights.get(key, 1))
        if maximum <= 0 or weight <= 0:
            continue
        numerator += weight * Fraction(points) / Fraction(maximum)
        denominator += weight
    if denominator == 0:
        return Decimal("0.00"), cents(HUNDRED)
    return exact_cents(100 * numerator / denominator), cents(HUNDRED)
