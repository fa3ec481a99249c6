"""Differences between two sets of answers, per question; word-level for text."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .models import Question, QuestionKind

_TOKEN = re.compile(r"\s+|[^\s]+")


def answer_text(question: Question, value: Any) -> str:
    """An answer as the plain text a person reads."""
    if value is None or value == "" or value == [] or value == {}:
        return ""
    if question.kind == QuestionKind.YES_NO_UNSURE and isinstance(value, Mapping):
        choice = str(value.get("choice") or "—").capitalize()
        justification = str(value.get("justification") or "")
        return f"{choice}. {justification}".strip()
    if question.kind == QuestionKind.MULTIPLE_CHOICE and isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


@dataclass(frozen=True)
class Chunk:
    op: str  # "same", "del", "ins"
    text: str


@dataclass(frozen=True)
class QuestionDiff:
    question: Question
    old: str
    new: str
    chunks: list[Chunk]

    @property
    def changed(self) -> bool:
        return self.old != self.new


def word_diff(old: str, new: str) -> list[Chunk]:
    a, b = _TOKEN.findall(old), _TOKEN.findall(new)
    chunks: list[Chunk] = []
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            chunks.append(Chunk("same", "".join(a[i1:i2])))
            continue
        if i2 > i1:
            chunks.append(Chunk("del", "".join(a[i1:i2])))
        if j2 > j1:
            chunks.append(Chunk("ins", "".join(b[j1:j2])))
    return chunks


def diff_answers(
    questions: Iterable[Question], old: Mapping[str, Any], new: Mapping[str, Any]
) -> list[QuestionDiff]:
    diffs = []
    for question in questions:
        before = answer_text(question, old.get(question.key))
        after = answer_text(question, new.get(question.key))
        chunks = word_diff(before, after) if before != after else [Chunk("same", after)]
        diffs.append(QuestionDiff(question, before, after, chunks))
    return diffs


def stakeholders_text(stakeholders: Iterable[Mapping[str, Any]]) -> str:
    lines = []
    for s in stakeholders:
        consulted = (
            f"consulted ({s.get('consultation') or 'how not stated'})"
            if s.get("consulted")
            else "not consulted"
        )
        lines.append(
            f"{s.get('name')} [{s.get('kind')}] — interests: {s.get('interests') or '—'}; "
            f"harms: {s.get('possible_harms') or '—'}; benefits: "
            f"{s.get('possible_benefits') or '—'}; {consulted}"
        )
    return "\n".join(lines)
