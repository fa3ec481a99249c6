"""Every write of the lifecycle domain: one function per transition.

Each service opens its transaction, re-reads the rows it changes with a lock, checks permission
and state (raising a lifecycle.errors.DomainError), writes with update_fields and appends an
audit event last. Lock order is always project, then stage, then the audit chain, so two
services can never wait on each other in a cycle. Every row lock is FOR NO KEY UPDATE: no
service changes a key, and PostgreSQL's foreign-key checks (KEY SHARE, at commit, after the
audit chain's lock) must never wait on a row a service holds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from . import attachments, events, permissions
from .answers import clean_answers
from .audit import audit_record, canonical_json, sha256_hex
from .errors import DraftConflict, IllegalTransition, InvalidAnswers, NotAllowed
from .models import (
    OPEN_PROPOSAL_STATUSES,
    STAFF_ROLES,
    STAKEHOLDER_FIELDS,
    AuditEvent,
    Course,
    LifecycleTemplate,
    Membership,
    Outcome,
    Project,
    ProjectStage,
    ProjectStatus,
    Question,
    Role,
    StageRevision,
    StageStatus,
    Stakeholder,
    StakeholderKind,
    can_transition,
    new_join_code,
)

# --- helpers ------------------------------------------------------------------------------


def _lock_project(project_id: int) -> Project:
    # NO KEY UPDATE, not FOR UPDATE: PostgreSQL runs Django's deferred foreign-key checks at
    # commit with KEY SHARE locks, after the audit chain's lock is held; FOR UPDATE would block
    # them and deadlock against any transaction that merely references this project.
    return (
        Project.objects.select_for_update(of=("self",), no_key=True)
        .select_related("course", "template")
        .get(pk=project_id)
    )


def _lock_stage(stage_id: int) -> ProjectStage:
    return (
        ProjectStage.objects.select_for_update(of=("self",), no_key=True)
        .select_related("definition", "current_revision")
        .get(pk=stage_id)
    )


def _lock_current_stage(project: Project) -> ProjectStage:
    if project.current_stage_id is None:
        raise IllegalTransition("This project has no open stage.")
    return _lock_stage(project.current_stage_id)


def _lock_project_and_stage(stage: ProjectStage) -> tuple[Project, ProjectStage]:
    project = _lock_project(stage.project_id)
    locked = _lock_stage(stage.pk)
    locked.project = project
    return project, locked


def _require_active(project: Project) -> None:
    if not project.is_active:
        raise IllegalTransition(
            f"This project was concluded ({project.get_outcome_display().lower()}); "
            "nothing more can change."
        )


def _require_member(actor: Any, project: Project) -> None:
    if not permissions.is_project_member(actor, project):
        raise NotAllowed("Only members of this project's team can do that.")


def _require_not_member(actor: Any, project: Project) -> None:
    if not getattr(actor, "is_authenticated", False):
        raise NotAllowed("Sign in to review.")
    if permissions.is_project_member(actor, project):
        raise NotAllowed("Nobody reviews their own project.")


def _move(stage: ProjectStage, target: StageStatus) -> str:
    """Check the transition table; return the old status for the audit event."""
    old = stage.status
    if not can_transition(old, target):
        raise IllegalTransition(
            f"{stage.definition.title} is {stage.get_status_display().lower()}; it cannot "
            f"become {StageStatus(target).label.lower()}."
        )
    stage.status = target
    return old


def _questions(stage: ProjectStage) -> list[Question]:
    return list(stage.definition.questions.all())


def revision_content(
    answers: Mapping[str, Any],
    stakeholders: list[dict[str, Any]],
    evidence: list[dict[str, Any]] | None = None,
    risks: list[dict[str, Any]] | None = None,
) -> str:
    content: dict[str, Any] = {"answers": answers, "stakeholders": stakeholders}
    # Only revisions with files (or risks) carry the key, so every earlier revision's hash
    # still verifies.
    if evidence:
        content["evidence"] = evidence
    if risks:
        content["risks"] = risks
    return canonical_json(content)


# --- courses ------------------------------------------------------------------------------


@transaction.atomic
def course_create(
    *,
    actor: Any,
    title: str,
    code: str,
    template: LifecycleTemplate,
    term: str = "",
    join_code: str | None = None,
) -> Course:
    """Create a course board; its creator becomes its instructor."""
    if not getattr(actor, "is_authenticated", False):
        raise NotAllowed("Sign in to create a course.")
    if Course.objects.filter(code=code).exists():
        raise IllegalTransition(f"A course with the code {code!r} exists already.")
    if join_code and Course.objects.filter(join_code=join_code).exists():
        raise IllegalTransition("Another course uses that join code.")
    course = Course(title=title, code=code, term=term, template=template)
    if join_code:
        course.join_code = join_code
    course.save(force_insert=True)
    Membership.objects.create(course=course, user=actor, role=Role.INSTRUCTOR)
    audit_record(
        actor=actor,
        verb="course.create",
        obj=course,
        course=course,
        new={"title": title, "code": code, "template": template.pk},
    )
    return course


@transaction.atomic
def course_add_member(*, course: Course, actor: Any, user: Any, role: str) -> Membership:
    """Course staff enrol a person; only an instructor may add staff."""
    role = Role(role)
    if role in STAFF_ROLES and not permissions.is_instructor(actor, course):
        raise NotAllowed("Only an instructor can add course staff.")
    if not permissions.is_course_staff(actor, course):
        raise NotAllowed("Only course staff can enrol people.")
    membership, created = Membership.objects.get_or_create(
        course=course, user=user, defaults={"role": role}
    )
    if not created and membership.role != role:
        old = membership.role
        membership.role = role
        membership.save(update_fields=["role"])
        audit_record(
            actor=actor,
            verb="membership.role_change",
            obj=membership,
            course=course,
            old={"role": old},
            new={"role": role, "user": user.email},
        )
    elif created:
        audit_record(
            actor=actor,
            verb="membership.add",
            obj=membership,
            course=course,
            new={"role": role, "user": user.email},
        )
    return membership


def course_for_join_code(join_code: str) -> Course:
    """The course a join code opens, or the reason it opens none (for a form error)."""
    course = Course.objects.filter(join_code=join_code.strip().upper()).first()
    if course is None:
        raise IllegalTransition("No course has that join code. Check it with your course staff.")
    if course.join_code_expired():
        expired = course.join_code_expires_on
        raise IllegalTransition(
            f"This join code expired on {expired:%d %B %Y}. Ask your course staff for a new one."
        )
    return course


@transaction.atomic
def course_rotate_join_code(*, course: Course, actor: Any) -> Course:
    """Course staff replace a leaked or spent join code: the old one stops working at once."""
    course = Course.objects.select_for_update(of=("self",), no_key=True).get(pk=course.pk)
    if not permissions.is_course_staff(actor, course):
        raise NotAllowed("Only course staff change the join code.")
    old = course.join_code
    code = new_join_code()
    while Course.objects.filter(join_code=code).exists():
        code = new_join_code()
    course.join_code = code
    course.save(update_fields=["join_code"])
    # The old code is dead and may be recorded; the new one stays out of exported trails.
    audit_record(
        actor=actor,
        verb="course.join_code_rotate",
        obj=course,
        course=course,
        old={"join_code": old},
        new={"rotated": True},
    )
    return course


@transaction.atomic
def course_join(*, user: Any, join_code: str) -> Membership:
    """A student joins with the course's join code. Joining twice is harmless. A student an
    uploaded roster put on a team joins that team too."""
    if not getattr(user, "is_authenticated", False):
        raise NotAllowed("Sign in to join a course.")
    course = course_for_join_code(join_code)
    if getattr(user, "email_verified_at", None) is None:
        raise IllegalTransition(
            "Verify your e-mail address before you join a course: follow the link we sent to "
            f"{user.email}, then use the join code again."
        )
    from .models import RosterEntry
    from .rosters import pending_team, place_on_pending_team

    # An instructor's roster of TAs invites them with the join link too: the roster says the
    # role (the address is verified, so the roster's person is the one joining).
    listed = (
        RosterEntry.objects.filter(course=course, email=user.email.lower())
        .values_list("role", flat=True)
        .first()
    )
    role = Role.TA if listed == Role.TA else Role.STUDENT
    # A roster that named this student's team: they join it now (locks taken before writing).
    team = pending_team(course=course, user=user)
    membership, created = Membership.objects.get_or_create(
        course=course, user=user, defaults={"role": role}
    )
    if created:
        audit_record(
            actor=user,
            verb="membership.join",
            obj=membership,
            course=course,
            new={"role": role, "user": user.email, **({"roster": True} if listed else {})},
        )
    if team is not None and membership.role == Role.STUDENT:
        place_on_pending_team(entry=team[0], project=team[1], user=user)
    return membership


# --- projects -----------------------------------------------------------------------------


@transaction.atomic
def project_create(
    *, course: Course, actor: Any, title: str, summary: str = "", members: Iterable[Any] = ()
) -> Project:
    """Start a project on the course's current template version; stage 1 opens."""
    if permissions.course_role(actor, course) != Role.STUDENT:
        raise NotAllowed("Only students of this course can start a project.")
    return _project_start(
        course=course, actor=actor, owner=actor, title=title, summary=summary, members=members
    )


