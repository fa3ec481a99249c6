"""Every write of the template editor: drafts, versions, imports, migrating running projects
and project attributes. One function per action, each with its transaction, its row lock, its
permission check and its audit event (as lifecycle.services).

A course edits a *draft* (``TemplateDraft``, the JSON document of lifecycle.template_data).
Publishing writes a new ``LifecycleTemplate`` version and points the course at it; versions are
never edited afterwards, so running projects stay on theirs until staff migrate them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from . import events, permissions
from .audit import audit_record
from .errors import DomainError, IllegalTransition, InvalidAnswers, NotAllowed
from .models import (
    STAFF_ROLES,
    Course,
    LifecycleTemplate,
    Membership,
    Project,
    ProjectStage,
    Question,
    RiskTier,
    StageDefinition,
    StageStatus,
    TemplateDraft,
)
from .template_data import (
    DocumentErrors,
    ReviewerPool,
    checked,
    default_document,
    document_from_template,
    empty_document,
    validate_document,
)

TEMPLATE_MIGRATED = "template.migrated"


class TemplateConflict(DomainError):
    """Another member of staff saved the draft after the edit the caller started from."""

    status_code = 409

    def __init__(self, *, draft: TemplateDraft) -> None:
        who = draft.updated_by.name if draft.updated_by else "Someone"
        super().__init__(
            f"{who} changed this template draft after you opened it (now edit "
            f"{draft.revision}); your change was not saved. Reload and make it again."
        )
        self.draft = draft


def _require_staff(actor: Any, course: Course) -> None:
    if not permissions.is_course_staff(actor, course):
        raise NotAllowed("Only course staff edit the course's template.")


def reviewer_pool(course: Course) -> ReviewerPool:
    staff = Membership.objects.filter(course=course, role__in=STAFF_ROLES).count()
    return ReviewerPool(allows_experts=course.allows_experts, staff_count=staff)


def _lock_course(course: Course) -> Course:
    return (
        Course.objects.select_for_update(of=("self",), no_key=True)
        .select_related("template")
        .get(pk=course.pk)
    )


def _lock_draft(course: Course) -> TemplateDraft | None:
    return (
        TemplateDraft.objects.select_for_update(of=("self",), no_key=True)
        .select_related("updated_by")
        .filter(course=course)
        .first()
    )


# --- drafts ----------------------------------------------------------------------------------

SOURCES = ("current", "default", "empty", "course")


@transaction.atomic
def template_draft_start(
    *,
    course: Course,
    actor: Any,
    source: str,
    source_course: Course | None = None,
    base_revision: int | None = None,
) -> TemplateDraft:
    """Start editing: from the course's current version, the lecture default, another course's
    template (one the actor teaches) or nothing. Replacing a draft names the edit it replaces."""
    course = _lock_course(course)
    _require_staff(actor, course)
    if source == "current":
        data = document_from_template(course.template)
    elif source == "default":
        data = default_document()
    elif source == "empty":
        data = empty_document(f"{course.title} template")
    elif source == "course":
        if source_course is None or not permissions.is_course_staff(actor, source_course):
            raise NotAllowed("You can copy the template of a course you teach.")
        data = document_from_template(source_course.template)
    else:
        raise InvalidAnswers({"source": [f"Start from one of: {', '.join(SOURCES)}."]})
    draft = _lock_draft(course)
    now = timezone.now()
    if draft is None:
        draft = TemplateDraft.objects.create(
            course=course,
            data=data,
            based_on=course.template,
            updated_by=actor,
            updated_at=now,
        )
    else:
        if base_revision != draft.revision:
            raise TemplateConflict(draft=draft)
        draft.data, draft.based_on, draft.updated_by, draft.updated_at = (
            data,
            course.template,
            actor,
            now,
        )
        draft.revision += 1
        draft.save(update_fields=["data", "based_on", "updated_by", "updated_at", "revision"])
    audit_record(
        actor=actor,
        verb="template.draft_start",
        obj=draft,
        course=course,
        new={
            "source": source,
            "source_course": source_course.pk if source_course else None,
            "stages": len(data["stages"]),
        },
    )
    return draft


def _new_errors(before: Mapping[str, list[str]], after: Mapping[str, list[str]]) -> dict:
    """The errors an edit introduces: a draft may be incomplete while it is edited (no stage
    yet), but an edit may not make it worse."""
    return {
        path: [m for m in messages if m not in before.get(path, [])]
        for path, messages in after.items()
        if any(m not in before.get(path, []) for m in messages)
    }


@transaction.atomic
def template_draft_edit(
    *,
    course: Course,
    actor: Any,
    base_revision: int,
    change: Callable[[dict[str, Any]], None],
    what: str,
) -> TemplateDraft:
    """Apply one edit (``change`` mutates a copy of the document) if nobody saved since
    ``base_revision``; an edit that adds errors is refused and nothing is written."""
    course = _lock_course(course)
    _require_staff(actor, course)
    draft = _lock_draft(course)
    if draft is None:
        raise IllegalTransition("Start editing the template first.")
    if draft.revision != base_revision:
        raise TemplateConflict(draft=draft)
    data = copy.deepcopy(draft.data)
    try:
        change(data)
    except (KeyError, IndexError, ValueError) as error:
        raise InvalidAnswers(
            {"__all__": [f"That edit does not fit the template: {error}"]}
        ) from None
    errors = _new_errors(validate_document(draft.data), validate_document(data))
    if errors:
        raise DocumentErrors(errors)
    draft.data = data
    draft.revision += 1
    draft.updated_by, draft.updated_at = actor, timezone.now()
    draft.save(update_fields=["data", "revision", "updated_by", "updated_at"])
    audit_record(
        actor=actor,
        verb="template.draft_edit",
        obj=draft,
        course=course,
        new={"edit": draft.revision, "what": what},
    )
    return draft


@transaction.atomic
def template_draft_import(
    *, course: Course, actor: Any, data: Any, base_revision: int | None = None
) -> TemplateDraft:
    """Replace the draft with an imported document, validated in full first."""
    course = _lock_course(course)
    _require_staff(actor, course)
    document = checked(data, pool=reviewer_pool(course))
    draft = _lock_draft(course)
    now = timezone.now()
    if draft is None:
        draft = TemplateDraft.objects.create(
            course=course, data=document, based_on=course.template, updated_by=actor, updated_at=now
        )
    else:
        if base_revision != draft.revision:
            raise TemplateConflict(draft=draft)
        draft.data, draft.updated_by, draft.updated_at = document, actor, now
        draft.revision += 1
        draft.save(update_fields=["data", "revision", "updated_by", "updated_at"])
    audit_record(
        actor=actor,
        verb="template.import",
        obj=draft,
        course=course,
        new={"name": document["name"], "stages": len(document["stages"])},
    )
    return draft


@transaction.atomic
def template_draft_discard(*, course: Course, actor: Any) -> None:
    course = _lock_course(course)
    _require_staff(actor, course)
    draft = _lock_draft(course)
    if draft is None:
        return
    audit_record(
        actor=actor,
        verb="template.draft_discard",
        obj=draft,
        course=course,
        old={"edit": draft.revision},
    )
    draft.delete()


# --- versions --------------------------------------------------------------------------------


def course_template_slug(course: Course) -> str:
    return f"course-{course.pk}"


def write_template_version(
    document: Mapping[str, Any],
    *,
    slug: str,
    course: Course | None = None,
    based_on: LifecycleTemplate | None = None,
    actor: Any = None,
) -> LifecycleTemplate:
    """Write a validated document as the next version of ``slug`` (inside the caller's
    transaction; the caller audits)."""
    version = (
        LifecycleTemplate.objects.filter(slug=slug).aggregate(v=Max("version"))["v"] or 0
    ) + 1
    template = LifecycleTemplate.objects.create(
        slug=slug,
        version=version,
        name=document["name"],
        description=document.get("description", ""),
        course=course,
        based_on=based_on,
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    questions = []
    for order, stage_data in enumerate(document["stages"], start=1):
        fields = {k: v for k, v in stage_data.items() if k != "questions"}
        owners = {
            q["key"]: q["owner_expertise"]
            for q in stage_data["questions"]
            if q.get("owner_expertise")
        }
        stage = StageDefinition.objects.create(
            template=template, order=order, question_owners=owners, **fields
        )
        questions += [
            Question(
                stage=stage,
                order=q_order,
                **{k: v for k, v in q.items() if k != "owner_expertise"},
            )
            for q_order, q in enumerate(stage_data["questions"], start=1)
        ]
    Question.objects.bulk_create(questions)
    return template


@transaction.atomic
def template_publish(*, course: Course, actor: Any, base_revision: int) -> LifecycleTemplate:
    """Save the draft as a new version of the course's template; new projects start on it and
    running projects stay on theirs until migrated."""
    course = _lock_course(course)
    _require_staff(actor, course)
    draft = _lock_draft(course)
    if draft is None:
        raise IllegalTransition("There is no draft to save.")
    if draft.revision != base_revision:
        raise TemplateConflict(draft=draft)
    document = checked(draft.data, pool=reviewer_pool(course))
    old = course.template
    template = write_template_version(
        document, slug=course_template_slug(course), course=course, based_on=old, actor=actor
    )
    course.template = template
    course.save(update_fields=["template"])
    audit_record(
        actor=actor,
        verb="template.publish",
        obj=template,
        course=course,
        old={"template": old.pk, "version": f"{old.slug} v{old.version}"},
        new={
            "template": template.pk,
            "version": f"{template.slug} v{template.version}",
            "draft_edit": draft.revision,
        },
    )
    draft.delete()
    return template


@transaction.atomic
def template_version_delete(*, template: LifecycleTemplate, course: Course, actor: Any) -> None:
    """Delete a course's own version that nothing uses: no project, no course."""
    course = _lock_course(course)
    _require_staff(actor, course)
    template = LifecycleTemplate.objects.select_for_update().get(pk=template.pk)
    if template.course_id != course.pk:
        raise NotAllowed("Only a course's own template versions can be deleted from it.")
    if template.projects.exists() or template.courses.exists():
        raise IllegalTransition(
            f"Version {template.version} is in use by a project or a course; it cannot be deleted."
        )
    audit_record(
        actor=actor,
        verb="template.version_delete",
        obj=template,
        course=course,
        old={"template": template.pk, "version": f"{template.slug} v{template.version}"},
    )
    template.delete()


