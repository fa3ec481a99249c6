"""The gate: one pure function over a stage's policy and the decisions that count for it.

No database here, so every rule can be unit-tested on plain values (tests/reviews/test_gate_rules
checks it against a slow reference with Hypothesis).

A policy is the three minimums every stage has (total, staff, expert) plus a tuple of *rules*:
plain dicts, each with a ``kind`` from ``RULE_KINDS`` and an optional ``applies_if`` condition on
the project's attributes (``{"risk_tier": ["high"]}``: the rule applies when every attribute
named has one of the values listed). A rule kind is a ``RuleKind``: how to check it against the
approvals that count, how to validate its data, and what reviewer pool it demands (for the
satisfiability check). ``register_rule_kind`` adds one; other apps add theirs the same way.

What a new revision dismisses is the policy's ``dismissal``: every approval (``all``), only the
approvals of owners whose questions changed (``owners``), or none for a change the team marked
editorial and the approving reviewer accepted (``editorial``). Approvals of earlier revisions
reach the function as votes with their revision id, and ``earlier`` says what changed since.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

STAFF = "staff"
EXPERT = "expert"
ANY = "any"
APPROVE = "approve"
REQUEST_CHANGES = "request_changes"

DISMISS_ALL = "all"
DISMISS_OWNERS = "owners"
DISMISS_EDITORIAL = "editorial"
DISMISSALS = (DISMISS_ALL, DISMISS_OWNERS, DISMISS_EDITORIAL)

ROLE_WORDS = {STAFF: "course-staff", EXPERT: "domain-expert", ANY: "reviewer"}

Rule = Mapping[str, Any]


@dataclass(frozen=True)
class GatePolicy:
    min_approvals: int
    min_staff: int = 0
    min_expert: int = 0
    rules: tuple[Rule, ...] = ()
    dismissal: str = DISMISS_ALL
    # question key -> the expertise that owns it (each is a "question_owner" rule).
    owners: tuple[tuple[str, str], ...] = ()

    def all_rules(self) -> list[Rule]:
        owned = [
            {"kind": "question_owner", "question": key, "expertise": tag}
            for key, tag in self.owners
        ]
        return [*owned, *self.rules]


@dataclass(frozen=True)
class RevisionDelta:
    """What changed between an earlier revision of the stage and the current one."""

    changed_questions: frozenset[str] = frozenset()
    # Every revision since was marked editorial by the team...
    editorial: bool = False
    # ...and these reviewers accepted the change as editorial.
    accepted_by: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Vote:
    """One current (not replaced) decision."""

    reviewer_id: int
    reviewer_name: str
    role: str  # STAFF or EXPERT
    outcome: str  # APPROVE or REQUEST_CHANGES
    revision_id: int
    assigned: bool = True
    question_key: str = ""
    expertise: frozenset[str] = frozenset()


@dataclass(frozen=True)
class RiskTrace:
    """A risk as the current revision froze it, for the "risks traced" rule."""

    title: str
    severity: int
    has_mitigation: bool
    has_test: bool


def untraced_risks(risks: Iterable[RiskTrace], min_severity: int) -> list[str]:
    """The "risks traced" rule: every risk of severity >= min_severity has a mitigation and a
    linked test (0 turns the rule off). One line per risk that falls short."""
    if min_severity <= 0:
        return []
    lines = []
    for risk in risks:
        if risk.severity < min_severity:
            continue
        lacking = [
            what
            for what, present in (
                ("a mitigation", risk.has_mitigation),
                ("a linked test", risk.has_test),
            )
            if not present
        ]
        if lacking:
            lines.append(
                f"risk “{risk.title}” (severity {risk.severity}) needs " + " and ".join(lacking)
            )
    return lines


@dataclass(frozen=True)
class GateResult:
    satisfied: bool
    approvals: int
    staff_approvals: int
    expert_approvals: int
    missing: list[str] = field(default_factory=list)
    blocking: list[str] = field(default_factory=list)
    approvers: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        if self.satisfied:
            return "The gate is satisfied."
        return "; ".join([*self.missing, *self.blocking]) or "Waiting for reviewers."

    def as_dict(self) -> dict:
        return {
            "satisfied": self.satisfied,
            "approvals": self.approvals,
            "staff": self.staff_approvals,
            "expert": self.expert_approvals,
            "approvers": self.approvers,
        }


def _plural(n: int, word: str) -> str:
    return f"{n} more {word} approval" + ("s" if n != 1 else "")


# --- rule kinds ------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateContext:
    """What a rule kind sees: the approvals that count (one per reviewer), the project's
    attributes, the questions' labels, and any facts a caller adds for its own kinds."""

    approvals: Mapping[int, Vote]
    attributes: Mapping[str, str]
    labels: Mapping[str, str]
    facts: Mapping[str, Any]


@dataclass(frozen=True)
class Demand:
    """The reviewer pool a rule needs: approvals by role, and expertise tags someone must have."""

    staff: int = 0
    expert: int = 0
    total: int = 0
    expertise: frozenset[str] = frozenset()


