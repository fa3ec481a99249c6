"""The traceability view's data: stakeholder → risk → mitigation → test → monitor, with every
gap named. Reads a project's registers and its stages' latest revisions in a fixed number of
queries, whatever the number of risks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .models import Project, ProjectStage, Question, Risk, StageStatus


@dataclass
class LinkState:
    link: str  # "<stage key>/<question key>" or ""
    prompt: str = ""
    state: str = "gap"  # "gap" (no link), "pending" (not answered yet), "answered", "approved"
    revision: int | None = None

    @property
    def is_gap(self) -> bool:
        return self.state == "gap"


@dataclass
class TraceRow:
    risk: Risk | None
    stakeholder_names: list[str]
    mitigation: str
    data: LinkState
    test: LinkState
    monitor: LinkState
    evidence: list[dict[str, str]]
    stale_score: bool = False
    gaps: list[str] = field(default_factory=list)

    @property
    def links(self) -> list[LinkState]:
        return [self.data, self.test, self.monitor]


@dataclass
class Traceability:
    rows: list[TraceRow]
    unharmed_stakeholders: list[str]
    gap_count: int


def _latest_revisions(project: Project) -> dict[str, tuple[Any, bool]]:
    """Stage key → (its latest revision, approved?) over all cycles."""
    stages = (
        ProjectStage.objects.filter(project=project, current_revision__isnull=False)
        .select_related("definition", "current_revision")
        .order_by("cycle")
    )
    found: dict[str, tuple[Any, bool]] = {}
    for stage in stages:
        found[stage.definition.key] = (
            stage.current_revision,
            stage.status == StageStatus.APPROVED,
        )
    return found


def _link_state(link: str, prompts: dict[str, str], revisions: dict[str, tuple[Any, bool]]):
    if not link:
        return LinkState(link="")
    stage_key, _, question_key = link.partition("/")
    state = LinkState(link=link, prompt=prompts.get(link, link), state="pending")
    latest = revisions.get(stage_key)
    if latest is not None:
        revision, approved = latest
        if revision.answers.get(question_key) not in (None, "", [], {}):
            state.state = "approved" if approved else "answered"
            state.revision = revision.number
    return state


def project_traceability(project: Project) -> Traceability:
    risks = list(
        Risk.objects.filter(project=project)
        .prefetch_related("stakeholders")
        .select_related("owner")
    )
    stakeholders = list(project.stakeholders.all())
    prompts = {
        f"{q.stage.key}/{q.key}": q.prompt
        for q in Question.objects.filter(stage__template_id=project.template_id).select_related(
            "stage"
        )
    }
    revisions = _latest_revisions(project)
    rows: list[TraceRow] = []
    harmed: set[int] = set()
    for risk in risks:
        names = [s.name for s in risk.stakeholders.all()]
        harmed.update(s.pk for s in risk.stakeholders.all())
        row = TraceRow(
            risk=risk,
            stakeholder_names=names,
            mitigation=risk.mitigation,
            data=_link_state(risk.data_link, prompts, revisions),
            test=_link_state(risk.test_link, prompts, revisions),
            monitor=_link_state(risk.monitor_link, prompts, revisions),
            evidence=list(risk.evidence),
            stale_score=risk.scored_cycle < project.cycle,
        )
        if not names:
            row.gaps.append("no stakeholder named")
        if not risk.mitigation.strip():
            row.gaps.append("no mitigation")
        for label, state in (
            ("data decision", row.data),
            ("test", row.test),
            ("monitor", row.monitor),
        ):
            if state.is_gap:
                row.gaps.append(f"no {label} linked")
        if row.stale_score:
            row.gaps.append(f"not re-scored in cycle {project.cycle}")
        rows.append(row)
    unharmed = [s.name for s in stakeholders if s.pk not in harmed]
    return Traceability(
        rows=rows,
        unharmed_stakeholders=unharmed,
        gap_count=sum(len(r.gaps) for r in rows),
    )