def _project_start(
    *,
    course: Course,
    actor: Any,
    owner: Any,
    title: str,
    summary: str = "",
    members: Iterable[Any] = (),
    audit_extra: Mapping[str, Any] | None = None,
) -> Project:
    """The project of ``owner`` (who created it) and ``members``, started by ``actor``: the
    owner, or course staff forming a team from a roster. The caller holds the permission."""
    title = title.strip()
    if not title:
        raise InvalidAnswers({"title": ["Give the project a title."]})
    team = {owner.pk: owner}
    for member in members:
        team[member.pk] = member
    students = set(
        Membership.objects.filter(course=course, role=Role.STUDENT, user_id__in=team).values_list(
            "user_id", flat=True
        )
    )
    outsiders = [m.email for pk, m in team.items() if pk not in students]
    if outsiders:
        raise InvalidAnswers(
            {"members": [f"Not a student of this course: {', '.join(sorted(outsiders))}."]}
        )
    template = course.template
    project = Project.objects.create(
        course=course, template=template, title=title, summary=summary, created_by=owner
    )
    project.members.set(team.values())
    now = timezone.now()
    definitions = list(template.stages.order_by("order"))
    if not definitions:
        raise IllegalTransition("This course's template has no stages.")
    stages = ProjectStage.objects.bulk_create(
        [
            ProjectStage(
                project=project,
                definition=definition,
                cycle=1,
                status=StageStatus.DRAFTING if i == 0 else StageStatus.LOCKED,
                opened_at=now if i == 0 else None,
            )
            for i, definition in enumerate(definitions)
        ]
    )
    project.current_stage = (
        stages[0] if stages[0].pk else project.stages.get(definition=definitions[0], cycle=1)
    )
    project.save(update_fields=["current_stage"])
    audit_record(
        actor=actor,
        verb="project.create",
        obj=project,
        project=project,
        new={
            "title": title,
            "members": sorted(m.email for m in team.values()),
            "template": f"{template.slug} v{template.version}",
            **(audit_extra or {}),
        },
    )
    return project


