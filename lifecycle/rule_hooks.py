"""Gate rules are data of the template, but the review layer knows what they mean.

lifecycle validates templates without importing reviews: the review layer registers, when its
app is ready, how to validate one rule and what reviewer pool it demands (reviews.gate). Until
it has, every rule is refused, so a template never stores a rule nobody can evaluate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

RuleErrors = Callable[[Any], list[tuple[str, str]]]
RuleDemand = Callable[[Mapping[str, Any]], Any]

_hooks: dict[str, Any] = {}


def register(*, validate: RuleErrors, demand: RuleDemand, kinds: Callable[[], list[str]]) -> None:
    _hooks.update(validate=validate, demand=demand, kinds=kinds)


def rule_errors(rule: Any) -> list[tuple[str, str]]:
    validate = _hooks.get("validate")
    if validate is None:
        return [("kind", "no gate rules can be evaluated on this site")]
    return list(validate(rule))


def rule_demand(rule: Mapping[str, Any]) -> Any:
    """The rule's demand (``reviews.gate.Demand``: staff, expert, total, expertise)."""
    return _hooks["demand"](rule)


def rule_kinds() -> list[str]:
    kinds = _hooks.get("kinds")
    return kinds() if kinds is not None else []
