"""A lifecycle template as a JSON document: what the editor edits, what is imported and
exported, and what a new template version is written from.

The document's schema is ``lifecycle/schemas/template-v1.schema.json`` (JSON Schema 2020-12);
``validate_document`` checks the same rules in Python, and more that a schema cannot say
(unique keys, rules that name real questions, Iterate targets, a reviewer pool that can satisfy
every rule), with every error keyed by the path of the field it is about, e.g.
``stages[2].questions[0].key``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import rule_hooks
from .default_template import CHOICE_KINDS, DEFAULT_TEMPLATE, QUESTION_KINDS
from .models import IndependentReview
from .rubrics import normalised_rubric, rubric_errors

FORMAT = "lrb-lifecycle-template"
SCHEMA_VERSION = 1
SCHEMA_PATH = "lifecycle/schemas/template-v1.schema.json"

DISMISSALS = ("all", "owners", "editorial")
ATTRIBUTES = ("risk_tier", "domain")
RISK_TIERS = ("low", "medium", "high")
INDEPENDENT_REVIEW = tuple(IndependentReview.values)  # off, experts, everyone
# Documents written before independent review became a choice said true or false.
LEGACY_INDEPENDENT_REVIEW = {
    True: IndependentReview.EVERYONE.value,
    False: IndependentReview.OFF.value,
}
MAX_STAGES = 30
MAX_QUESTIONS = 60
MAX_RULES = 20

STAGE_FIELDS: dict[str, Any] = {
    "key": "",
    "title": "",
    "summary": "",
    "guidance": "",
    "min_approvals": 1,
    "min_staff_approvals": 1,
    "min_expert_approvals": 0,
    "independent_review": IndependentReview.OFF.value,
    "requires_stakeholders": False,
    "allows_not_pursued": False,
    "is_iteration": False,
    "risk_min_severity": 0,
    "loop_targets": [],
    "dismissal": "all",
    "gate_rules": [],
    "rubric": {},
    "questions": [],
}
QUESTION_FIELDS: dict[str, Any] = {
    "key": "",
    "prompt": "",
    "help_text": "",
    "kind": "long_text",
    "choices": [],
    "required": True,
    "owner_expertise": "",
}
LENGTHS = {"key": 60, "title": 200, "summary": 300, "prompt": 500, "owner_expertise": 60}


class DocumentErrors(Exception):
    """A document that is refused: errors keyed by field path ("" for the whole document)."""

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(f"{k or 'template'}: {' '.join(v)}" for k, v in errors.items()))


# --- building documents ----------------------------------------------------------------------


def empty_document(name: str = "") -> dict[str, Any]:
    return {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "name": name,
        "description": "",
        "stages": [],
    }


def new_stage(key: str, title: str) -> dict[str, Any]:
    stage = copy.deepcopy(STAGE_FIELDS)
    stage.update(key=key, title=title)
    return stage


def new_question(key: str, prompt: str, kind: str = "long_text") -> dict[str, Any]:
    question = copy.deepcopy(QUESTION_FIELDS)
    question.update(key=key, prompt=prompt, kind=kind)
    return question


def default_document() -> dict[str, Any]:
    """The lecture's default template, exactly as ``DEFAULT_TEMPLATE`` gives it."""
    doc = empty_document(DEFAULT_TEMPLATE["name"])
    doc["description"] = DEFAULT_TEMPLATE["description"]
    for stage in DEFAULT_TEMPLATE["stages"]:
        out = {k: copy.deepcopy(stage.get(k, default)) for k, default in STAGE_FIELDS.items()}
        out["questions"] = [
            {k: copy.deepcopy(q.get(k, default)) for k, default in QUESTION_FIELDS.items()}
            for q in stage["questions"]
        ]
        doc["stages"].append(out)
    return doc