def _prefill(definition: Any, revision: StageRevision | None) -> dict[str, Any]:
    if revision is None:
        return {}
    keys = {q.key for q in definition.questions.all()}
    return {k: v for k, v in revision.answers.items() if k in keys}


@transaction.atomic
def project_loop_back(*, project: Project, actor: Any, to_order: int, reason: str) -> Project:
    """From the Iterate stage, open cycle c+1 at stage k: stages k..end reopen prefilled with
    their last approved answers; cycle c stays exactly as it was."""
    project = _lock_project(project.pk)
    _require_member(actor, project)
    _require_active(project)
    current = _lock_current_stage(project)
    if not current.definition.is_iteration:
        raise IllegalTransition("Only the Iterate stage can loop the project back.")
    if current.status in (StageStatus.IN_REVIEW, StageStatus.LOCKED):
        raise IllegalTransition(
            "The Iterate stage is in review; wait for the reviewers' decision before looping back."
        )
    if not reason.strip():
        raise InvalidAnswers({"reason": ["Say why you are looping back: what did you learn?"]})
    definitions = list(project.template.stages.order_by("order").prefetch_related("questions"))
    orders = [d.order for d in definitions]
    if to_order not in orders or to_order >= current.definition.order:
        raise InvalidAnswers({"to_order": ["Choose a stage before the Iterate stage."]})
    targets = current.definition.loop_targets
    if targets and not any(d.order == to_order and d.key in targets for d in definitions):
        raise InvalidAnswers(
            {"to_order": ["This template's Iterate stage cannot loop back there."]}
        )

    # The last approved revision of each stage, from whichever cycle approved it last; by key,
    # since a project migrated to a new template version has new definitions of old stages.
    approved: dict[str, StageRevision] = {}
    for stage in (
        ProjectStage.objects.filter(project=project, status=StageStatus.APPROVED)
        .select_related("current_revision", "definition")
        .order_by("-cycle")
    ):
        if stage.current_revision is not None:
            approved.setdefault(stage.definition.key, stage.current_revision)

    new_cycle = project.cycle + 1
    now = timezone.now()
    reopened = ProjectStage.objects.bulk_create(
        [
            ProjectStage(
                project=project,
                definition=definition,
                cycle=new_cycle,
                status=StageStatus.DRAFTING if definition.order == to_order else StageStatus.LOCKED,
                opened_at=now if definition.order == to_order else None,
                draft_answers=_prefill(definition, approved.get(definition.key)),
                prefilled_from=approved.get(definition.key),
                due_date=None,
            )
            for definition in definitions
            if definition.order >= to_order
        ]
    )
    first = next(s for s in reopened if s.definition.order == to_order)
    if first.pk is None:  # backends without RETURNING on bulk_create
        first = ProjectStage.objects.get(
            project=project, cycle=new_cycle, definition__order=to_order
        )
    old_cycle = project.cycle
    project.cycle = new_cycle
    project.current_stage = first
    project.save(update_fields=["cycle", "current_stage"])
    events.publish(
        events.PROJECT_LOOPED_BACK,
        project=project,
        actor=actor,
        from_stage=current,
        to_stage=first,
        reason=reason.strip(),
    )
    audit_record(
        actor=actor,
        verb="project.loop_back",
        obj=project,
        project=project,
        old={"cycle": old_cycle, "stage": current.definition.key},
        new={"cycle": new_cycle, "stage": first.definition.key, "reason": reason},
    )
    return project


