"""Which questions take evidence files: data in the template (LifecycleTemplate.evidence_slots,
keyed "<stage key>/<question key>"), so a course's own template says which, how many and of
which types."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .checks import FILE_TYPES, TYPE_LABELS


@dataclass(frozen=True)
class Slot:
    question_key: str
    max_files: int
    types: tuple[str, ...]

    @property
    def accept(self) -> str:
        """The file input's accept attribute (a hint; the server checks content)."""
        return ",".join(ext for t in self.types for ext in FILE_TYPES[t])

    @property
    def label(self) -> str:
        return ", ".join(TYPE_LABELS[t] for t in self.types)


def _slot(question_key: str, raw: Any) -> Slot | None:
    if not isinstance(raw, dict):
        return None
    types = tuple(t for t in raw.get("types", ()) if t in FILE_TYPES)
    try:
        max_files = int(raw.get("max_files", 0))
    except (TypeError, ValueError):
        return None
    if not types or max_files < 1:
        return None
    return Slot(question_key, min(max_files, 20), types)


def slot_for(template: Any, stage_key: str, question_key: str) -> Slot | None:
    slots = getattr(template, "evidence_slots", None) or {}
    return _slot(question_key, slots.get(f"{stage_key}/{question_key}"))


def slots_for_stage(template: Any, stage_key: str) -> dict[str, Slot]:
    slots = getattr(template, "evidence_slots", None) or {}
    prefix = f"{stage_key}/"
    found = {}
    for key, raw in slots.items():
        if key.startswith(prefix):
            slot = _slot(key[len(prefix) :], raw)
            if slot is not None:
                found[slot.question_key] = slot
    return found
