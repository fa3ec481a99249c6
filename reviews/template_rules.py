"""The review layer's part of the template editor: what a gate rule would mean for the projects
in review (the dry run), what migrating a project does to its approvals in flight, moving
review assignments when a project changes template version, and editorial acceptances."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Prefetch

from lifecycle import events
from lifecycle import permissions as lifecycle_permissions
from lifecycle import services as lifecycle_services
from lifecycle.audit import audit_record
from lifecycle.errors import IllegalTransition, NotAllowed
from lifecycle.models import (
    Course,
    LifecycleTemplate,
    Project,
    ProjectStage,
    ProjectStatus,
    StageDefinition,
    StageRevision,
    StageStatus,
)
from lifecycle.template_services import TEMPLATE_MIGRATED, migration_plan

from . import permissions
from .gate import GateResult
from .models import Decision, EditorialAcceptance, Invitation, ReviewAssignment
from .services import gate_for_definition, gate_for_stage

DRY_RUN_LIMIT = 200


@dataclass
class DryRunRow:
    stage: ProjectStage
    before: GateResult
    after: GateResult

    @property
    def change(self) -> str:
        if self.before.satisfied == self.after.satisfied:
            return "unchanged"
        return "satisfied" if self.after.satisfied else "unsatisfied"


def dry_run(
    *, course: Course, stage_key: str, rules: list[dict[str, Any]], limit: int = DRY_RUN_LIMIT
) -> list[DryRunRow]:
    """For every active project of the course whose stage ``stage_key`` is in review: its gate
    now, and with ``rules`` in place of the stage's rules. Capped at ``limit`` stages."""
    stages = list(
        ProjectStage.objects.filter(
            project__course=course,
            project__status=ProjectStatus.ACTIVE,
            status=StageStatus.IN_REVIEW,
            definition__key=stage_key,
        )
        .select_related("project", "definition", "current_revision")
        .prefetch_related(
            Prefetch("project__members"),
            Prefetch("definition__questions"),
        )
        .order_by("project__title", "pk")[:limit]
    )
    # The standing decisions of every listed stage in one query, not two per stage.
    standing: dict[int, list[Decision]] = defaultdict(list)
    for decision in Decision.objects.filter(
        revision_id__in=[s.current_revision_id for s in stages if s.current_revision_id],
        replaced_at__isnull=True,
    ).select_related("reviewer", "assignment"):
        standing[decision.revision_id].append(decision)
    rows = []
    for stage in stages:
        decisions = standing.get(stage.current_revision_id or 0, [])
        rows.append(
            DryRunRow(
                stage=stage,
                before=gate_for_stage(stage, current_decisions=decisions),
                after=gate_for_definition(
                    stage, stage.definition, rules=rules, current_decisions=decisions
                ),
            )
        )
    return rows


def migration_preview(project: Project, target: LifecycleTemplate) -> dict[str, Any]:
    """The lifecycle's plan plus, for a stage in review, its gate now and under the target
    version (approvals in flight are judged by the new rules; none is dismissed)."""
    plan = migration_plan(project, target)
    new_defs = {
        d.key: d
        for d in StageDefinition.objects.filter(template=target).prefetch_related("questions")
    }
    for row in plan["stages"]:
        stage = row["stage"]
        stage.project = project
        if row["in_review"] and stage.definition.key in new_defs:
            row["gate_before"] = gate_for_stage(stage)
            row["gate_after"] = gate_for_definition(stage, new_defs[stage.definition.key])
    return plan


def migration_previews(
    projects: list[Project], target: LifecycleTemplate
) -> list[tuple[Project, dict[str, Any]]]:
    """``migration_preview`` for a page of projects, reading together what each would read on
    its own: every version's document once, the projects' stages, the target's definitions and
    the standing decisions of the stages in review."""
    documents: dict[int, dict[str, Any]] = {}
    cycles = {p.pk: p.cycle for p in projects}
    stages_of: dict[int, list[ProjectStage]] = defaultdict(list)
    for stage in ProjectStage.objects.filter(project_id__in=list(cycles)).select_related(
        "definition", "current_revision"
    ):
        if stage.cycle == cycles[stage.project_id]:
            stages_of[stage.project_id].append(stage)
    new_defs = {
        d.key: d
        for d in StageDefinition.objects.filter(template=target).prefetch_related("questions")
    }
    in_review = [
        s.current_revision_id
        for group in stages_of.values()
        for s in group
        if s.status == StageStatus.IN_REVIEW and s.current_revision_id
    ]
    standing: dict[int, list[Decision]] = defaultdict(list)
    for decision in Decision.objects.filter(
        revision_id__in=in_review, replaced_at__isnull=True
    ).select_related("reviewer", "assignment"):
        standing[decision.revision_id].append(decision)
    old_defs = {
        d.pk: d
        for d in StageDefinition.objects.filter(
            pk__in={s.definition_id for g in stages_of.values() for s in g}
        ).prefetch_related("questions")
    }
    previews = []
    for project in projects:
        plan = migration_plan(
            project, target, documents=documents, stages=stages_of.get(project.pk, [])
        )
        for row in plan["stages"]:
            stage = row["stage"]
            stage.project = project
            stage.definition = old_defs.get(stage.definition_id, stage.definition)
            if row["in_review"] and stage.definition.key in new_defs:
                decisions = standing.get(stage.current_revision_id or 0, [])
                row["gate_before"] = gate_for_stage(stage, current_decisions=decisions)
                row["gate_after"] = gate_for_definition(
                    stage, new_defs[stage.definition.key], current_decisions=decisions
                )
        previews.append((project, plan))
    return previews