@transaction.atomic
def project_conclude(*, project: Project, actor: Any, outcome: str, reason: str) -> Project:
    """Deployed and monitored, from an approved Iterate stage. 'We should not build this' is a
    legitimate outcome too, but it goes through review: lifecycle.proposals."""
    project = _lock_project(project.pk)
    _require_member(actor, project)
    _require_active(project)
    outcome = Outcome(outcome)
    current = _lock_current_stage(project)
    definition = current.definition
    if outcome == Outcome.DEPLOYED:
        if not (definition.is_iteration and current.status == StageStatus.APPROVED):
            raise IllegalTransition(
                "A project concludes as deployed once its Iterate stage has been approved."
            )
    else:
        # "We should not build this" is a proposal reviewers approve (lifecycle.proposals);
        # no single member ends a project that way.
        raise IllegalTransition(
            "“Not pursued” is proposed to the reviewers with your reasoning, and the project "
            "concludes once they approve it."
        )
    if project.not_pursued_proposals.filter(status__in=OPEN_PROPOSAL_STATUSES).exists():
        raise IllegalTransition(
            "Your proposal not to build this is still open: withdraw it before concluding."
        )
    if not reason.strip():
        raise InvalidAnswers({"reason": ["Give the reason for this outcome."]})
    project.status = ProjectStatus.CONCLUDED
    project.outcome = outcome
    project.outcome_reason = reason.strip()
    project.concluded_at = timezone.now()
    project.save(update_fields=["status", "outcome", "outcome_reason", "concluded_at"])
    events.publish(
        events.PROJECT_CONCLUDED,
        project=project,
        actor=actor,
        outcome=outcome,
        reason=project.outcome_reason,
    )
    audit_record(
        actor=actor,
        verb="project.conclude",
        obj=project,
        project=project,
        old={"status": ProjectStatus.ACTIVE},
        new={
            "status": ProjectStatus.CONCLUDED,
            "outcome": outcome,
            "reason": reason.strip(),
            "stage": definition.key,
            "cycle": project.cycle,
        },
    )
    return project


# --- stages -------------------------------------------------------------------------------


def _check_base_version(stage: ProjectStage, actor: Any, base_version: int) -> None:
    """A submit based on an older version conflicts when someone else changed the draft
    since; what the same person changed meanwhile (their own autosave) is theirs."""
    if base_version == stage.draft_version:
        return
    changed = sorted(k for k, v in stage.draft_changed_at.items() if v > base_version)
    others = [k for k in changed if stage.draft_changed_by.get(k) != actor.pk]
    if base_version > stage.draft_version or others or not changed:
        raise DraftConflict(
            changed_questions=changed,
            current_version=stage.draft_version,
            current_answers=stage.draft_answers,
            updated_by=_updated_by(stage),
            labels={q.key: q.prompt for q in _questions(stage)},
        )


def _updated_by(stage: ProjectStage) -> str:
    return stage.draft_updated_by.name if stage.draft_updated_by else "Someone"


MAX_RESPONSE = 10_000
_UNKNOWN = object()
# A save more versions behind than this reads no history: every question a teammate changed
# since then counts as changed by both sides when the texts differ (the safe side).
MAX_VERSIONS_BEHIND = 200


def _values_at_version(
    project: Project, stage: ProjectStage, base_version: int, keys: Iterable[str]
) -> dict[str, Any]:
    """What ``keys`` held at ``base_version``, read back from the draft saves' audit events
    (each records the old and new value of what it changed, and bumps the version by one)."""
    wanted = set(keys)
    behind = stage.draft_version - base_version
    if not wanted or behind <= 0 or behind > MAX_VERSIONS_BEHIND:
        return {}
    events = (
        AuditEvent.objects.filter(
            project=project,
            verb="stage.draft_save",
            object_type=ProjectStage._meta.label_lower,
            object_id=str(stage.pk),
        )
        .order_by("-seq")
        .values_list("old", "new")[:behind]
    )
    found: dict[str, Any] = {}
    # Newest first: the oldest event after the base version that changed a key has its value
    # at the base version as its "old".
    for old, new in events:
        if not isinstance(new, dict) or not isinstance(old, dict):
            continue
        if (new.get("version") or 0) <= base_version:
            continue
        old_answers = old.get("answers") or {}
        for key in wanted & set((new.get("answers") or {}).keys()):
            found[key] = old_answers.get(key)
    return found


@dataclass(frozen=True)
class DraftSave:
    """What one save did: ``saved`` the questions it changed, ``merged`` the questions a
    teammate changed since the caller's version that were kept as the teammate left them,
    ``invalid`` the questions not saved and why (with ``skip_invalid``)."""

    stage: ProjectStage
    saved: list[str] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)
    invalid: dict[str, list[str]] = field(default_factory=dict)
    merged_by: str = ""


@transaction.atomic
def stage_save_draft(
    *, stage: ProjectStage, actor: Any, answers: Mapping[str, Any], base_version: int
) -> ProjectStage:
    """Save (part of) a draft: see stage_save_draft_merging. Invalid answers save nothing."""
    return stage_save_draft_merging(
        stage=stage, actor=actor, answers=answers, base_version=base_version
    ).stage