@dataclass(frozen=True)
class RuleKind:
    name: str
    label: str
    check: Callable[[Rule, GateContext], list[str]]
    # (field, message) pairs for a malformed rule; fields are the rule's keys.
    validate: Callable[[Rule], list[tuple[str, str]]]
    demand: Callable[[Rule], Demand]
    example: Rule


RULE_KINDS: dict[str, RuleKind] = {}


def register_rule_kind(kind: RuleKind) -> None:
    RULE_KINDS[kind.name] = kind


def _count(rule: Rule) -> int:
    count = rule.get("count", 1)
    return count if isinstance(count, int) and not isinstance(count, bool) else 0


def _count_errors(rule: Rule) -> list[tuple[str, str]]:
    count = rule.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 20:
        return [("count", "must be a whole number from 1 to 20")]
    return []


def _condition_words(rule: Rule) -> str:
    condition = rule.get("applies_if") or {}
    if not condition:
        return ""
    parts = [
        f"{name.replace('_', ' ')} is {' or '.join(str(v) for v in values)}"
        for name, values in sorted(condition.items())
    ]
    return " (as " + " and ".join(parts) + ")"


def _check_min_approvals(rule: Rule, ctx: GateContext) -> list[str]:
    role: str = rule.get("role", ANY)
    have = sum(1 for v in ctx.approvals.values() if role == ANY or v.role == role)
    short = _count(rule) - have
    if short <= 0:
        return []
    return ["needs " + _plural(short, ROLE_WORDS.get(role, role)) + _condition_words(rule)]


def _validate_min_approvals(rule: Rule) -> list[tuple[str, str]]:
    errors = _count_errors(rule)
    if rule.get("role", ANY) not in (STAFF, EXPERT, ANY):
        errors.append(("role", "must be staff, expert or any"))
    return errors


def _demand_min_approvals(rule: Rule) -> Demand:
    role, count = rule.get("role", ANY), _count(rule)
    return Demand(
        staff=count if role == STAFF else 0,
        expert=count if role == EXPERT else 0,
        total=count,
    )


def _check_question_owner(rule: Rule, ctx: GateContext) -> list[str]:
    tag = str(rule.get("expertise", ""))
    have = sum(1 for v in ctx.approvals.values() if tag in v.expertise)
    short = _count(rule) - have
    if short <= 0:
        return []
    question = str(rule.get("question", ""))
    label = ctx.labels.get(question, question)
    who = f"“{tag}” approval" + ("s" if short != 1 else "")
    return [f"needs {short} more {who} for {label}{_condition_words(rule)}"]


def _validate_question_owner(rule: Rule) -> list[tuple[str, str]]:
    errors = _count_errors(rule)
    if not str(rule.get("question", "")).strip():
        errors.append(("question", "name the question this owner approves"))
    if not str(rule.get("expertise", "")).strip():
        errors.append(("expertise", "name the expertise that must approve"))
    return errors


def _demand_question_owner(rule: Rule) -> Demand:
    return Demand(total=_count(rule), expertise=frozenset({str(rule.get("expertise", ""))}))


register_rule_kind(
    RuleKind(
        name="min_approvals",
        label="Minimum approvals by role",
        check=_check_min_approvals,
        validate=_validate_min_approvals,
        demand=_demand_min_approvals,
        example={
            "kind": "min_approvals",
            "role": EXPERT,
            "count": 2,
            "applies_if": {"risk_tier": ["high"]},
        },
    )
)
register_rule_kind(
    RuleKind(
        name="question_owner",
        label="An owner must approve a question",
        check=_check_question_owner,
        validate=_validate_question_owner,
        demand=_demand_question_owner,
        example={"kind": "question_owner", "question": "consent", "expertise": "ethics"},
    )
)


def condition_holds(condition: Mapping[str, Any] | None, attributes: Mapping[str, str]) -> bool:
    """An ``applies_if``: every attribute named has one of the values listed. A project whose
    attribute is not set yet matches no value, so the rule does not apply until it is."""
    return all(attributes.get(name, "") in values for name, values in (condition or {}).items())


def rule_errors(rule: Any) -> list[tuple[str, str]]:
    """What is wrong with one rule's data (field, message); empty when it is well formed."""
    if not isinstance(rule, Mapping):
        return [("", "a rule must be an object")]
    kind = RULE_KINDS.get(rule.get("kind", ""))
    if kind is None:
        names = ", ".join(sorted(RULE_KINDS))
        return [("kind", f"unknown rule kind {rule.get('kind')!r} (known: {names})")]
    errors = list(kind.validate(rule))
    condition = rule.get("applies_if", {})
    if not isinstance(condition, Mapping) or not all(
        isinstance(k, str) and isinstance(v, list) and v and all(isinstance(x, str) for x in v)
        for k, v in condition.items()
    ):
        errors.append(("applies_if", "must map attribute names to non-empty lists of values"))
    return errors


