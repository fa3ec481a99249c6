"""The gate: one pure function over a stage's policy and the decisions on its current revision.

No database here, so every rule can be unit-tested on plain values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

STAFF = "staff"
EXPERT = "expert"
APPROVE = "approve"
REQUEST_CHANGES = "request_changes"

ROLE_WORDS = {STAFF: "course-staff", EXPERT: "domain-expert"}


@dataclass(frozen=True)
class GatePolicy:
    min_approvals: int
    min_staff: int = 0
    min_expert: int = 0


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


def evaluate_gate(
    policy: GatePolicy,
    votes: Iterable[Vote],
    *,
    current_revision_id: int | None,
    member_ids: Iterable[int] = (),
    question_labels: Mapping[str, str] | None = None,
    risks: Iterable[RiskTrace] = (),
    risk_min_severity: int = 0,
) -> GateResult:
    """Satisfied when, on the current revision, approvals by distinct non-members reach the
    minimum with at least the required number from each role, no assigned reviewer has an
    unresolved request for changes on it, and (when the stage asks) every risk of the frozen
    register at or above the severity has a mitigation and a linked test."""
    members = set(member_ids)
    labels = question_labels or {}
    approvals: dict[int, Vote] = {}
    blocking: list[str] = []
    seen_blockers: set[int] = set()
    for vote in votes:
        if vote.revision_id != current_revision_id or vote.reviewer_id in members:
            continue  # stale, or someone judging their own project: never counts
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
