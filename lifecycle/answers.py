"""Shape and validation of answers, per question kind.

Answers are stored as JSON keyed by question key:
- short_text, long_text, url: a string
- yes_no_unsure: {"choice": "yes" | "no" | "unsure", "justification": "..."}
- single_choice: one of the question's choices
- multiple_choice: a list of the question's choices
- number: an int or a float
- date: an ISO date string, YYYY-MM-DD
Blank answers ("", None, [], {} or a yes/no/unsure without a choice) are dropped from drafts.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

from .models import Question, QuestionKind

YES_NO_UNSURE = ("yes", "no", "unsure")
MAX_SHORT_TEXT = 500
MAX_LONG_TEXT = 50_000
MAX_URL = 2_000
_url_validator = URLValidator(schemes=["http", "https"])


def is_blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | tuple | dict):
        if isinstance(value, dict):
            return is_blank(value.get("choice")) and is_blank(value.get("justification"))
        return len(value) == 0
    return False


def _text(value: Any, limit: int) -> str:
    if not isinstance(value, str):
        raise ValidationError("Enter text.")
    if len(value) > limit:
        raise ValidationError(f"Keep this under {limit:,} characters (it has {len(value):,}).")
    if "\x00" in value:
        raise ValidationError("Text cannot contain NUL characters.")
    return value.strip() if limit == MAX_SHORT_TEXT else value


def clean_answer(question: Question, value: Any, *, complete: bool) -> Any:
    """Return the stored form of one answer or raise ValidationError.

    ``complete`` is True on submission: then a yes/no/unsure needs its justification. Drafts
    may be half-written, but never of the wrong type.
    """
    kind = question.kind
    if kind == QuestionKind.SHORT_TEXT:
        return _text(value, MAX_SHORT_TEXT)
    if kind == QuestionKind.LONG_TEXT:
        return _text(value, MAX_LONG_TEXT)
    if kind == QuestionKind.URL:
        url = _text(value, MAX_URL).strip()
        try:
            _url_validator(url)
        except ValidationError:
            raise ValidationError(
                "Enter a full web address starting with http:// or https://."
            ) from None
        return url
    if kind == QuestionKind.YES_NO_UNSURE:
        if not isinstance(value, Mapping):
            raise ValidationError("Choose yes, no or unsure, and justify it.")
        choice = value.get("choice") or ""
        justification = value.get("justification") or ""
        if choice not in ("", *YES_NO_UNSURE):
            raise ValidationError("Choose yes, no or unsure.")
        justification = _text(justification, MAX_LONG_TEXT)
        if complete and not choice:
            raise ValidationError("Choose yes, no or unsure.")
        if complete and not justification.strip():
            raise ValidationError("Justify your answer: say why, and what it rests on.")
        return {"choice": choice, "justification": justification}
    if kind == QuestionKind.SINGLE_CHOICE:
        if not isinstance(value, str) or value not in question.choices:
            raise ValidationError("Choose one of the options.")
        return value
    if kind == QuestionKind.MULTIPLE_CHOICE:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ValidationError("Choose from the options.")
        unknown = [v for v in value if v not in question.choices]
        if unknown:
            raise ValidationError("Choose from the options.")
        # Keep the template's order and drop repeats, so equal selections hash equally.
        return [c for c in question.choices if c in set(value)]
    if kind == QuestionKind.NUMBER:
        return _number(value)
    if kind == QuestionKind.DATE:
        if isinstance(value, dt.date):
            return value.isoformat()
        if not isinstance(value, str):
            raise ValidationError("Enter a date as YYYY-MM-DD.") from None
        try:
            return dt.date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            raise ValidationError("Enter a date as YYYY-MM-DD.") from None
    raise ValidationError(f"Unknown question kind {kind!r}.")


def _number(value: Any) -> int | float:
    if isinstance(value, bool):
        raise ValidationError("Enter a number.")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError("Enter a finite number.")
        return value
    if isinstance(value, str | Decimal):
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            raise ValidationError("Enter a number.") from None
        if not number.is_finite():
            raise ValidationError("Enter a finite number.")
        if abs(number) > Decimal("1e15"):
            raise ValidationError("Enter a number smaller than 10^15.")
        if number == number.to_integral_value():
            return int(number)
        return float(number)
    raise ValidationError("Enter a number.")


def clean_answers(
    questions: Iterable[Question], answers: Mapping[str, Any], *, complete: bool
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Validate answers against a stage's questions.

    Returns (cleaned, errors). Unknown keys are errors. With ``complete``, required questions
    must be answered. Blank answers are left out of ``cleaned``.
    """
    by_key = {q.key: q for q in questions}
    cleaned: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for key in answers:
        if key not in by_key:
            errors[str(key)[:60]] = ["This stage has no such question."]
    for key, question in by_key.items():
        value = answers.get(key)
        if is_blank(value):
            if complete and question.required:
                errors[key] = ["This question needs an answer before the stage can be submitted."]
            continue
        try:
            cleaned[key] = clean_answer(question, value, complete=complete)
        except ValidationError as exc:
            errors[key] = list(exc.messages)
    return cleaned, errors