def rule_demand(rule: Rule) -> Demand:
    kind = RULE_KINDS.get(rule.get("kind", ""))
    return kind.demand(rule) if kind is not None else Demand()


# --- the gate --------------------------------------------------------------------------------


def _carries(vote: Vote, policy: GatePolicy, delta: RevisionDelta | None) -> bool:
    """Whether an approval of an earlier revision still counts on the current one."""
    if delta is None or vote.outcome != APPROVE or policy.dismissal == DISMISS_ALL:
        return False
    if policy.dismissal == DISMISS_OWNERS:
        owners = dict(policy.owners)
        changed_tags = {owners[q] for q in delta.changed_questions if q in owners}
        return not (changed_tags & vote.expertise)
    if policy.dismissal == DISMISS_EDITORIAL:
        return delta.editorial and vote.reviewer_id in delta.accepted_by
    return False


def evaluate_gate(
    policy: GatePolicy,
    votes: Iterable[Vote],
    *,
    current_revision_id: int | None,
    member_ids: Iterable[int] = (),
    question_labels: Mapping[str, str] | None = None,
    risks: Iterable[RiskTrace] = (),
    risk_min_severity: int = 0,
    attributes: Mapping[str, str] | None = None,
    earlier: Mapping[int, RevisionDelta] | None = None,
    facts: Mapping[str, Any] | None = None,
) -> GateResult:
    """Satisfied when, on the current revision, approvals by distinct non-members reach the
    minimum with at least the required number from each role, every rule that applies to the
    project holds, no assigned reviewer has an unresolved request for changes on it, and (when
    the stage asks) every risk of the frozen register at or above the severity has a
    mitigation and a linked test.

    Approvals of earlier revisions (listed in ``earlier``) count only where the policy's
    dismissal lets them carry; requests for changes on them never block."""
    members = set(member_ids)
    labels = question_labels or {}
    deltas = earlier or {}
    approvals: dict[int, Vote] = {}
    carried: dict[int, Vote] = {}
    blocking: list[str] = []
    seen_blockers: set[int] = set()
    for vote in votes:
        if vote.reviewer_id in members:
            continue  # someone judging their own project: never counts
        if vote.revision_id != current_revision_id:
            if _carries(vote, policy, deltas.get(vote.revision_id)):
                carried.setdefault(vote.reviewer_id, vote)
            continue
        if vote.outcome == APPROVE:
            approvals.setdefault(vote.reviewer_id, vote)
        elif vote.outcome == REQUEST_CHANGES and vote.assigned:
            if vote.reviewer_id in seen_blockers:
                continue
            seen_blockers.add(vote.reviewer_id)
            where = (
                f" on {labels.get(vote.question_key, vote.question_key)}"
                if (vote.question_key)
                else ""
            )
            blocking.append(f"{vote.reviewer_name} requested changes{where}")
    # A reviewer's decision on the current revision replaces what they said on earlier ones.
    for reviewer_id, vote in carried.items():
        if reviewer_id not in seen_blockers:
            approvals.setdefault(reviewer_id, vote)
    # Someone who both approved and asked for changes is counted as asking for changes.
    for reviewer_id in seen_blockers:
        approvals.pop(reviewer_id, None)

    staff = sum(1 for v in approvals.values() if v.role == STAFF)
    expert = sum(1 for v in approvals.values() if v.role == EXPERT)
    total = len(approvals)
    missing: list[str] = []
    staff_short = max(0, policy.min_staff - staff)
    expert_short = max(0, policy.min_expert - expert)
    if staff_short:
        missing.append("needs " + _plural(staff_short, ROLE_WORDS[STAFF]))
    if expert_short:
        missing.append("needs " + _plural(expert_short, ROLE_WORDS[EXPERT]))
    # Approvals still needed beyond those the role minimums already ask for.
    other_short = max(0, policy.min_approvals - total - staff_short - expert_short)
    if other_short:
        missing.append(
            "needs " + _plural(other_short, "reviewer").replace("reviewer approval", "approval")
        )
    missing.extend(untraced_risks(risks, risk_min_severity))
    ctx = GateContext(
        approvals=approvals, attributes=attributes or {}, labels=labels, facts=facts or {}
    )
    for rule in policy.all_rules():
        kind = RULE_KINDS.get(rule.get("kind", ""))
        if kind is None:
            # A rule nobody can evaluate must not pass silently.
            missing.append(f"has a rule of unknown kind {rule.get('kind')!r}")
            continue
        if condition_holds(rule.get("applies_if"), ctx.attributes):
            missing.extend(kind.check(rule, ctx))
    satisfied = (
        current_revision_id is not None
        and not missing
        and not blocking
        and total >= policy.min_approvals
    )
    return GateResult(
        satisfied=satisfied,
        approvals=total,
        staff_approvals=staff,
        expert_approvals=expert,
        missing=missing,
        blocking=blocking,
        approvers=sorted(v.reviewer_name for v in approvals.values()),
    )