@transaction.atomic
def stage_save_draft_merging(
    *,
    stage: ProjectStage,
    actor: Any,
    answers: Mapping[str, Any],
    base_version: int,
    skip_invalid: bool = False,
) -> DraftSave:
    """Save (part of) a draft. ``answers`` holds the questions being saved; others keep their
    saved value. A save based on an older version merges per question: what only a teammate
    changed since stays theirs, what only the caller changed is saved, and a question both
    changed (to different texts) raises DraftConflict naming it, so nothing is overwritten
    silently. With ``skip_invalid`` the valid answers are saved and the invalid ones reported;
    without it an invalid answer saves nothing (InvalidAnswers)."""
    project, stage = _lock_project_and_stage(stage)
    _require_member(actor, project)
    _require_active(project)
    if not stage.is_editable:
        raise IllegalTransition(
            f"{stage.definition.title} is {stage.get_status_display().lower()}: "
            "its draft cannot be edited now."
        )
    questions = _questions(stage)
    labels = {q.key: q.prompt for q in questions}
    if base_version > stage.draft_version:
        raise DraftConflict(
            changed_questions=[],
            current_version=stage.draft_version,
            current_answers=stage.draft_answers,
            updated_by=_updated_by(stage),
            labels=labels,
        )
    cleaned, errors = clean_answers(questions, answers, complete=False)
    if errors and not skip_invalid:
        raise InvalidAnswers(errors)
    current = stage.draft_answers
    since = {k for k, v in stage.draft_changed_at.items() if v > base_version}
    base_values = _values_at_version(project, stage, base_version, since)
    wanted: dict[str, Any] = {}
    conflicts: list[str] = []
    kept_theirs: set[str] = set()
    for key in answers:
        if key in errors:
            continue
        mine = cleaned.get(key)  # None: cleared
        theirs = current.get(key)
        if mine == theirs:
            continue
        if key in since:
            base = base_values.get(key, _UNKNOWN)
            if base is not _UNKNOWN and mine == base:
                kept_theirs.add(key)  # the caller did not touch it; the teammate did
                continue
            if stage.draft_changed_by.get(key) != actor.pk:
                conflicts.append(key)
        wanted[key] = mine
    # Questions a teammate changed since the caller's version that the caller left alone.
    merged_keys = sorted(
        k for k in since if k not in wanted and stage.draft_changed_by.get(k) != actor.pk
    )
    merged = dict(current)
    for key, value in wanted.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    if conflicts:
        order = [q.key for q in questions]
        raise DraftConflict(
            changed_questions=sorted(conflicts, key=lambda k: order.index(k) if k in order else 0),
            current_version=stage.draft_version,
            current_answers=current,
            updated_by=_updated_by(stage),
            labels=labels,
            merged_answers=merged,
            merged_questions=[k for k in merged_keys if k not in conflicts],
        )
    invalid = {k: v for k, v in errors.items()}
    changed_keys = sorted(k for k in set(merged) | set(current) if merged.get(k) != current.get(k))
    merged_by = _updated_by(stage) if merged_keys else ""
    if not changed_keys:
        return DraftSave(stage, [], merged_keys, invalid, merged_by)
    old_values = {k: current.get(k) for k in changed_keys}
    stage.draft_version += 1
    stage.draft_answers = merged
    stage.draft_changed_at = {
        **stage.draft_changed_at,
        **dict.fromkeys(changed_keys, stage.draft_version),
    }
    stage.draft_changed_by = {
        **stage.draft_changed_by,
        **dict.fromkeys(changed_keys, actor.pk),
    }
    stage.draft_updated_by = actor
    stage.draft_updated_at = timezone.now()
    stage.save(
        update_fields=[
            "draft_answers",
            "draft_version",
            "draft_changed_at",
            "draft_changed_by",
            "draft_updated_by",
            "draft_updated_at",
        ]
    )
    audit_record(
        actor=actor,
        verb="stage.draft_save",
        obj=stage,
        project=project,
        old={"version": base_version, "answers": old_values},
        new={"version": stage.draft_version, "answers": {k: merged.get(k) for k in changed_keys}},
    )
    return DraftSave(stage, changed_keys, merged_keys, invalid, merged_by)