# --- migrating a running project -------------------------------------------------------------


@transaction.atomic
def project_migrate_template(
    *, project: Project, actor: Any, target: LifecycleTemplate
) -> dict[str, Any]:
    """Move a running project's current cycle onto another version of its course's template.

    Stages are matched by key: a matched stage keeps its status, draft (answers to removed
    questions are dropped, and kept in this audit event), revisions and decisions, and is
    judged by the new version's gate from now on. A stage the new version adds is created
    locked; a stage it removes is deleted if the project never reached it, and kept as history
    on its old definition if it did (the current stage must exist in the new version). Earlier
    cycles stay exactly as they were. Returns what changed, as the audit event records it."""
    from .services import _lock_project

    project = _lock_project(project.pk)
    _require_staff(actor, project.course)
    if not project.is_active:
        raise IllegalTransition("A concluded project stays on its template.")
    if target.pk == project.template_id:
        raise IllegalTransition("The project is on this version already.")
    if not (
        target.pk == project.course.template_id
        or target.course_id == project.course_id
        or target.projects.filter(course=project.course).exists()
    ):
        raise NotAllowed("Migrate only to a version of this course's template.")
    plan = migration_plan(project, target)
    if plan["blocked"]:
        raise IllegalTransition(plan["blocked"])
    stages = {
        s.definition.key: s
        for s in ProjectStage.objects.select_for_update(of=("self",), no_key=True)
        .select_related("definition")
        .filter(project=project, cycle=project.cycle)
    }
    new_defs = {d.key: d for d in target.stages.prefetch_related("questions")}
    mapping: dict[int, int] = {}
    dropped: dict[str, dict[str, Any]] = {}
    for key, stage in stages.items():
        definition = new_defs.get(key)
        if definition is None:
            if stage.status == StageStatus.LOCKED and stage.current_revision_id is None:
                stage.delete()
            continue
        mapping[stage.definition_id] = definition.pk
        keys = {q.key for q in definition.questions.all()}
        lost = {k: v for k, v in stage.draft_answers.items() if k not in keys}
        if lost:
            dropped[key] = lost
        stage.definition = definition
        stage.draft_answers = {k: v for k, v in stage.draft_answers.items() if k in keys}
        stage.draft_changed_at = {k: v for k, v in stage.draft_changed_at.items() if k in keys}
        stage.draft_changed_by = {k: v for k, v in stage.draft_changed_by.items() if k in keys}
        stage.save(
            update_fields=["definition", "draft_answers", "draft_changed_at", "draft_changed_by"]
        )
    ProjectStage.objects.bulk_create(
        [
            ProjectStage(project=project, definition=d, cycle=project.cycle)
            for key, d in new_defs.items()
            if key not in stages
        ]
    )
    old = project.template
    project.template = target
    project.save(update_fields=["template"])
    # The review layer moves its assignments and invitations to the new definitions and
    # re-evaluates the gate of a stage in review, in this transaction.
    events.publish(TEMPLATE_MIGRATED, project=project, actor=actor, mapping=mapping)
    summary = {
        "template": target.pk,
        "version": f"{target.slug} v{target.version}",
        "added_stages": plan["added_stages"],
        "removed_stages": plan["removed_stages"],
        "dropped_draft_answers": dropped,
    }
    audit_record(
        actor=actor,
        verb="project.template_migrate",
        obj=project,
        project=project,
        old={"template": old.pk, "version": f"{old.slug} v{old.version}"},
        new=summary,
    )
    return summary


