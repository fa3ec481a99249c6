"""The three documents a team leaves the course with, generated from approved revisions only:

- a model card, as a Hugging Face README.md (YAML metadata, then Markdown) and as Model Card
  Toolkit JSON (schema 0.0.2);
- a datasheet for the dataset, with Gebru et al.'s seven sections;
- an impact assessment: intended and restricted uses, stakeholders with benefits and harms, the
  risk register, sign-offs with names and dates.

Which question fills which section is data in the template (LifecycleTemplate.artefact_map), so
a course's own template maps its own questions. Drafts never leak in: only a stage's approved
revision is read, and every document names the revisions (number and SHA-256) it came from.
A mapped section without an approved answer says "Not answered." rather than disappearing.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

import yaml

from lifecycle.diffs import answer_text
from lifecycle.models import (
    AuditEvent,
    Likelihood,
    Project,
    ProjectStage,
    Question,
    Severity,
    StageRevision,
    StageStatus,
    StakeholderKind,
)

NOT_ANSWERED = "Not answered."

SECTION_TITLES: dict[str, dict[str, str]] = {
    "model_card": {
        "model_details": "Model details",
        "intended_uses": "Intended uses",
        "out_of_scope_uses": "Out-of-scope uses",
        "training_data": "Training data",
        "training_procedure": "Training procedure",
        "evaluation": "Evaluation",
        "subgroup_performance": "Performance per subgroup",
        "bias_risks_limitations": "Bias, risks and limitations",
        "monitoring": "Monitoring and roll-back",
    },
    "datasheet": {
        "motivation": "Motivation",
        "composition": "Composition",
        "collection": "Collection process",
        "preprocessing": "Preprocessing, cleaning and labelling",
        "uses": "Uses",
        "distribution": "Distribution",
        "maintenance": "Maintenance",
    },
    "impact_assessment": {
        "intended_uses": "Intended uses",
        "restricted_uses": "Restricted uses",
        "harms_and_mitigations": "Harms, unintended consequences and mitigations",
    },
}
ARTEFACT_TITLES = {
    "model_card": "Model card",
    "datasheet": "Datasheet for the dataset",
    "impact_assessment": "Impact assessment",
}


@dataclass
class Entry:
    prompt: str
    text: str


@dataclass
class Section:
    key: str
    title: str
    entries: list[Entry] = field(default_factory=list)

    @property
    def answered(self) -> bool:
        return bool(self.entries)

    def as_text(self) -> str:
        if not self.entries:
            return NOT_ANSWERED
        return "\n\n".join(f"**{e.prompt}**\n\n{e.text}" for e in self.entries)


@dataclass
class Source:
    stage: str
    cycle: int
    revision: int
    sha256: str


@dataclass
class Approved:
    """What the approved revisions of a project say, and where it came from."""

    project: Project
    answers: dict[str, tuple[Question, Any]]  # "<stage>/<question>" -> (question, value)
    sources: list[Source]
    stakeholders: list[dict[str, Any]]
    risks: list[dict[str, Any]]
    evidence: list[dict[str, Any]]
    sign_offs: list[dict[str, str]]

    def section(self, artefact: str, key: str) -> Section:
        mapping = (self.project.template.artefact_map or {}).get(artefact, {})
        title = SECTION_TITLES.get(artefact, {}).get(key, key.replace("_", " ").capitalize())
        section = Section(key=key, title=title)
        for ref in mapping.get(key, []):
            found = self.answers.get(ref)
            if found is None:
                continue
            question, value = found
            if value in (None, "", [], {}):
                continue
            section.entries.append(Entry(question.prompt, answer_text(question, value)))
        return section

    def sections(self, artefact: str) -> list[Section]:
        keys = list(SECTION_TITLES.get(artefact, {}))
        mapped = (self.project.template.artefact_map or {}).get(artefact, {})
        keys += [k for k in mapped if k not in keys]
        return [self.section(artefact, key) for key in keys]


def approved_content(project: Project) -> Approved:
    """The latest approved revision of every stage (over all cycles), in a fixed number of
    queries. A stage being redrafted in a later cycle still counts with its last approval."""
    stages = (
        ProjectStage.objects.filter(
            project=project, status=StageStatus.APPROVED, current_revision__isnull=False
        )
        .select_related("definition", "current_revision")
        .order_by("definition__order", "cycle")
    )
    latest: dict[str, tuple[ProjectStage, StageRevision]] = {}
    for stage in stages:
        latest[stage.definition.key] = (stage, stage.current_revision)  # type: ignore[assignment]
    questions = {
        f"{q.stage.key}/{q.key}": q
        for q in Question.objects.filter(stage__template_id=project.template_id).select_related(
            "stage"
        )
    }
    answers: dict[str, tuple[Question, Any]] = {}
    sources: list[Source] = []
    stakeholders: list[dict[str, Any]] = []
    risks: list[dict[str, Any]] = []
    evidence: list[dict[str, Any]] = []
    newest_risks: tuple[Any, ...] = ()
    for stage_key, (stage, revision) in latest.items():
        sources.append(Source(stage_key, stage.cycle, revision.number, revision.content_sha256))
        for key, value in revision.answers.items():
            question = questions.get(f"{stage_key}/{key}")
            if question is not None:
                answers[f"{stage_key}/{key}"] = (question, value)
        if revision.stakeholders:
            stakeholders = revision.stakeholders
        # The register as the most recently approved revision froze it.
        if revision.risks and (revision.created_at,) > newest_risks:
            newest_risks = (revision.created_at,)
            risks = revision.risks
        evidence.extend(
            {**f, "stage": stage_key, "revision": revision.number} for f in revision.evidence
        )
    return Approved(
        project=project,
        answers=answers,
        sources=sources,
        stakeholders=stakeholders,
        risks=risks,
        evidence=evidence,
        sign_offs=_sign_offs(project, {s.sha256: s for s in sources}),
    )


def _sign_offs(project: Project, by_hash: dict[str, Source]) -> list[dict[str, str]]:
    """Who approved the revisions the documents come from, and when: read from the audit trail
    (decisions and overrides name the revision's hash), so the evidence layer needs nothing from
    the review layer."""
    if not by_hash:
        return []
    events = AuditEvent.objects.filter(
        project=project,
        verb__in=("decision.record", "decision.change", "stage.override_approve"),
    ).order_by("seq")
    found: dict[tuple[str, str], dict[str, str]] = {}
    for event in events:
        new = event.new or {}
        source = by_hash.get(str(new.get("sha256", "")))
        if source is None:
            continue
        if event.verb == "stage.override_approve":
            meaning = "instructor override"
        elif new.get("outcome") == "approve":
            meaning = f"approved ({new.get('role', 'reviewer')})"
        else:
            found.pop((source.stage, event.actor_label), None)
            continue
        found[(source.stage, event.actor_label)] = {
            "stage": source.stage,
            "revision": str(source.revision),
            "name": event.actor_name or event.actor_label,
            "meaning": meaning,
            "date": event.created_at.astimezone(dt.UTC).date().isoformat(),
        }
    return list(found.values())


# --- rendering ------------------------------------------------------------------------------


def _provenance(approved: Approved) -> list[str]:
    if not approved.sources:
        return ["No stage of this project is approved yet: every section is unanswered."]
    return [
        f"- {s.stage}, cycle {s.cycle}, revision {s.revision}: SHA-256 `{s.sha256}`"
        for s in approved.sources
    ]


def _markdown_sections(sections: list[Section]) -> list[str]:
    lines: list[str] = []
    for section in sections:
        lines += [f"## {section.title}", "", section.as_text(), ""]
    return lines


def _kind_label(kind: str) -> str:
    return dict(StakeholderKind.choices).get(kind, kind)


def _risk_lines(approved: Approved) -> list[str]:
    if not approved.risks:
        return [NOT_ANSWERED]
    names = {s.get("id"): s.get("name", "") for s in approved.stakeholders}
    lines = [
        "| Risk | Harms | Likelihood | Severity | Mitigation | Test | Monitor |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in sorted(
        approved.risks, key=lambda r: (-int(r["severity"]), -int(r["likelihood"]), r["title"])
    ):
        harmed = ", ".join(names.get(i, f"#{i}") for i in r.get("stakeholders", [])) or "—"
        lines.append(
            "| "
            + " | ".join(
                _cell(x)
                for x in (
                    r["title"],
                    harmed,
                    Likelihood(int(r["likelihood"])).label,
                    Severity(int(r["severity"])).label,
                    r.get("mitigation") or "—",
                    r.get("test_link") or "—",
                    r.get("monitor_link") or "—",
                )
            )
            + " |"
        )
    return lines


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def model_card_markdown(approved: Approved) -> str:
    project = approved.project
    metadata = {
        "language": ["en"],
        "license": "other",
        "tags": ["lifecycle-review-board", "model-card"],
        "model_name": project.title,
        "lifecycle_review_board": {
            "project": project.title,
            "course": project.course.title,
            "template": f"{project.template.slug} v{project.template.version}",
            "generated_from": [
                {"stage": s.stage, "cycle": s.cycle, "revision": s.revision, "sha256": s.sha256}
                for s in approved.sources
            ],
        },
    }
    lines = [
        "---",
        yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True).rstrip(),
        "---",
        "",
        f"# Model card for {project.title}",
        "",
        project.summary or "",
        "",
        *_markdown_sections(approved.sections("model_card")),
        "## Evidence",
        "",
        *(
            [
                f"- {f['name']} ({f['stage']}, revision {f['revision']}): SHA-256 `{f['sha256']}`"
                for f in approved.evidence
            ]
            or [NOT_ANSWERED]
        ),
        "",
        "## Provenance",
        "",
        "Generated from approved revisions only:",
        "",
        *_provenance(approved),
        "",
    ]
    return "\n".join(lines)


def model_card_toolkit(approved: Approved) -> dict[str, Any]:
    """The model card as Model Card Toolkit JSON (schema version 0.0.2)."""
    project = approved.project

    def text(key: str) -> str:
        return approved.section("model_card", key).as_text()

    def described(key: str) -> list[dict[str, str]]:
        section = approved.section("model_card", key)
        return [{"description": e.text} for e in section.entries] or [{"description": NOT_ANSWERED}]

    data_section = approved.section("model_card", "training_data")
    return {
        "schema_version": "0.0.2",
        "model_details": {
            "name": project.title,
            "overview": project.summary or text("intended_uses"),
            "documentation": text("model_details"),
            "owners": [
                {"name": m.name, "contact": m.email} for m in project.members.order_by("pk")
            ],
            "version": {
                "name": f"cycle {project.cycle}",
                "diff": "; ".join(
                    f"{s.stage} r{s.revision} {s.sha256[:12]}" for s in approved.sources
                ),
            },
            "references": [],
        },
        "model_parameters": {
            "model_architecture": text("model_details"),
            "data": [
                {"name": "training and evaluation data", "description": data_section.as_text()}
            ],
        },
        "quantitative_analysis": {"performance_metrics": []},
        "considerations": {
            "users": described("intended_uses"),
            "use_cases": described("intended_uses"),
            "limitations": described("bias_risks_limitations") + described("out_of_scope_uses"),
            "tradeoffs": described("subgroup_performance"),
            "ethical_considerations": [
                {"name": r["title"], "mitigation_strategy": r.get("mitigation") or NOT_ANSWERED}
                for r in approved.risks
            ]
            or [{"name": NOT_ANSWERED, "mitigation_strategy": NOT_ANSWERED}],
        },
    }


def model_card_json(approved: Approved) -> str:
    return json.dumps(model_card_toolkit(approved), indent=2, ensure_ascii=False) + "\n"


def datasheet_markdown(approved: Approved) -> str:
    project = approved.project
    lines = [
        f"# Datasheet for the dataset of {project.title}",
        "",
        "After Gebru et al., *Datasheets for Datasets*: motivation, composition, collection, "
        "preprocessing, uses, distribution, maintenance.",
        "",
        *_markdown_sections(approved.sections("datasheet")),
        "## Provenance",
        "",
        *_provenance(approved),
        "",
    ]
    return "\n".join(lines)


def impact_assessment_markdown(approved: Approved) -> str:
    project = approved.project
    sections = {s.key: s for s in approved.sections("impact_assessment")}
    stakeholder_lines = [
        "| Stakeholder | Kind | Benefits | Harms | Consulted |",
        "| --- | --- | --- | --- | --- |",
    ] + [
        "| "
        + " | ".join(
            _cell(x)
            for x in (
                s.get("name", ""),
                _kind_label(s.get("kind", "")),
                s.get("possible_benefits") or "—",
                s.get("possible_harms") or "—",
                (s.get("consultation") or "yes") if s.get("consulted") else "no",
            )
        )
        + " |"
        for s in approved.stakeholders
    ]
    sign_off_lines = [
        f"- {s['date']}: {s['name']}, {s['meaning']}, {s['stage']} revision {s['revision']}"
        for s in approved.sign_offs
    ] or [NOT_ANSWERED]
    lines = [
        f"# Impact assessment: {project.title}",
        "",
        f"Course: {project.course.title}. Team: "
        + ", ".join(m.name for m in project.members.order_by("pk"))
        + ".",
        "",
        *_markdown_sections([sections["intended_uses"], sections["restricted_uses"]]),
        "## Stakeholders, benefits and harms",
        "",
        *(stakeholder_lines if approved.stakeholders else [NOT_ANSWERED]),
        "",
        *_markdown_sections([sections["harms_and_mitigations"]]),
        "## Risk register",
        "",
        *_risk_lines(approved),
        "",
        "## Sign-offs",
        "",
        *sign_off_lines,
        "",
        "## Provenance",
        "",
        *_provenance(approved),
        "",
    ]
    return "\n".join(lines)


ARTEFACT_FILES = {
    "model-card.md": ("text/markdown; charset=utf-8", model_card_markdown),
    "model-card.json": ("application/json", model_card_json),
    "datasheet.md": ("text/markdown; charset=utf-8", datasheet_markdown),
    "impact-assessment.md": ("text/markdown; charset=utf-8", impact_assessment_markdown),
}