@transaction.atomic
def stage_submit(
    *,
    stage: ProjectStage,
    actor: Any,
    base_version: int | None = None,
    response: str = "",
    thread_responses: Mapping[int, str] | None = None,
    editorial: bool = False,
) -> StageRevision:
    """Freeze the draft into a new revision and send the stage to review. ``response`` (and
    per open thread, ``thread_responses``) is the team's answer to the reviewers' request for
    changes; the review layer posts the per-thread ones to their threads."""
    project, stage = _lock_project_and_stage(stage)
    _require_member(actor, project)
    _require_active(project)
    if stage.status not in (StageStatus.DRAFTING, StageStatus.CHANGES_REQUESTED):
        raise IllegalTransition(
            f"{stage.definition.title} is {stage.get_status_display().lower()}; only a stage "
            "being drafted or with changes requested can be submitted."
        )
    if base_version is not None:
        _check_base_version(stage, actor, base_version)
    answers, errors = clean_answers(_questions(stage), stage.draft_answers, complete=True)
    stakeholders: list[dict[str, Any]] = []
    if stage.definition.requires_stakeholders:
        stakeholders = [s.snapshot() for s in project.stakeholders.order_by("created_at", "pk")]
        if not stakeholders:
            errors["__all__"] = [
                "Add at least one stakeholder to the register: who is affected, and who is "
                'the "we" deciding?'
            ]
    if errors:
        raise InvalidAnswers(errors)
    response = response.strip()
    replies = {str(k): v.strip() for k, v in (thread_responses or {}).items() if v.strip()}
    if len(response) > MAX_RESPONSE or any(len(v) > MAX_RESPONSE for v in replies.values()):
        errors["response"] = [f"Keep the response under {MAX_RESPONSE:,} characters."]
    if errors:
        raise InvalidAnswers(errors)
    number = (stage.revisions.aggregate(n=Max("number"))["n"] or 0) + 1
    evidence = attachments.frozen_attachments(stage)
    risks = [r.snapshot() for r in project.risks.prefetch_related("stakeholders").order_by("pk")]
    content = revision_content(answers, stakeholders, evidence, risks)
    revision = StageRevision.objects.create(
        stage=stage,
        number=number,
        answers=answers,
        stakeholders=stakeholders,
        evidence=evidence,
        risks=risks,
        content_sha256=sha256_hex(content),
        created_by=actor,
        editorial=editorial and number > 1,
        response_to_reviewers=response,
        thread_responses=replies,
    )
    old_status = _move(stage, StageStatus.IN_REVIEW)
    stage.current_revision = revision
    stage.submitted_at = revision.created_at
    stage.save(update_fields=["status", "current_revision", "submitted_at"])
    events.publish(
        events.STAGE_SUBMITTED,
        stage=stage,
        revision=revision,
        actor=actor,
        resubmission=old_status == StageStatus.CHANGES_REQUESTED,
    )
    audit_record(
        actor=actor,
        verb="stage.submit",
        obj=stage,
        project=project,
        old={"status": old_status},
        new={
            "status": stage.status,
            "revision": number,
            "sha256": revision.content_sha256,
            **(
                {"evidence": [{"name": f["name"], "sha256": f["sha256"]} for f in evidence]}
                if evidence
                else {}
            ),
            **({"editorial": True} if revision.editorial else {}),
            **({"response": response} if response else {}),
            **({"thread_responses": replies} if replies else {}),
        },
    )
    # After the submission's own event: the review layer may find approvals of an earlier
    # revision that carry (a stage's dismissal rule) and approve the stage at once.
    events.publish(events.REVISION_RECORDED, stage=stage, revision=revision, actor=actor)
    return revision


def _require_current_revision(stage: ProjectStage, revision: StageRevision) -> None:
    if revision.stage_id != stage.pk or stage.current_revision_id != revision.pk:
        current = stage.current_revision.number if stage.current_revision else None
        raise IllegalTransition(
            f"Revision {revision.number} has been superseded by revision {current}; "
            "decisions count only on the current revision."
        )


def stage_mark_approved(
    *,
    stage: ProjectStage,
    revision: StageRevision,
    actor: Any,
    override_justification: str = "",
    gate_summary: Mapping[str, Any] | None = None,
    already_locked: bool = False,
) -> ProjectStage:
    """Approve the stage on ``revision`` and open the next one.

    The review layer calls this in the same transaction as the decision that satisfied the
    gate. With ``override_justification`` an instructor approves without the quorum; that is
    flagged in the audit trail forever.

    ``already_locked``: the caller holds the row locks of ``stage`` and ``stage.project`` in
    this transaction (taken in this module's order, project first) and read both, the team
    included, under them; reading them again would only cost queries.
    """
    if already_locked:
        if not transaction.get_connection().in_atomic_block:
            raise RuntimeError("already_locked needs the caller's transaction.")
        # Inside the caller's transaction, without a savepoint of its own (two statements
        # fewer): whatever this raises rolls the caller's whole transaction back.
        with transaction.atomic(savepoint=False):
            return _mark_approved(
                stage.project, stage, revision, actor, override_justification, gate_summary
            )
    with transaction.atomic():
        project, stage = _lock_project_and_stage(stage)
        return _mark_approved(project, stage, revision, actor, override_justification, gate_summary)


def _mark_approved(
    project: Project,
    stage: ProjectStage,
    revision: StageRevision,
    actor: Any,
    override_justification: str,
    gate_summary: Mapping[str, Any] | None,
) -> ProjectStage:
    _require_active(project)
    _require_not_member(actor, project)
    justification = override_justification.strip()
    if override_justification and not justification:
        raise InvalidAnswers({"justification": ["An override needs a justification."]})
    if justification and not permissions.is_instructor(actor, project.course):
        raise NotAllowed("Only an instructor of this course can override a gate.")
    if stage.status != StageStatus.IN_REVIEW:
        raise IllegalTransition(
            f"{stage.definition.title} is {stage.get_status_display().lower()}, not in review."
        )
    _require_current_revision(stage, revision)
    old_status = _move(stage, StageStatus.APPROVED)
    stage.approved_at = timezone.now()
    stage.approved_by_override = bool(justification)
    stage.override_justification = justification
    stage.save(
        update_fields=["status", "approved_at", "approved_by_override", "override_justification"]
    )

    next_stage = (
        ProjectStage.objects.select_for_update(of=("self",), no_key=True)
        .select_related("definition")
        .filter(
            project=project,
            cycle=stage.cycle,
            # A stage kept as history when the project migrated to another template version
            # is never reopened.
            definition__template_id=project.template_id,
            definition__order__gt=stage.definition.order,
        )
        .order_by("definition__order")
        .first()
    )
    if next_stage is not None:
        _move(next_stage, StageStatus.DRAFTING)
        next_stage.opened_at = stage.approved_at
        next_stage.save(update_fields=["status", "opened_at"])
        project.current_stage = next_stage
        project.save(update_fields=["current_stage"])
    events.publish(
        events.STAGE_APPROVED,
        stage=stage,
        revision=revision,
        actor=actor,
        next_stage=next_stage,
        override=bool(justification),
    )
    audit_record(
        actor=actor,
        verb="stage.override_approve" if justification else "stage.approve",
        obj=stage,
        project=project,
        old={"status": old_status},
        new={
            "status": stage.status,
            "revision": revision.number,
            "sha256": revision.content_sha256,
            "opened": next_stage.definition.key if next_stage else None,
            **({"justification": justification} if justification else {}),
            **({"gate": dict(gate_summary)} if gate_summary else {}),
        },
        flagged=bool(justification),
    )
    return stage


