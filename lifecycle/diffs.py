"""Differences between two sets of answers, per question; word-level for text."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .models import Question, QuestionKind, StakeholderKind

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
    op: str  # "same", "del", "ins", or "note" (a remark templates print as plain text)
    text: str


# difflib's matcher costs up to (words before) x (words after) steps, and whitespace repeats on
# every other token: two 2,000-word answers take seconds, two 50,000-character ones a minute.
# Above this product (about 500 words a side, well under 0.1 s) the two versions are shown
# whole, one after the other. A page of many diffs shares a DiffBudget of a few times this.
MAX_WORD_DIFF_WORK = 1_000_000
TOO_LARGE_TO_DIFF = (
    "Too large to diff word by word: the earlier version (struck through) and the new one "
    "follow in full.\n"
)


@dataclass
class DiffBudget:
    """Word-diff work a whole page may spend (e.g. the dossier's every revision); once spent,
    further changes are shown as whole versions, like an answer too large to diff."""

    work: int

    def spend(self, work: int) -> bool:
        if work > self.work:
            self.work = 0
            return False
        self.work -= work
        return True


def whole_versions(old: str, new: str) -> list[Chunk]:
    return [Chunk("note", TOO_LARGE_TO_DIFF), Chunk("del", old), Chunk("ins", new)]


@dataclass(frozen=True)
class QuestionDiff:
    question: Question
    old: str
    new: str
    chunks: list[Chunk]

    @property
    def changed(self) -> bool:
        return self.old != self.new


def word_diff(old: str, new: str, budget: DiffBudget | None = None) -> list[Chunk]:
    a, b = _TOKEN.findall(old), _TOKEN.findall(new)  # linear; the matcher is not
    work = len(a) * len(b)
    if work > MAX_WORD_DIFF_WORK or (budget is not None and not budget.spend(work)):
        return whole_versions(old, new)
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
    questions: Iterable[Question],
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    budget: DiffBudget | None = None,
) -> list[QuestionDiff]:
    diffs = []
    for question in questions:
        before = answer_text(question, old.get(question.key))
        after = answer_text(question, new.get(question.key))
        chunks = word_diff(before, after, budget) if before != after else [Chunk("same", after)]
        diffs.append(QuestionDiff(question, before, after, chunks))
    return diffs


def _kind_label(kind: Any) -> str:
    """A stored kind key as the register shows it ("affected_community" → "Affected community");
    a key no longer among the choices stays as stored."""
    return str(StakeholderKind(kind).label) if kind in StakeholderKind.values else str(kind)


def stakeholders_text(stakeholders: Iterable[Mapping[str, Any]]) -> str:
    lines = []
    for s in stakeholders:
        consulted = (
            f"consulted ({s.get('consultation') or 'how not stated'})"
            if s.get("consulted")
            else "not consulted"
        )
        kind = _kind_label(s.get("kind"))
        lines.append(
            f"{s.get('name')} [{kind}] — interests: {s.get('interests') or '—'}; "
            f"harms: {s.get('possible_harms') or '—'}; benefits: "
            f"{s.get('possible_benefits') or '—'}; {consulted}"
        )
    return "\n".join(lines)
