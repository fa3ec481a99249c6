"""Parts of a decision that layers above reviews contribute (the grading layer's rubric
scores): a part shows a fragment inside the decision form, reads and checks what the reviewer
entered, and writes its rows in ``decision_record``'s transaction, so the decision and its
parts commit together or not at all, and the audit event of the decision carries them.

reviews knows nothing of its parts: they register here in their AppConfig.ready().
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from django.http import HttpRequest, QueryDict

from lifecycle.errors import InvalidAnswers
from lifecycle.models import ProjectStage


class DecisionPart(Protocol):
    """One part of a decision.

    ``key`` names the part in ``decision_record(parts={key: value})``, in the API's request
    and in the decision's audit payload. Errors are keyed ``"<key>.<field>"`` so the review
    page puts each next to its field.
    """

    key: str

    def applies(self, *, stage: ProjectStage, role: str) -> bool:
        """Whether a reviewer in ``role`` fills in this part on ``stage``."""
        ...

    def from_post(self, *, stage: ProjectStage, data: QueryDict) -> Any:
        """The part's raw value from the review page's POST data."""
        ...

    def clean(self, *, stage: ProjectStage, role: str, value: Any) -> Any:
        """The checked value, or InvalidAnswers keyed by "<key>.<field>"."""
        ...

    def write(self, *, decision: Any, stage: ProjectStage, cleaned: Any) -> Any:
        """Write the part's rows for ``decision``; return what the audit event records."""
        ...

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
        """The fragment inside the decision form (rendered through a template, so escaped):
        ``value`` is what was posted (on an error), ``previous`` the reviewer's standing
        decision on this revision (its values prefill "change my decision")."""
        ...


_parts: list[DecisionPart] = []


def register(part: DecisionPart) -> DecisionPart:
    if all(p.key != part.key for p in _parts):
        _parts.append(part)
    return part


def stage_reads() -> dict[str, Any]:
    """What the registered parts read of a stage, as annotations (name → expression) for the
    query that reads the stage, so ``decision_record`` reads them in that same query. A part
    may offer them by a ``stage_reads()`` method; the attribute each sets on the stage is the
    part's own business."""
    reads: dict[str, Any] = {}
    for part in _parts:
        reads_of = getattr(part, "stage_reads", None)
        if reads_of is not None:
            reads.update(reads_of())
    return reads


def parts_for(stage: ProjectStage, role: str | None) -> list[DecisionPart]:
    if role is None:
        return []
    return [part for part in _parts if part.applies(stage=stage, role=role)]


def from_post(stage: ProjectStage, role: str | None, data: QueryDict) -> dict[str, Any]:
    return {part.key: part.from_post(stage=stage, data=data) for part in parts_for(stage, role)}


def from_post_any_role(stage: ProjectStage, data: QueryDict) -> dict[str, Any]:
    """Every registered part's raw value, before anyone knows the reviewer's role (the POST
    that records a decision leaves that to ``decision_record``, which checks only the parts
    that apply and ignores the others)."""
    return {part.key: part.from_post(stage=stage, data=data) for part in _parts}


def clean_all(
    stage: ProjectStage, role: str, values: Mapping[str, Any] | None
) -> list[tuple[DecisionPart, Any]]:
    """Every applicable part checked against what was given; one InvalidAnswers with all
    parts' errors when any is wrong (nothing is written then)."""
    values = values or {}
    errors: dict[str, list[str]] = {}
    cleaned: list[tuple[DecisionPart, Any]] = []
    for part in parts_for(stage, role):
        try:
            cleaned.append((part, part.clean(stage=stage, role=role, value=values.get(part.key))))
        except InvalidAnswers as invalid:
            for name, messages in invalid.errors.items():
                errors.setdefault(name, []).extend(messages)
    if errors:
        raise InvalidAnswers(errors)
    return cleaned


def render_all(
    request: HttpRequest,
    stage: ProjectStage,
    role: str | None,
    *,
    values: Mapping[str, Any] | None = None,
    errors: Mapping[str, list[str]] | None = None,
    previous: Any = None,
) -> str:
    values = values or {}
    return "".join(
        part.render(
            request,
            stage=stage,
            role=role or "",
            value=values.get(part.key),
            errors={k: v for k, v in (errors or {}).items() if k.split(".", 1)[0] == part.key},
            previous=previous,
        )
        for part in parts_for(stage, role)
    )
