"""Domain errors raised by services. Views turn them into messages, 403/404 or 409 pages;
none of them is ever a 500."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class DomainError(Exception):
    """Base class: something the user asked for is not possible right now."""

    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotAllowed(DomainError):
    """The actor may not do this (a view that got this far shows 403 or 404)."""

    status_code = 403


class IllegalTransition(DomainError):
    """The object is not in a state that allows this transition."""

    status_code = 409


class DraftConflict(DomainError):
    """Someone saved the draft after the version the caller edited, and changed a question the
    caller changed too. ``changed_questions`` are the questions in conflict; ``merged_answers``
    is the draft the caller would have without them deciding: the teammate's version with the
    caller's other changes applied and, for questions in conflict, the caller's text."""

    status_code = 409

    def __init__(
        self,
        *,
        changed_questions: Sequence[str],
        current_version: int,
        current_answers: Mapping[str, Any],
        updated_by: str,
        labels: Mapping[str, str] | None = None,
        merged_answers: Mapping[str, Any] | None = None,
        merged_questions: Sequence[str] = (),
    ) -> None:
        labels = labels or {}
        names = ", ".join(f"“{labels.get(k, k)}”" for k in changed_questions) or "none"
        super().__init__(
            f"{updated_by} saved this draft after you opened it (now version "
            f"{current_version}); changed by both of you: {names}."
        )
        self.changed_questions = list(changed_questions)
        self.current_version = current_version
        self.current_answers = dict(current_answers)
        self.updated_by = updated_by
        self.merged_answers = dict(merged_answers if merged_answers is not None else {})
        self.merged_questions = list(merged_questions)


class InvalidAnswers(DomainError):
    """Answers that fail validation: field errors keyed by question key ("__all__" for the
    stage as a whole)."""

    status_code = 400

    def __init__(self, errors: Mapping[str, Sequence[str]]) -> None:
        self.errors = {key: list(messages) for key, messages in errors.items()}
        summary = "; ".join(f"{key}: {' '.join(msgs)}" for key, msgs in self.errors.items())
        super().__init__(f"The answers are not complete or not valid — {summary}")