@transaction.atomic
def stage_request_changes(
    *, stage: ProjectStage, revision: StageRevision, actor: Any, reason: str
) -> ProjectStage:
    """A reviewer's request for changes sends the stage back to the team."""
    project, stage = _lock_project_and_stage(stage)
    _require_active(project)
    _require_not_member(actor, project)
    if not reason.strip():
        raise InvalidAnswers({"reason": ["Say what needs to change."]})
    if stage.status != StageStatus.IN_REVIEW:
        raise IllegalTransition(
            f"{stage.definition.title} is {stage.get_status_display().lower()}, not in review."
        )
    _require_current_revision(stage, revision)
    old_status = _move(stage, StageStatus.CHANGES_REQUESTED)
    stage.save(update_fields=["status"])
    events.publish(
        events.STAGE_CHANGES_REQUESTED,
        stage=stage,
        revision=revision,
        actor=actor,
        reason=reason.strip(),
    )
    audit_record(
        actor=actor,
        verb="stage.request_changes",
        obj=stage,
        project=project,
        old={"status": old_status},
        new={"status": stage.status, "revision": revision.number, "reason": reason.strip()},
    )
    return stage


@transaction.atomic
def stage_set_due_date(
    *, stage: ProjectStage, actor: Any, due_date: dt.date | None
) -> ProjectStage:
    project, stage = _lock_project_and_stage(stage)
    if not permissions.is_course_staff(actor, project.course):
        raise NotAllowed("Only course staff set due dates.")
    old = stage.due_date
    if old == due_date:
        return stage
    stage.due_date = due_date
    stage.save(update_fields=["due_date"])
    audit_record(
        actor=actor,
        verb="stage.set_due_date",
        obj=stage,
        project=project,
        old={"due_date": old},
        new={"due_date": due_date},
    )
    return stage


# --- stakeholder register -----------------------------------------------------------------