def document_from_template(template: Any) -> dict[str, Any]:
    """The document of a stored template version (stages and questions prefetched or not)."""
    doc = empty_document(template.name)
    doc["description"] = template.description
    for stage in template.stages.order_by("order").prefetch_related("questions"):
        out = {k: copy.deepcopy(getattr(stage, k)) for k in STAGE_FIELDS if k != "questions"}
        owners = stage.question_owners or {}
        out["questions"] = [
            {
                **{
                    k: copy.deepcopy(getattr(q, k))
                    for k in QUESTION_FIELDS
                    if k != "owner_expertise"
                },
                "owner_expertise": owners.get(q.key, ""),
            }
            for q in sorted(stage.questions.all(), key=lambda q: q.order)
        ]
        doc["stages"].append(out)
    return doc


def normalised(data: Mapping[str, Any]) -> dict[str, Any]:
    """A validated document with every optional field filled in, in the schema's order."""
    doc = empty_document(str(data.get("name", "")))
    doc["description"] = str(data.get("description", ""))
    for stage in data.get("stages", []):
        out = {k: copy.deepcopy(stage.get(k, default)) for k, default in STAGE_FIELDS.items()}
        out["independent_review"] = independent_review_value(out["independent_review"])
        out["rubric"] = normalised_rubric(out["rubric"])
        out["questions"] = [
            {k: copy.deepcopy(q.get(k, default)) for k, default in QUESTION_FIELDS.items()}
            for q in stage.get("questions", [])
        ]
        doc["stages"].append(out)
    return doc


def independent_review_value(value: Any) -> Any:
    """The stage's independent review as one of ``INDEPENDENT_REVIEW``: an older document's
    true becomes "everyone" and false "off" (as migration lifecycle 0012 did); anything else
    is returned as it is, for validation to refuse."""
    if isinstance(value, bool):
        return LEGACY_INDEPENDENT_REVIEW[value]
    return value


# --- validation ------------------------------------------------------------------------------


@dataclass
class ReviewerPool:
    """Who could ever approve in a course: whether it takes outside experts, and the expertise
    tags it knows (empty: any tag an invitation may carry)."""

    allows_experts: bool = True
    staff_count: int = 1


