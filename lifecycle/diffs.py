"""Differences between two sets of answers, per question, laid out side by side: the earlier
answer on the left with its removed words marked, the new one on the right with its added words
marked. Choices, numbers, dates and links read as before → after; so does the stakeholder
register, entry by entry, with the kinds' labels."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
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
# whole, side by side and unmarked, under a note. A page of many diffs shares a DiffBudget of
# a few times this.
MAX_WORD_DIFF_WORK = 1_000_000
TOO_LARGE_TO_DIFF = (
    "Too large to diff word by word: the earlier version and the new one are shown in full.\n"
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


def word_diff(old: str, new: str, budget: DiffBudget | None = None) -> list[Chunk]:
    """One interleaved stream of kept, removed and added words (the conflict view's)."""
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


def _joined(chunks: list[Chunk]) -> list[Chunk]:
    """Marked runs separated only by blanks read as one: "<del>the quick</del>", not
    "<del>the</del> <del>quick</del>". Neighbours of one kind are merged."""
    out: list[Chunk] = []
    for n, chunk in enumerate(chunks):
        if (
            chunk.op == "same"
            and not chunk.text.strip()
            and 0 < n < len(chunks) - 1
            and chunks[n - 1].op != "same"
            and chunks[n + 1].op != "same"
        ):
            chunk = Chunk(chunks[n - 1].op, chunk.text)
        if out and out[-1].op == chunk.op:
            out[-1] = Chunk(chunk.op, out[-1].text + chunk.text)
        else:
            out.append(chunk)
    return out


@dataclass(frozen=True)
class SideBySide:
    """Two versions of a text: ``old`` keeps and removes ("same"/"del"), ``new`` keeps and adds
    ("same"/"ins"). ``too_large``: both are whole, unmarked, under the size guard's note."""

    old: list[Chunk]
    new: list[Chunk]
    too_large: bool = False
    note: str = ""


def side_by_side(old: str, new: str, budget: DiffBudget | None = None) -> SideBySide:
    a, b = _TOKEN.findall(old), _TOKEN.findall(new)  # linear; the matcher is not
    work = len(a) * len(b)
    if work > MAX_WORD_DIFF_WORK or (budget is not None and not budget.spend(work)):
        return SideBySide(
            [Chunk("same", old)] if old else [],
            [Chunk("same", new)] if new else [],
            too_large=True,
            note=TOO_LARGE_TO_DIFF.strip(),
        )
    left: list[Chunk] = []
    right: list[Chunk] = []
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            text = "".join(a[i1:i2])
            left.append(Chunk("same", text))
            right.append(Chunk("same", "".join(b[j1:j2])))
            continue
        if i2 > i1:
            left.append(Chunk("del", "".join(a[i1:i2])))
        if j2 > j1:
            right.append(Chunk("ins", "".join(b[j1:j2])))
    return SideBySide(_joined(left), _joined(right))


@dataclass(frozen=True)
class Item:
    text: str
    op: str  # "same", "del" (only before) or "ins" (only after)


@dataclass(frozen=True)
class BeforeAfter:
    """A choice, a list of choices, a number, a date or a link: what it was → what it is."""

    before: list[Item]
    after: list[Item]


def before_after(old: list[str], new: list[str]) -> BeforeAfter:
    kept_old, kept_new = set(new), set(old)
    return BeforeAfter(
        [Item(v, "same" if v in kept_old else "del") for v in old],
        [Item(v, "same" if v in kept_new else "ins") for v in new],
    )


# Answers read as words (side by side); every other kind reads as before → after.
TEXT_KINDS = (QuestionKind.SHORT_TEXT, QuestionKind.LONG_TEXT)


def _values(question: Question, value: Any) -> list[str]:
    if value is None or value == "" or value == [] or value == {}:
        return []
    if question.kind == QuestionKind.YES_NO_UNSURE:
        choice = value.get("choice") if isinstance(value, Mapping) else value
        return [str(choice).capitalize()] if choice else []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


def _justification(value: Any) -> str:
    return str(value.get("justification") or "") if isinstance(value, Mapping) else ""


@dataclass(frozen=True)
class QuestionDiff:
    question: Question
    old: str
    new: str
    # A text answer, or a yes/no/unsure's justification, side by side.
    text: SideBySide | None = None
    # A choice (a yes/no/unsure's too), choices, a number, a date, a link: before → after.
    values: BeforeAfter | None = None

    @property
    def changed(self) -> bool:
        return self.old != self.new


def diff_question(
    question: Question, old: Any, new: Any, budget: DiffBudget | None = None
) -> QuestionDiff:
    before, after = answer_text(question, old), answer_text(question, new)
    if before == after:
        return QuestionDiff(question, before, after)
    if question.kind in TEXT_KINDS:
        return QuestionDiff(question, before, after, text=side_by_side(before, after, budget))
    values: BeforeAfter | None = before_after(_values(question, old), _values(question, new))
    text = None
    if question.kind == QuestionKind.YES_NO_UNSURE:
        old_why, new_why = _justification(old), _justification(new)
        if old_why != new_why:
            text = side_by_side(old_why, new_why, budget)
        if values is not None and [i.text for i in values.before] == [i.text for i in values.after]:
            values = None  # only the justification changed
    return QuestionDiff(question, before, after, text=text, values=values)


def diff_answers(
    questions: Iterable[Question],
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    budget: DiffBudget | None = None,
) -> list[QuestionDiff]:
    return [
        diff_question(question, old.get(question.key), new.get(question.key), budget)
        for question in questions
    ]


# --- the stakeholder register ---------------------------------------------------------------

KIND_LABELS = dict(StakeholderKind.choices)

_REGISTER_FIELDS = (
    ("kind", "Kind"),
    ("interests", "Interests"),
    ("possible_harms", "Possible harms"),
    ("possible_benefits", "Possible benefits"),
    ("consulted", "Consulted"),
)


def _register_value(entry: Mapping[str, Any], name: str) -> str:
    if name == "kind":
        kind = str(entry.get("kind") or "")
        return KIND_LABELS.get(kind, kind)
    if name == "consulted":
        if not entry.get("consulted"):
            return "No"
        how = str(entry.get("consultation") or "")
        return f"Yes: {how}" if how else "Yes"
    return str(entry.get(name) or "")


@dataclass(frozen=True)
class FieldChange:
    label: str
    before: str
    after: str


@dataclass(frozen=True)
class StakeholderChange:
    op: str  # "ins" (added), "del" (removed) or "changed"
    name: str
    kind_label: str
    summary: str  # an added or removed entry, in one line
    fields: list[FieldChange] = field(default_factory=list)
    renamed_from: str = ""


def _summary(entry: Mapping[str, Any]) -> str:
    parts = [f"{label}: {_register_value(entry, n) or '—'}" for n, label in _REGISTER_FIELDS[1:]]
    return "; ".join(parts)


def _entry_key(entry: Mapping[str, Any], n: int) -> Any:
    return ("id", entry["id"]) if entry.get("id") is not None else ("name", entry.get("name"), n)


def stakeholder_changes(
    old: Iterable[Mapping[str, Any]], new: Iterable[Mapping[str, Any]]
) -> list[StakeholderChange]:
    """Entry by entry (the register's rows keep their id across revisions): what was added,
    removed, or changed field by field, kinds by their labels. Empty when nothing changed."""
    before = {_entry_key(e, n): e for n, e in enumerate(old)}
    after = {_entry_key(e, n): e for n, e in enumerate(new)}
    changes: list[StakeholderChange] = []
    for key, entry in after.items():
        name = str(entry.get("name") or "")
        kind = _register_value(entry, "kind")
        earlier = before.get(key)
        if earlier is None:
            changes.append(StakeholderChange("ins", name, kind, _summary(entry)))
            continue
        fields = [
            FieldChange(label, _register_value(earlier, n), _register_value(entry, n))
            for n, label in _REGISTER_FIELDS
            if _register_value(earlier, n) != _register_value(entry, n)
        ]
        old_name = str(earlier.get("name") or "")
        if fields or old_name != name:
            changes.append(
                StakeholderChange(
                    "changed",
                    name,
                    kind,
                    "",
                    fields,
                    renamed_from=old_name if old_name != name else "",
                )
            )
    for key, entry in before.items():
        if key not in after:
            changes.append(
                StakeholderChange(
                    "del",
                    str(entry.get("name") or ""),
                    _register_value(entry, "kind"),
                    _summary(entry),
                )
            )
    return changes


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
        lines.append(
            f"{s.get('name')} [{_register_value(s, 'kind')}] — interests: "
            f"{s.get('interests') or '—'}; harms: {s.get('possible_harms') or '—'}; benefits: "
            f"{s.get('possible_benefits') or '—'}; {consulted}"
        )
    return "\n".join(lines)