def migration_plan(
    project: Project,
    target: LifecycleTemplate,
    *,
    documents: dict[int, dict[str, Any]] | None = None,
    stages: list[ProjectStage] | None = None,
) -> dict[str, Any]:
    """What migrating ``project`` to ``target`` would do, per stage of its current cycle (read
    only; the preview page shows it and the service refuses what it blocks). A page previewing
    many projects passes ``documents`` (a cache of versions' documents by id, filled here) and
    each project's ``stages`` of its current cycle, read together."""
    from .template_data import diff_documents

    documents = {} if documents is None else documents
    for template in (project.template, target):
        if template.pk not in documents:
            documents[template.pk] = document_from_template(template)
    change = diff_documents(documents[project.template.pk], documents[target.pk])
    if stages is None:
        stages = list(
            ProjectStage.objects.filter(project=project, cycle=project.cycle).select_related(
                "definition"
            )
        )
    by_key = {s.definition.key: s for s in stages}
    blocked = ""
    current = next((s for s in stages if s.pk == project.current_stage_id), None)
    if current is not None and current.definition.key in change.removed_stages:
        blocked = (
            f"The project is at “{current.definition.title}”, which the new version removes; "
            "it cannot be migrated until it has moved on."
        )
    rows = []
    for stage_change in change.stages:
        stage = by_key.get(stage_change.key)
        if stage is None:
            continue
        drafted = stage.draft_answers or {}
        rows.append(
            {
                "change": stage_change,
                "stage": stage,
                "dropped_answers": [k for k in stage_change.removed_questions if k in drafted],
                "kept_answers": [k for k in drafted if k not in stage_change.removed_questions],
                "in_review": stage.status == StageStatus.IN_REVIEW,
            }
        )
    kept_history = [
        key
        for key in change.removed_stages
        if key in by_key
        and (by_key[key].status != StageStatus.LOCKED or by_key[key].current_revision_id)
    ]
    return {
        "added_stages": change.added_stages,
        "removed_stages": change.removed_stages,
        "kept_as_history": kept_history,
        "stages": rows,
        "blocked": blocked,
    }