@dataclass
class _Errors:
    errors: dict[str, list[str]] = field(default_factory=dict)

    def add(self, path: str, message: str) -> None:
        self.errors.setdefault(path, []).append(message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_text(out: _Errors, obj: Mapping[str, Any], name: str, path: str, *, required: bool):
    value = obj.get(name, "")
    if not isinstance(value, str):
        out.add(f"{path}.{name}", "must be text")
        return
    if required and not value.strip():
        out.add(f"{path}.{name}", "is required")
    limit = LENGTHS.get(name)
    if limit and len(value) > limit:
        out.add(f"{path}.{name}", f"is longer than {limit} characters")


def _check_key(out: _Errors, value: Any, path: str) -> None:
    import re

    if not isinstance(value, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,59}", value):
        out.add(path, "must be a slug: lower-case letters, digits, - and _ (up to 60)")


def _check_unknown(out: _Errors, obj: Mapping[str, Any], known: Any, path: str) -> None:
    for name in obj:
        if name not in known:
            out.add(f"{path}.{name}" if path else name, "is not a field of this schema")


def validate_document(data: Any, *, pool: ReviewerPool | None = None) -> dict[str, list[str]]:
    """Every error of a template document, keyed by field path; empty when it can be saved."""
    out = _Errors()
    if not isinstance(data, Mapping):
        out.add("", "a template must be a JSON object")
        return out.errors
    _check_unknown(out, data, ("format", "schema_version", "name", "description", "stages"), "")
    if data.get("format", FORMAT) != FORMAT:
        out.add("format", f"must be {FORMAT!r}")
    if data.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
        out.add("schema_version", f"this site reads version {SCHEMA_VERSION}")
    _check_text(out, data, "name", "", required=True)
    if "name" in out.errors or ".name" in out.errors:
        out.errors["name"] = out.errors.pop(".name", out.errors.get("name", []))
    if not isinstance(data.get("description", ""), str):
        out.add("description", "must be text")
    stages = data.get("stages")
    if not isinstance(stages, list):
        out.add("stages", "must be a list of stages")
        return out.errors
    if not stages:
        out.add("stages", "a template needs at least one stage")
    if len(stages) > MAX_STAGES:
        out.add("stages", f"at most {MAX_STAGES} stages")
    stage_keys: list[str] = []
    for i, stage in enumerate(stages):
        path = f"stages[{i}]"
        if not isinstance(stage, Mapping):
            out.add(path, "a stage must be an object")
            continue
        _validate_stage(out, stage, path, stage_keys, pool)
        stage_keys.append(stage.get("key", ""))
    seen: set[str] = set()
    for i, key in enumerate(stage_keys):
        if key in seen:
            out.add(f"stages[{i}].key", f"the stage key {key!r} is used twice")
        seen.add(key)
    iterations = [
        i for i, s in enumerate(stages) if isinstance(s, Mapping) and s.get("is_iteration")
    ]
    if len(iterations) > 1:
        out.add("stages", "only one stage can be the Iterate stage")
    return out.errors


def _validate_stage(
    out: _Errors,
    stage: Mapping[str, Any],
    path: str,
    earlier_keys: list[str],
    pool: ReviewerPool | None,
) -> None:
    _check_unknown(out, stage, STAGE_FIELDS, path)
    _check_key(out, stage.get("key"), f"{path}.key")
    _check_text(out, stage, "title", path, required=True)
    _check_text(out, stage, "summary", path, required=False)
    _check_text(out, stage, "guidance", path, required=False)
    counts = {}
    for name in ("min_approvals", "min_staff_approvals", "min_expert_approvals"):
        value = stage.get(name, STAGE_FIELDS[name])
        if not _is_int(value) or not 0 <= value <= 20:
            out.add(f"{path}.{name}", "must be a whole number from 0 to 20")
            value = 0
        counts[name] = value
    if counts["min_approvals"] < max(
        1, counts["min_staff_approvals"] + counts["min_expert_approvals"]
    ):
        out.add(
            f"{path}.min_approvals",
            "must be at least 1 and at least the staff minimum plus the expert minimum",
        )
    severity = stage.get("risk_min_severity", 0)
    if not _is_int(severity) or not 0 <= severity <= 5:
        out.add(f"{path}.risk_min_severity", "must be a whole number from 0 (no rule) to 5")
    review = stage.get("independent_review", STAGE_FIELDS["independent_review"])
    if not isinstance(review, bool) and review not in INDEPENDENT_REVIEW:
        out.add(
            f"{path}.independent_review",
            f"must be one of {', '.join(INDEPENDENT_REVIEW)} "
            "(or, in older documents, true or false)",
        )
    for name in (
        "requires_stakeholders",
        "allows_not_pursued",
        "is_iteration",
    ):
        if not isinstance(stage.get(name, False), bool):
            out.add(f"{path}.{name}", "must be true or false")
    if stage.get("dismissal", "all") not in DISMISSALS:
        out.add(f"{path}.dismissal", f"must be one of {', '.join(DISMISSALS)}")
    targets = stage.get("loop_targets", [])
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        out.add(f"{path}.loop_targets", "must be a list of stage keys")
    elif targets and not stage.get("is_iteration"):
        out.add(f"{path}.loop_targets", "only the Iterate stage loops back")
    else:
        for target in targets:
            # Looping "back" to this stage or a later one would never leave the loop.
            if target not in earlier_keys:
                out.add(
                    f"{path}.loop_targets",
                    f"{target!r} is not an earlier stage: the Iterate stage can only loop back, "
                    "and a target at or after it makes a cycle",
                )
    questions = stage.get("questions", [])
    question_keys: list[str] = []
    if not isinstance(questions, list):
        out.add(f"{path}.questions", "must be a list of questions")
        questions = []
    if len(questions) > MAX_QUESTIONS:
        out.add(f"{path}.questions", f"at most {MAX_QUESTIONS} questions per stage")
    for j, question in enumerate(questions):
        qpath = f"{path}.questions[{j}]"
        if not isinstance(question, Mapping):
            out.add(qpath, "a question must be an object")
            continue
        _validate_question(out, question, qpath)
        key = question.get("key", "")
        if key in question_keys:
            out.add(f"{qpath}.key", f"the question key {key!r} is used twice in this stage")
        question_keys.append(key)
    for sub, message in rubric_errors(stage.get("rubric", {})):
        out.add(f"{path}.rubric.{sub}" if sub else f"{path}.rubric", message)
    rules = stage.get("gate_rules", [])
    if not isinstance(rules, list):
        out.add(f"{path}.gate_rules", "must be a list of rules")
        rules = []
    if len(rules) > MAX_RULES:
        out.add(f"{path}.gate_rules", f"at most {MAX_RULES} rules per stage")
    for r, rule in enumerate(rules):
        rpath = f"{path}.gate_rules[{r}]"
        for name, message in rule_hooks.rule_errors(rule):
            out.add(f"{rpath}.{name}" if name else rpath, message)
        if isinstance(rule, Mapping):
            for attribute in (
                (rule.get("applies_if") or {})
                if isinstance(rule.get("applies_if"), Mapping)
                else {}
            ):
                if attribute not in ATTRIBUTES:
                    out.add(
                        f"{rpath}.applies_if.{attribute}",
                        f"is not a project attribute (known: {', '.join(ATTRIBUTES)})",
                    )
            tiers = (
                (rule.get("applies_if") or {}).get("risk_tier")
                if isinstance(rule.get("applies_if"), Mapping)
                else None
            )
            if isinstance(tiers, list) and any(t not in RISK_TIERS for t in tiers):
                out.add(f"{rpath}.applies_if.risk_tier", "risk tiers are low, medium and high")
            if rule.get("kind") == "question_owner" and rule.get("question") not in question_keys:
                out.add(f"{rpath}.question", f"this stage has no question {rule.get('question')!r}")
    if pool is not None and not any(path + "." in k for k in out.errors):
        for message in unsatisfiable(stage, pool):
            out.add(f"{path}.gate_rules", message)


def _validate_question(out: _Errors, question: Mapping[str, Any], path: str) -> None:
    _check_unknown(out, question, QUESTION_FIELDS, path)
    _check_key(out, question.get("key"), f"{path}.key")
    _check_text(out, question, "prompt", path, required=True)
    _check_text(out, question, "help_text", path, required=False)
    _check_text(out, question, "owner_expertise", path, required=False)
    kind = question.get("kind", "long_text")
    if kind not in QUESTION_KINDS:
        out.add(f"{path}.kind", f"unknown kind {kind!r} (known: {', '.join(QUESTION_KINDS)})")
    choices = question.get("choices", [])
    if not isinstance(choices, list) or not all(isinstance(c, str) and c for c in choices):
        out.add(f"{path}.choices", "must be a list of non-empty texts")
    elif (kind in CHOICE_KINDS) != bool(choices):
        out.add(
            f"{path}.choices",
            "choice questions need choices"
            if kind in CHOICE_KINDS
            else "only choice questions have choices",
        )
    elif len(set(choices)) != len(choices):
        out.add(f"{path}.choices", "a choice is listed twice")
    if not isinstance(question.get("required", True), bool):
        out.add(f"{path}.required", "must be true or false")


def unsatisfiable(stage: Mapping[str, Any], pool: ReviewerPool) -> list[str]:
    """Why no reviewer pool of this course could ever satisfy the stage's gate (the
    foundation's check: experts demanded where the course takes none), per rule."""
    problems = []
    demands: list[tuple[str, int, int, set[str]]] = [
        (
            "the stage's minimums",
            stage.get("min_expert_approvals", 0),
            stage.get("min_staff_approvals", 0),
            set(),
        )
    ]
    for r, rule in enumerate(stage.get("gate_rules", [])):
        demand = rule_hooks.rule_demand(rule)
        demands.append((f"rule {r + 1}", demand.expert, demand.staff, set(demand.expertise)))
    owners = {
        q.get("owner_expertise") for q in stage.get("questions", []) if q.get("owner_expertise")
    }
    if owners:
        demands.append(("the question owners", 0, 0, owners))
    for what, expert, staff, expertise in demands:
        if expert and not pool.allows_experts:
            problems.append(
                f"{what} needs {expert} domain-expert approval(s) but the course takes no "
                "domain experts"
            )
        if expertise and not pool.allows_experts:
            problems.append(
                f"{what} needs an owner with expertise {', '.join(sorted(expertise))}, but only "
                "invited experts carry expertise and the course takes none"
            )
        if staff > pool.staff_count:
            problems.append(
                f"{what} needs {staff} course-staff approvals but the course has "
                f"{pool.staff_count} staff member(s)"
            )
    return problems


def checked(data: Any, *, pool: ReviewerPool | None = None) -> dict[str, Any]:
    """The normalised document, or DocumentErrors naming every bad field."""
    errors = validate_document(data, pool=pool)
    if errors:
        raise DocumentErrors(errors)
    return normalised(data)


# --- differences between versions ------------------------------------------------------------


@dataclass
class StageChange:
    key: str
    title: str
    added_questions: list[str] = field(default_factory=list)
    removed_questions: list[str] = field(default_factory=list)
    renamed_questions: list[tuple[str, str, str]] = field(default_factory=list)  # key, old, new
    gate_changed: bool = False
    rubric_changed: bool = False

    @property
    def any(self) -> bool:
        return bool(
            self.added_questions
            or self.removed_questions
            or self.renamed_questions
            or self.gate_changed
            or self.rubric_changed
        )


@dataclass
class TemplateChange:
    added_stages: list[str] = field(default_factory=list)
    removed_stages: list[str] = field(default_factory=list)
    stages: list[StageChange] = field(default_factory=list)


GATE_FIELDS = (
    "min_approvals",
    "min_staff_approvals",
    "min_expert_approvals",
    "gate_rules",
    "dismissal",
)


def diff_documents(old: Mapping[str, Any], new: Mapping[str, Any]) -> TemplateChange:
    """Stages and questions are matched by key; a question whose key stays and whose prompt
    changes is renamed."""
    change = TemplateChange()
    old_stages = {s["key"]: s for s in old["stages"]}
    new_stages = {s["key"]: s for s in new["stages"]}
    change.added_stages = [k for k in new_stages if k not in old_stages]
    change.removed_stages = [k for k in old_stages if k not in new_stages]
    for key, stage in new_stages.items():
        before = old_stages.get(key)
        if before is None:
            continue
        old_q = {q["key"]: q for q in before["questions"]}
        new_q = {q["key"]: q for q in stage["questions"]}
        owners_before = {k: q.get("owner_expertise", "") for k, q in old_q.items()}
        owners_after = {k: q.get("owner_expertise", "") for k, q in new_q.items()}
        change.stages.append(
            StageChange(
                key=key,
                title=stage["title"],
                added_questions=[k for k in new_q if k not in old_q],
                removed_questions=[k for k in old_q if k not in new_q],
                renamed_questions=[
                    (k, old_q[k]["prompt"], q["prompt"])
                    for k, q in new_q.items()
                    if k in old_q and old_q[k]["prompt"] != q["prompt"]
                ],
                gate_changed=any(before.get(f) != stage.get(f) for f in GATE_FIELDS)
                or owners_before != owners_after,
                # Scores name criteria by key: a changed rubric is worth a look before
                # migrating projects whose decisions carry scores.
                rubric_changed=(before.get("rubric") or {}) != (stage.get("rubric") or {}),
            )
        )
    return change
