"""The shape of a stage's rubric, as template data: criteria, each with levels (points and a
label) and whether "not applicable" is allowed. The grading layer reads rubrics
(``grading.compute.criteria_of``); the template layer only checks that one is well formed,
so an import, the editor and a new version all refuse the same mistakes.

    {"criteria": [{"key": "stakeholders", "title": "Stakeholders named",
                   "description": "", "allow_na": false,
                   "levels": [{"points": 0, "label": "Missing", "description": ""}, ...]}]}

An empty rubric (``{}`` or no criteria) means the stage is not graded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

RUBRIC_FIELDS = ("criteria",)
CRITERION_FIELDS = ("key", "title", "description", "allow_na", "levels")
LEVEL_FIELDS = ("points", "label", "description")
MAX_CRITERIA = 20
MAX_LEVELS = 10
MAX_POINTS = 1000
KEY = re.compile(r"[a-z0-9][a-z0-9_-]{0,59}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def rubric_errors(rubric: Any) -> list[tuple[str, str]]:
    """Every problem of a rubric as (sub-path, message); sub-paths are relative to the rubric,
    e.g. ``criteria[1].levels[0].points`` ("" for the rubric as a whole)."""
    out: list[tuple[str, str]] = []
    if rubric in (None, {}):
        return out
    if not isinstance(rubric, Mapping):
        return [("", "a rubric must be an object with a list of criteria")]
    out += [(name, "is not a field of a rubric") for name in rubric if name not in RUBRIC_FIELDS]
    criteria = rubric.get("criteria", [])
    if not isinstance(criteria, list):
        return [*out, ("criteria", "must be a list of criteria")]
    if len(criteria) > MAX_CRITERIA:
        out.append(("criteria", f"at most {MAX_CRITERIA} criteria"))
    keys: set[str] = set()
    for i, criterion in enumerate(criteria):
        path = f"criteria[{i}]"
        if not isinstance(criterion, Mapping):
            out.append((path, "a criterion must be an object"))
            continue
        out += [
            (f"{path}.{name}", "is not a field of a criterion")
            for name in criterion
            if name not in CRITERION_FIELDS
        ]
        key = criterion.get("key")
        if not isinstance(key, str) or not KEY.fullmatch(key):
            out.append((f"{path}.key", "must be a slug: lower-case letters, digits, - and _"))
        elif key in keys:
            out.append((f"{path}.key", f"the criterion key {key!r} is used twice"))
        else:
            keys.add(key)
        title = criterion.get("title")
        if not isinstance(title, str) or not title.strip() or len(title) > 200:
            out.append((f"{path}.title", "a criterion needs a title (up to 200 characters)"))
        if not isinstance(criterion.get("description", ""), str):
            out.append((f"{path}.description", "must be text"))
        if not isinstance(criterion.get("allow_na", False), bool):
            out.append((f"{path}.allow_na", "must be true or false"))
        levels = criterion.get("levels")
        if not isinstance(levels, list) or not levels:
            out.append((f"{path}.levels", "a criterion needs at least one level"))
            continue
        if len(levels) > MAX_LEVELS:
            out.append((f"{path}.levels", f"at most {MAX_LEVELS} levels"))
        seen: set[float] = set()
        for j, level in enumerate(levels):
            lpath = f"{path}.levels[{j}]"
            if not isinstance(level, Mapping):
                out.append((lpath, "a level must be an object"))
                continue
            out += [
                (f"{lpath}.{name}", "is not a field of a level")
                for name in level
                if name not in LEVEL_FIELDS
            ]
            points: Any = level.get("points")
            if not _is_number(points) or not 0 <= points <= MAX_POINTS:
                out.append((f"{lpath}.points", f"must be a number from 0 to {MAX_POINTS}"))
            elif points in seen:
                out.append((f"{lpath}.points", f"two levels give {points} points"))
            else:
                seen.add(points)
            for name in ("label", "description"):
                if not isinstance(level.get(name, ""), str):
                    out.append((f"{lpath}.{name}", "must be text"))
    return out


def normalised_rubric(rubric: Any) -> dict[str, Any]:
    """A valid rubric with every optional field filled in; {} for no criteria."""
    criteria = (rubric or {}).get("criteria") or []
    if not criteria:
        return {}
    return {
        "criteria": [
            {
                "key": c["key"],
                "title": c["title"],
                "description": c.get("description", ""),
                "allow_na": c.get("allow_na", False),
                "levels": [
                    {
                        "points": level["points"],
                        "label": level.get("label", ""),
                        "description": level.get("description", ""),
                    }
                    for level in c["levels"]
                ],
            }
            for c in criteria
        ]
    }
