"""Every write of the risk register (beside the stakeholder register): add, update (which
re-scores it for the project's current cycle), remove, and set the evidence that addresses it.

Same shape as lifecycle.services: lock the project, check the team and the state, write,
record an audit event."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.db import transaction
from django.utils import timezone

from .audit import audit_record
from .errors import InvalidAnswers
from .models import RISK_FIELDS, RISK_LINKS, Likelihood, Project, Risk, Severity
from .services import _lock_project, _require_active, _require_member


def link_choices(project: Project) -> dict[str, list[tuple[str, str]]]:
    """For each link, the questions it may name: stage 3's for the data decision, stage 5's
    for the test, stage 6's for the monitor (by order in the project's template)."""
    from .models import Question

    by_order = {3: "data_link", 5: "test_link", 6: "monitor_link"}
    choices: dict[str, list[tuple[str, str]]] = {link: [] for link in RISK_LINKS}
    questions = (
        Question.objects.filter(stage__template_id=project.template_id, stage__order__in=by_order)
        .select_related("stage")
        .order_by("stage__order", "order")
    )
    for q in questions:
        choices[by_order[q.stage.order]].append((f"{q.stage.key}/{q.key}", q.prompt))
    return choices


def _clean(project: Project, fields: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(fields) - set(RISK_FIELDS) - {"stakeholders"}
    if unknown:
        raise InvalidAnswers({k: ["Not a risk field."] for k in sorted(unknown)})
    cleaned = dict(fields)
    errors: dict[str, list[str]] = {}
    if "title" in cleaned:
        cleaned["title"] = str(cleaned["title"]).strip()
        if not cleaned["title"]:
            errors["title"] = ["Name the risk."]
        elif len(cleaned["title"]) > 200:
            errors["title"] = ["Keep the title under 200 characters."]
    for key, scale in (("likelihood", Likelihood), ("severity", Severity)):
        if key in cleaned:
            try:
                cleaned[key] = int(cleaned[key])
            except (TypeError, ValueError):
                cleaned[key] = 0
            if cleaned[key] not in scale.values:
                errors[key] = ["Choose a value from 1 to 5."]
    if "owner" in cleaned and cleaned["owner"] is not None:
        owner = cleaned["owner"]
        if not project.members.filter(pk=getattr(owner, "pk", owner)).exists():
            errors["owner"] = ["The owner must be a member of the team."]
    choices = link_choices(project)
    for link in RISK_LINKS:
        if link in cleaned:
            cleaned[link] = str(cleaned[link] or "")
            if cleaned[link] and cleaned[link] not in dict(choices[link]):
                errors[link] = ["Choose a question of the right stage."]
    if "stakeholders" in cleaned:
        ids = [getattr(s, "pk", s) for s in cleaned["stakeholders"] or []]
        found = list(project.stakeholders.filter(pk__in=ids))
        if len(found) != len(set(ids)):
            errors["stakeholders"] = ["Choose stakeholders from this project's register."]
        cleaned["stakeholders"] = found
    for key in ("description", "mitigation"):
        if key in cleaned:
            cleaned[key] = str(cleaned[key] or "")
    if errors:
        raise InvalidAnswers(errors)
    return cleaned


@transaction.atomic
def risk_add(*, project: Project, actor: Any, **fields: Any) -> Risk:
    project = _lock_project(project.pk)
    _require_member(actor, project)
    _require_active(project)
    cleaned = _clean(project, fields)
    missing = [k for k in ("title", "likelihood", "severity") if k not in cleaned]
    if missing:
        raise InvalidAnswers({k: ["Required."] for k in missing})
    stakeholders = cleaned.pop("stakeholders", [])
    risk = Risk.objects.create(project=project, scored_cycle=project.cycle, **cleaned)
    risk.stakeholders.set(stakeholders)
    audit_record(actor=actor, verb="risk.add", obj=risk, project=project, new=risk.snapshot())
    return risk


@transaction.atomic
def risk_update(*, risk: Risk, actor: Any, **fields: Any) -> Risk:
    """Change a risk; saving its scores counts as re-scoring it in the current cycle."""
    project = _lock_project(risk.project_id)
    _require_member(actor, project)
    _require_active(project)
    risk = Risk.objects.select_for_update(no_key=True).get(pk=risk.pk)
    cleaned = _clean(project, fields)
    old = risk.snapshot()
    stakeholders = cleaned.pop("stakeholders", None)
    for key, value in cleaned.items():
        setattr(risk, key, value)
    if "likelihood" in cleaned or "severity" in cleaned:
        risk.scored_cycle = project.cycle
    risk.updated_at = timezone.now()
    risk.save()
    if stakeholders is not None:
        risk.stakeholders.set(stakeholders)
    new = risk.snapshot()
    changed = [k for k in new if old[k] != new[k]]
    if changed:
        audit_record(
            actor=actor,
            verb="risk.update",
            obj=risk,
            project=project,
            old={k: old[k] for k in changed},
            new={k: new[k] for k in changed},
        )
    return risk


@transaction.atomic
def risk_remove(*, risk: Risk, actor: Any) -> None:
    project = _lock_project(risk.project_id)
    _require_member(actor, project)
    _require_active(project)
    risk = Risk.objects.select_for_update(no_key=True).get(pk=risk.pk)
    audit_record(actor=actor, verb="risk.remove", obj=risk, project=project, old=risk.snapshot())
    risk.delete()


@transaction.atomic
def risk_set_evidence(*, risk: Risk, actor: Any, files: Iterable[Mapping[str, str]]) -> Risk:
    """The evidence files that address the risk (the evidence layer checks they are the
    project's): a list of {"name", "sha256"}."""
    project = _lock_project(risk.project_id)
    _require_member(actor, project)
    _require_active(project)
    risk = Risk.objects.select_for_update(no_key=True).get(pk=risk.pk)
    old = list(risk.evidence)
    new = sorted(
        ({"name": str(f["name"]), "sha256": str(f["sha256"])} for f in files),
        key=lambda f: (f["name"], f["sha256"]),
    )
    if old == new:
        return risk
    risk.evidence = new
    risk.updated_at = timezone.now()
    risk.save(update_fields=["evidence", "updated_at"])
    audit_record(
        actor=actor,
        verb="risk.evidence",
        obj=risk,
        project=project,
        old={"evidence": old},
        new={"evidence": new},
    )
    return risk