def on_template_migrated(*, project: Project, actor: Any, mapping: dict[int, int]) -> None:
    """Assignments and invitations follow the stages to their new definitions; a stage in
    review whose gate the new version satisfies is approved now, as a decision would."""
    for old_id, new_id in mapping.items():
        if old_id == new_id:
            continue
        ReviewAssignment.objects.filter(project=project, stage_definition_id=old_id).update(
            stage_definition_id=new_id
        )
        Invitation.objects.filter(project=project, stage_definition_id=old_id).update(
            stage_definition_id=new_id
        )
    if project.current_stage_id is None:
        return
    stage = (
        ProjectStage.objects.select_related("definition", "current_revision")
        .filter(pk=project.current_stage_id, status=StageStatus.IN_REVIEW)
        .first()
    )
    if stage is None or stage.current_revision is None:
        return
    stage.project = project
    gate = gate_for_stage(stage)
    if gate.satisfied:
        lifecycle_services.stage_mark_approved(
            stage=stage,
            revision=stage.current_revision,
            actor=actor,
            gate_summary={**gate.as_dict(), "migrated": True},
        )


def on_revision_recorded(*, stage: ProjectStage, revision: StageRevision, actor: Any) -> None:
    """Where the stage lets approvals of an earlier revision carry, they may satisfy the gate
    of the new one at once; approve it then (by the last carried approver: the team never
    approves its own stage)."""
    if stage.definition.dismissal == "all" or revision.number < 2:
        return
    gate = gate_for_stage(stage)
    if not gate.satisfied:
        return
    approver = (
        Decision.objects.filter(revision__stage=stage, replaced_at__isnull=True, outcome="approve")
        .exclude(reviewer__in=stage.project.members.all())
        .select_related("reviewer")
        .order_by("-created_at")
        .first()
    )
    if approver is None:
        return
    lifecycle_services.stage_mark_approved(
        stage=stage,
        revision=revision,
        actor=approver.reviewer,
        gate_summary={**gate.as_dict(), "carried": True},
    )


def connect() -> None:
    events.subscribe(TEMPLATE_MIGRATED, on_template_migrated)
    events.subscribe(events.REVISION_RECORDED, on_revision_recorded)


@transaction.atomic
def editorial_accept(*, revision: StageRevision, reviewer: Any) -> EditorialAcceptance:
    """A reviewer who approved an earlier revision accepts that this one, which the team marked
    editorial, changes nothing they judged; under the stage's "editorial" dismissal their
    approval carries, and the gate may now pass."""
    from .services import _lock_project

    stage = ProjectStage.objects.select_related("definition").get(pk=revision.stage_id)
    project = _lock_project(stage.project_id)
    if not revision.editorial:
        raise IllegalTransition("The team did not mark this revision as editorial.")
    if stage.current_revision_id != revision.pk:
        raise IllegalTransition("Only the current revision can be accepted as editorial.")
    role, _assignment = permissions.reviewer_role(reviewer, project, stage.definition)
    if role is None or lifecycle_permissions.is_project_member(reviewer, project):
        raise NotAllowed("Only a reviewer of this stage can accept a change as editorial.")
    acceptance, created = EditorialAcceptance.objects.get_or_create(
        revision=revision, reviewer=reviewer
    )
    if not created:
        return acceptance
    audit_record(
        actor=reviewer,
        verb="decision.editorial_accept",
        obj=acceptance,
        project=project,
        new={"revision": revision.number, "stage": stage.definition.key, "cycle": stage.cycle},
    )
    locked = ProjectStage.objects.select_related("definition", "current_revision").get(pk=stage.pk)
    locked.project = project
    if locked.status == StageStatus.IN_REVIEW:
        gate = gate_for_stage(locked)
        if gate.satisfied:
            lifecycle_services.stage_mark_approved(
                stage=locked, revision=revision, actor=reviewer, gate_summary=gate.as_dict()
            )
    return acceptance