# --- project attributes ----------------------------------------------------------------------


@transaction.atomic
def project_set_attributes(*, project: Project, actor: Any, risk_tier: str, domain: str) -> Project:
    """The team proposes the risk tier and domain while stage 1 is open; course staff confirm
    or change them at any time (their change is the confirmation)."""
    from .services import _lock_project

    project = _lock_project(project.pk)
    is_staff = permissions.is_course_staff(actor, project.course)
    if not is_staff:
        if not permissions.is_project_member(actor, project):
            raise NotAllowed("Only the team and course staff set a project's attributes.")
        if project.attributes_confirmed_at is not None:
            raise IllegalTransition("Course staff confirmed these attributes; ask them to change.")
        first = project.stages.filter(cycle=1, definition__order=1).first()
        if first is None or not first.is_editable:
            raise IllegalTransition("The team sets the attributes while stage 1 is open.")
    if risk_tier not in RiskTier.values:
        raise InvalidAnswers({"risk_tier": ["Choose low, medium or high."]})
    domain = domain.strip().lower()
    if len(domain) > 60:
        raise InvalidAnswers({"domain": ["Keep the domain under 60 characters."]})
    old = {
        "risk_tier": project.risk_tier,
        "domain": project.domain,
        "confirmed": project.attributes_confirmed_at is not None,
    }
    project.risk_tier, project.domain = risk_tier, domain
    fields = ["risk_tier", "domain"]
    if is_staff:
        project.attributes_confirmed_by, project.attributes_confirmed_at = actor, timezone.now()
        fields += ["attributes_confirmed_by", "attributes_confirmed_at"]
    project.save(update_fields=fields)
    audit_record(
        actor=actor,
        verb="project.attributes_confirm" if is_staff else "project.attributes_propose",
        obj=project,
        project=project,
        old=old,
        new={"risk_tier": risk_tier, "domain": domain, "confirmed": is_staff},
    )
    return project