def _clean_stakeholder(fields: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(fields) - set(STAKEHOLDER_FIELDS)
    if unknown:
        raise InvalidAnswers({k: ["Not a stakeholder field."] for k in sorted(unknown)})
    cleaned = {k: v for k, v in fields.items()}
    errors: dict[str, list[str]] = {}
    if "name" in cleaned:
        cleaned["name"] = str(cleaned["name"]).strip()
        if not cleaned["name"]:
            errors["name"] = ["Name the stakeholder or group."]
        elif len(cleaned["name"]) > 200:
            errors["name"] = ["Keep the name under 200 characters."]
    if "kind" in cleaned and cleaned["kind"] not in StakeholderKind.values:
        errors["kind"] = ["Choose a kind of stakeholder."]
    if "consulted" in cleaned:
        cleaned["consulted"] = bool(cleaned["consulted"])
    for key in ("interests", "possible_harms", "possible_benefits", "consultation"):
        if key in cleaned:
            cleaned[key] = str(cleaned[key] or "")
    if errors:
        raise InvalidAnswers(errors)
    return cleaned


@transaction.atomic
def stakeholder_add(*, project: Project, actor: Any, **fields: Any) -> Stakeholder:
    project = _lock_project(project.pk)
    _require_member(actor, project)
    _require_active(project)
    cleaned = _clean_stakeholder(fields)
    if "name" not in cleaned or "kind" not in cleaned:
        raise InvalidAnswers({"name": ["Name the stakeholder and choose its kind."]})
    stakeholder = Stakeholder.objects.create(project=project, **cleaned)
    audit_record(
        actor=actor,
        verb="stakeholder.add",
        obj=stakeholder,
        project=project,
        new=stakeholder.snapshot(),
    )
    return stakeholder


@transaction.atomic
def stakeholder_update(*, stakeholder: Stakeholder, actor: Any, **fields: Any) -> Stakeholder:
    project = _lock_project(stakeholder.project_id)
    _require_member(actor, project)
    _require_active(project)
    stakeholder = Stakeholder.objects.select_for_update(no_key=True).get(pk=stakeholder.pk)
    cleaned = _clean_stakeholder(fields)
    old = stakeholder.snapshot()
    for key, value in cleaned.items():
        setattr(stakeholder, key, value)
    new = stakeholder.snapshot()
    if old == new:
        return stakeholder
    stakeholder.updated_at = timezone.now()
    stakeholder.save(update_fields=[*cleaned, "updated_at"])
    changed = [k for k in new if old[k] != new[k]]
    audit_record(
        actor=actor,
        verb="stakeholder.update",
        obj=stakeholder,
        project=project,
        old={k: old[k] for k in changed},
        new={k: new[k] for k in changed},
    )
    return stakeholder


@transaction.atomic
def stakeholder_remove(*, stakeholder: Stakeholder, actor: Any) -> None:
    project = _lock_project(stakeholder.project_id)
    _require_member(actor, project)
    _require_active(project)
    stakeholder = Stakeholder.objects.select_for_update(no_key=True).get(pk=stakeholder.pk)
    old = stakeholder.snapshot()
    audit_record(actor=actor, verb="stakeholder.remove", obj=stakeholder, project=project, old=old)
    stakeholder.delete()


# --- inviting students --------------------------------------------------------------------


@transaction.atomic
def course_invite_students(*, course: Course, actor: Any, emails: Iterable[str]) -> list[str]:
    """Course staff invite students by e-mail: each address gets the course's join link.

    The e-mails go out on commit, so an invitation whose audit event rolled back sends nothing.
    Returns the addresses invited (lower-case, each once, in the order given)."""
    if not permissions.is_course_staff(actor, course):
        raise NotAllowed("Only course staff can invite students.")
    addresses = list(dict.fromkeys(e.strip().lower() for e in emails if e and e.strip()))
    if not addresses:
        raise InvalidAnswers({"emails": ["Enter at least one e-mail address."]})
    outgoing = _course_invitation_messages(course=course, inviter=actor, emails=addresses)
    audit_record(
        actor=actor,
        verb="course.invite",
        obj=course,
        course=course,
        new={"emails": addresses, "role": Role.STUDENT},
    )
    transaction.on_commit(lambda: _send_course_invitations(outgoing))
    return addresses


def _course_invitation_messages(*, course: Course, inviter: Any, emails: list[str]) -> list[Any]:
    """One message per address (plain text with an HTML alternative): nobody sees who else
    was invited."""
    from urllib.parse import urlencode

    from django.conf import settings
    from django.core.mail import EmailMultiAlternatives
    from django.template.loader import render_to_string
    from django.urls import reverse

    join_url = (
        f"{settings.SITE_URL.rstrip('/')}{reverse('lifecycle:course_join')}"
        f"?{urlencode({'code': course.join_code})}"
    )
    context = {
        "course": course,
        "inviter": inviter,
        "join_url": join_url,
        "join_code": course.join_code,
        "site_url": settings.SITE_URL.rstrip("/"),
    }
    # A header may not contain a line break; a title pasted into the admin might.
    subject = " ".join(f"Join {course.title} on the Lifecycle Review Board".split())
    text = render_to_string("lifecycle/emails/course_invitation.txt", context)
    html = render_to_string("lifecycle/emails/course_invitation.html", context)
    messages = []
    for address in emails:
        message = EmailMultiAlternatives(subject=subject, body=text, to=[address])
        message.attach_alternative(html, "text/html")
        messages.append(message)
    return messages


def _send_course_invitations(outgoing: list[Any]) -> None:
    """Runs after commit: a mail server that is down must not turn a recorded invitation into
    an error page, so failures are logged for the operator (the join code still works)."""
    import logging
    import smtplib

    from django.core.mail import get_connection

    try:
        with get_connection() as connection:
            connection.send_messages(outgoing)
    except (OSError, smtplib.SMTPException):
        logging.getLogger(__name__).exception(
            "Could not send %d course invitation e-mail(s).", len(outgoing)
        )


COURSE_SETTING_FIELDS = (
    "title",
    "term",
    "allows_experts",
    "expert_invitations",
    "team_experts_need_confirmation",
    "not_pursued_gate",
    "invitation_expiry_days",
    "join_code_expires_on",
    "reminder_interval_days",
    "reminder_limit",
    "independent_review",
    "independent_review_stages",
    "anonymous_reviewers",
)


@transaction.atomic
def course_update_settings(*, course: Course, actor: Any, **fields: Any) -> Course:
    """Instructors change a course's settings; a gate policy the new settings cannot meet is
    refused with the reason."""
    from .policy import course_policy_errors, independent_review_errors

    course = (
        Course.objects.select_for_update(of=("self",), no_key=True)
        .select_related("template")
        .get(pk=course.pk)
    )
    if not permissions.is_instructor(actor, course):
        raise NotAllowed("Only an instructor changes the course's settings.")
    unknown = set(fields) - set(COURSE_SETTING_FIELDS)
    if unknown:
        raise InvalidAnswers({k: ["Not a course setting."] for k in sorted(unknown)})
    old = {k: getattr(course, k) for k in fields}
    for key, value in fields.items():
        setattr(course, key, value)
    errors = course_policy_errors(course, course.template) + independent_review_errors(course)
    if errors:
        raise InvalidAnswers({"__all__": errors})
    changed = [k for k in fields if old[k] != getattr(course, k)]
    if not changed:
        return course
    course.save(update_fields=changed)
    audit_record(
        actor=actor,
        verb="course.settings",
        obj=course,
        course=course,
        old={k: old[k] for k in changed},
        new={k: getattr(course, k) for k in changed},
    )
    return course
