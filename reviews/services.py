"""Every write of the review layer. Same rules as lifecycle.services: one transaction, the
project row locked first, permission and state checked, an audit event last (here or in the
lifecycle service this calls)."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models import prefetch_related_objects
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import User
from lifecycle import permissions as lifecycle_permissions
from lifecycle import services as lifecycle_services
from lifecycle.audit import audit_batch, audit_record
from lifecycle.errors import IllegalTransition, InvalidAnswers, NotAllowed
from lifecycle.models import (
    AuditEvent,
    Course,
    ExpertInvitationPolicy,
    Membership,
    Project,
    ProjectStage,
    StageDefinition,
    StageRevision,
    StageStatus,
)

from . import decision_parts, events, permissions
from .gate import (
    DISMISS_ALL,
    GatePolicy,
    GateResult,
    RevisionDelta,
    RiskTrace,
    Vote,
    evaluate_gate,
)
from .models import (
    AssignmentState,
    Comment,
    ConflictDeclaration,
    Decision,
    DecisionOutcome,
    EditorialAcceptance,
    Invitation,
    ProposalDecision,
    ReviewAssignment,
    ReviewerRole,
)

if TYPE_CHECKING:
    from django.http import QueryDict

log = logging.getLogger(__name__)

TOKEN_BYTES = 32  # 256 bits


def invitation_expiry(course: Course, *, start: dt.datetime | None = None) -> dt.datetime:
    """When a link sent now (or at ``start``) stops working: the course's full period."""
    return (start or timezone.now()) + dt.timedelta(days=course.invitation_expiry_days)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _lock_project(project_id: int) -> Project:
    # NO KEY UPDATE: PostgreSQL checks Django's deferred foreign keys at commit with KEY SHARE
    # locks, after the audit chain's lock is taken; a plain FOR UPDATE here would block those
    # checks and deadlock against any transaction that references this project.
    return (
        Project.objects.select_for_update(of=("self",), no_key=True)
        .select_related("course")
        .get(pk=project_id)
    )


def _require_staff(actor: Any, course: Course) -> None:
    if not lifecycle_permissions.is_course_staff(actor, course):
        raise NotAllowed("Only course staff can do that.")


# --- assignments ----------------------------------------------------------------------------


@transaction.atomic
def assignment_create(
    *,
    project: Project,
    actor: Any,
    reviewer: User,
    role: str,
    stage_definition: StageDefinition | None = None,
    due_date: dt.date | None = None,
    expertise_tags: Iterable[str] = (),
) -> ReviewAssignment:
    project = _lock_project(project.pk)
    _require_staff(actor, project.course)
    role = ReviewerRole(role)
    if lifecycle_permissions.is_project_member(reviewer, project):
        raise InvalidAnswers({"reviewer": ["Nobody reviews their own project."]})
    if role == ReviewerRole.STAFF and not lifecycle_permissions.is_course_staff(
        reviewer, project.course
    ):
        raise InvalidAnswers({"reviewer": [f"{reviewer.email} is not on this course's staff."]})
    if role == ReviewerRole.EXPERT and not project.course.allows_experts:
        raise InvalidAnswers({"role": [f"{project.course.title} uses no outside domain experts."]})
    if role == ReviewerRole.EXPERT and lifecycle_permissions.is_course_member(
        reviewer, project.course
    ):
        raise InvalidAnswers(
            {
                "reviewer": [
                    f"{reviewer.email} is in this course: a domain expert comes from outside."
                ]
            }
        )
    if stage_definition is not None and stage_definition.template_id != project.template_id:
        raise InvalidAnswers({"stage_definition": ["That stage is not in this project."]})
    existing = ReviewAssignment.objects.filter(
        project=project,
        reviewer=reviewer,
        stage_definition=stage_definition,
        state=AssignmentState.ACTIVE,
    ).first()
    if existing is not None:
        raise InvalidAnswers({"reviewer": [f"{reviewer.name} is already assigned here."]})
    assignment = ReviewAssignment.objects.create(
        project=project,
        reviewer=reviewer,
        role=role,
        stage_definition=stage_definition,
        due_date=due_date,
        assigned_by=actor,
        expertise_tags=clean_expertise_tags(expertise_tags),
    )
    events.publish(events.ASSIGNMENT_CREATED, assignment=assignment)
    audit_record(
        actor=actor,
        verb="review.assign",
        obj=assignment,
        project=project,
        new={
            **({"expertise": assignment.expertise_tags} if assignment.expertise_tags else {}),
            "reviewer": reviewer.email,
            "role": role,
            "due_date": due_date,
            "stage": stage_definition.key if stage_definition else None,
        },
    )
    return assignment


@transaction.atomic
def assignment_withdraw(*, assignment: ReviewAssignment, actor: Any) -> ReviewAssignment:
    project = _lock_project(assignment.project_id)
    _require_staff(actor, project.course)
    assignment = ReviewAssignment.objects.select_for_update(no_key=True).get(pk=assignment.pk)
    if assignment.state != AssignmentState.ACTIVE:
        raise IllegalTransition("This assignment was already withdrawn.")
    assignment.state = AssignmentState.WITHDRAWN
    assignment.withdrawn_at = timezone.now()
    assignment.save(update_fields=["state", "withdrawn_at"])
    audit_record(
        actor=actor,
        verb="review.withdraw",
        obj=assignment,
        project=project,
        old={"state": AssignmentState.ACTIVE, "reviewer": assignment.reviewer.email},
        new={"state": AssignmentState.WITHDRAWN},
    )
    return assignment


@transaction.atomic
def assignment_reassign(
    *, assignment: ReviewAssignment, actor: Any, reviewer: User
) -> ReviewAssignment:
    assignment_withdraw(assignment=assignment, actor=actor)
    return assignment_create(
        project=assignment.project,
        actor=actor,
        reviewer=reviewer,
        role=assignment.role,
        stage_definition=assignment.stage_definition,
        due_date=assignment.due_date,
    )


# --- invitations ----------------------------------------------------------------------------


def _send_invitation(invitation: Invitation, token: str) -> None:
    link = settings.SITE_URL.rstrip("/") + reverse("reviews:invitation_accept", args=[token])
    context = {
        "invitation": invitation,
        "link": link,
        "course": invitation.course,
        "project": invitation.project,
        "stage": invitation.stage_definition,
        "inviter": invitation.invited_by,
    }
    subject = f"Review invitation: {invitation.project or invitation.course}"
    if invitation.stage_definition:
        subject += f" — {invitation.stage_definition.title}"
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string("reviews/emails/invitation.txt", context),
        to=[invitation.email],
    )
    message.attach_alternative(
        render_to_string("reviews/emails/invitation.html", context), "text/html"
    )
    try:
        message.send()
    except Exception as exc:
        # Only the token's hash is stored, so this link is gone: the invitation stays unsent
        # and whoever sent it (or course staff) can resend it with a fresh token.
        log.warning("invitation %s to %s not sent: %s", invitation.pk, invitation.email, exc)
        return
    Invitation.objects.filter(pk=invitation.pk).update(sent_at=timezone.now())


COURSE_MEMBER_REFUSED = (
    "{email} belongs to a member of {course}: course members cannot become a team's reviewer "
    "through an invitation. Staff review as staff; invite an expert from outside the course."
)


def _check_invitee(email: str, *, course: Course, project: Project | None) -> None:
    """A domain expert is independent of the course: no team member, no student, no staff."""
    if project is not None and project.members.filter(email__iexact=email).exists():
        raise InvalidAnswers({"email": ["Team members cannot review their own project."]})
    if Membership.objects.filter(course=course, user__email__iexact=email).exists():
        raise InvalidAnswers(
            {"email": [COURSE_MEMBER_REFUSED.format(email=email, course=course.title)]}
        )


def clean_expertise_tags(tags: Iterable[str]) -> list[str]:
    """Expertise tags as owners name them: lower-case slugs, each once, at most ten."""
    cleaned = list(dict.fromkeys(slugify(t.strip()) for t in tags if t and t.strip()))
    if len(cleaned) > 10 or any(len(t) > 60 for t in cleaned):
        raise InvalidAnswers({"expertise_tags": ["At most ten tags of up to 60 characters."]})
    return [t for t in cleaned if t]


@transaction.atomic
def invitation_create(
    *,
    actor: Any,
    course: Course,
    email: str,
    project: Project | None = None,
    stage_definition: StageDefinition | None = None,
    name: str = "",
    message: str = "",
    due_date: dt.date | None = None,
    expertise_tags: list[str] | tuple[str, ...] = (),
) -> tuple[Invitation, str]:
    """Invite a domain expert by e-mail. Returns the invitation and its token, which exists
    nowhere else than in the e-mail: the database keeps its hash."""
    if project is not None:
        project = _lock_project(project.pk)
        course = project.course
    if stage_definition is not None and (
        project is None or stage_definition.template_id != project.template_id
    ):
        raise InvalidAnswers({"stage_definition": ["Choose a stage of this project."]})
    if not course.allows_experts:
        raise NotAllowed(
            f"{course.title} uses no outside domain experts; an instructor can change that in "
            "the course's review settings."
        )
    is_staff = lifecycle_permissions.is_course_staff(actor, course)
    needs_confirmation = False
    if not is_staff:
        if project is None or not lifecycle_permissions.is_project_member(actor, project):
            raise NotAllowed("Only course staff or the project's team can invite reviewers.")
        if course.expert_invitations == ExpertInvitationPolicy.NOT_ALLOWED:
            raise NotAllowed("This course does not let teams invite domain experts.")
        needs_confirmation = course.expert_invitations == ExpertInvitationPolicy.AFTER_CONFIRMATION
    email = email.strip().lower()
    _check_invitee(email, course=course, project=project)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    invitation = Invitation.objects.create(
        email=email,
        name=name.strip(),
        token_hash=hash_token(token),
        course=course,
        project=project,
        stage_definition=stage_definition,
        message=message.strip(),
        due_date=due_date,
        invited_by=actor,
        needs_confirmation=needs_confirmation,
        expires_at=invitation_expiry(course),
        expertise_tags=clean_expertise_tags(expertise_tags),
    )
    audit_record(
        actor=actor,
        verb="invitation.create",
        obj=invitation,
        course=course,
        project=project,
        new={
            "email": email,
            "scope": invitation.scope,
            "stage": stage_definition.key if stage_definition else None,
            "expires_at": invitation.expires_at,
            "needs_confirmation": needs_confirmation,
            "expertise": invitation.expertise_tags,
        },
    )
    if needs_confirmation:
        events.publish(events.INVITATION_AWAITING_CONFIRMATION, invitation=invitation)
    # An invitation awaiting confirmation is not sent: confirming issues and sends a fresh token.
    if not needs_confirmation:
        transaction.on_commit(lambda: _send_invitation(invitation, token))
    return invitation, token


@transaction.atomic
def invitation_confirm(*, invitation: Invitation, actor: Any) -> tuple[Invitation, str]:
    """Course staff confirm a team's invitation; a fresh token is e-mailed."""
    invitation = (
        Invitation.objects.select_for_update(of=("self",), no_key=True)
        .select_related("course")
        .get(pk=invitation.pk)
    )
    _require_staff(actor, invitation.course)
    if invitation.state() != "awaiting_confirmation":
        raise IllegalTransition("This invitation is not waiting for confirmation.")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    invitation.token_hash = hash_token(token)
    invitation.confirmed_by = actor
    invitation.confirmed_at = timezone.now()
    # The expert gets the course's full period from the day the link actually goes out.
    invitation.expires_at = invitation_expiry(invitation.course, start=invitation.confirmed_at)
    invitation.save(update_fields=["token_hash", "confirmed_by", "confirmed_at", "expires_at"])
    audit_record(
        actor=actor,
        verb="invitation.confirm",
        obj=invitation,
        course=invitation.course,
        project=invitation.project,
        new={"email": invitation.email},
    )
    transaction.on_commit(lambda: _send_invitation(invitation, token))
    return invitation, token


def _lock_invitation_for_sender(invitation: Invitation, actor: Any, action: str) -> Invitation:
    """Lock only the invitation row (its course is read, not locked: see _lock_project)."""
    invitation = (
        Invitation.objects.select_for_update(of=("self",), no_key=True)
        .select_related("course")
        .get(pk=invitation.pk)
    )
    is_inviter = invitation.invited_by_id == getattr(actor, "pk", None)
    if not (is_inviter or lifecycle_permissions.is_course_staff(actor, invitation.course)):
        raise NotAllowed(f"Only course staff or whoever sent it can {action} an invitation.")
    return invitation


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, actor: Any) -> Invitation:
    invitation = _lock_invitation_for_sender(invitation, actor, "revoke")
    if invitation.state() in ("accepted", "revoked"):
        raise IllegalTransition(f"This invitation was already {invitation.state()}.")
    invitation.revoked_at = timezone.now()
    invitation.revoked_by = actor
    invitation.save(update_fields=["revoked_at", "revoked_by"])
    audit_record(
        actor=actor,
        verb="invitation.revoke",
        obj=invitation,
        course=invitation.course,
        project=invitation.project,
        new={"email": invitation.email},
    )
    return invitation


class InvitationUnusable(IllegalTransition):
    """Expired, used, revoked, unconfirmed or unknown: the page says which, never why not."""

    def __init__(self, state: str) -> None:
        texts = {
            "unknown": "This invitation link is not valid. Check that you copied all of it.",
            "expired": "This invitation has expired. Ask whoever invited you for a new one.",
            "accepted": "This invitation has already been used. Sign in to reach your reviews.",
            "revoked": "This invitation was withdrawn by the course.",
            "awaiting_confirmation": "This invitation is waiting for course staff to confirm it.",
        }
        super().__init__(texts.get(state, "This invitation cannot be used."))
        self.state = state


def invitation_for_token(token: str) -> Invitation | None:
    return (
        Invitation.objects.select_related("course", "project", "stage_definition", "invited_by")
        .filter(token_hash=hash_token(token))
        .first()
    )


def _lock_usable_invitation(token: str) -> Invitation:
    found = Invitation.objects.filter(token_hash=hash_token(token)).values_list("pk", flat=True)
    pk = found.first()
    if pk is None:
        raise InvitationUnusable("unknown")
    invitation = (
        Invitation.objects.select_for_update(of=("self",), no_key=True)
        .select_related("course", "project", "stage_definition")
        .get(pk=pk)
    )
    state = invitation.state()
    if state != "pending":
        raise InvitationUnusable(state)
    return invitation


class WrongInvitee(NotAllowed):
    """Signed in as someone other than the invited address: the link is not theirs."""


def invitation_addressed_to(invitation: Invitation, user: Any) -> bool:
    return (getattr(user, "email", "") or "").lower() == invitation.email.lower()


def _proposed_by_team(invitation: Invitation) -> bool:
    """A team's invitation that no staff member has vouched for (by confirming it)."""
    if invitation.confirmed_at is not None:
        return False
    return not lifecycle_permissions.is_course_staff(invitation.invited_by, invitation.course)


def _accept(invitation: Invitation, user: User) -> ReviewAssignment | None:
    # Links get forwarded and leak: only the invited address may accept, and never a member
    # of the course (a student of another team included), whoever forwarded it to them.
    if not invitation_addressed_to(invitation, user):
        raise WrongInvitee(
            f"This invitation was sent to {invitation.email}, and you are signed in as "
            f"{user.email}. Only the person it was sent to can accept it."
        )
    if invitation.project is not None and lifecycle_permissions.is_project_member(
        user, invitation.project
    ):
        raise NotAllowed("Team members cannot review their own project.")
    if lifecycle_permissions.is_course_member(user, invitation.course):
        raise NotAllowed(
            COURSE_MEMBER_REFUSED.format(email=user.email, course=invitation.course.title)
        )
    now = timezone.now()
    invitation.accepted_at = now
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    if user.email_verified_at is None:
        # The link reached this mailbox: that is what a verification e-mail would prove.
        user.email_verified_at = now
        user.save(update_fields=["email_verified_at"])
    assignment = None
    needs_confirmation = invitation.course.team_experts_need_confirmation and _proposed_by_team(
        invitation
    )
    if invitation.project is not None:
        assignment = ReviewAssignment.objects.filter(
            project=invitation.project,
            reviewer=user,
            stage_definition=invitation.stage_definition,
            state=AssignmentState.ACTIVE,
        ).first() or ReviewAssignment.objects.create(
            project=invitation.project,
            reviewer=user,
            role=ReviewerRole.EXPERT,
            stage_definition=invitation.stage_definition,
            due_date=invitation.due_date,
            assigned_by=invitation.invited_by,
            invitation=invitation,
            needs_confirmation=needs_confirmation,
            confirmed_by=invitation.confirmed_by,
            confirmed_at=invitation.confirmed_at,
            expertise_tags=list(invitation.expertise_tags),
        )
        events.publish(events.ASSIGNMENT_CREATED, assignment=assignment)
        if assignment.awaiting_confirmation:
            events.publish(events.EXPERT_AWAITING_CONFIRMATION, assignment=assignment)
    audit_record(
        actor=user,
        verb="invitation.accept",
        obj=invitation,
        course=invitation.course,
        project=invitation.project,
        new={
            "email": invitation.email,
            "accepted_by": user.email,
            "assignment": assignment.pk if assignment else None,
            "needs_confirmation": needs_confirmation,
        },
    )
    return assignment


@transaction.atomic
def invitation_accept(*, token: str, user: User) -> tuple[Invitation, ReviewAssignment | None]:
    """A signed-in person accepts: they become the expert reviewer the invitation names."""
    if not getattr(user, "is_authenticated", False):
        raise NotAllowed("Sign in to accept the invitation.")
    invitation = _lock_usable_invitation(token)
    return invitation, _accept(invitation, user)


@transaction.atomic
def invitation_accept_new_user(
    *, token: str, display_name: str, password: str
) -> tuple[User, Invitation, ReviewAssignment | None]:
    """A new person sets a name and password; the account and the acceptance are one
    transaction, so two clicks on one link make one account and one acceptance."""
    invitation = _lock_usable_invitation(token)
    if User.objects.filter(email__iexact=invitation.email).exists():
        raise InvalidAnswers(
            {"__all__": ["An account with this e-mail address exists: sign in to accept."]}
        )
    try:
        with transaction.atomic():
            # The address is the invitation's, never one typed in; the link proves it.
            user = User.objects.create_user(
                email=invitation.email,
                password=password,
                display_name=display_name.strip() or invitation.name,
                email_verified_at=timezone.now(),
            )
    except IntegrityError:
        raise InvitationUnusable("accepted") from None
    return user, invitation, _accept(invitation, user)


# --- decisions --------------------------------------------------------------------------------


def decision_counts(decision: Decision | ProposalDecision) -> bool:
    """Whether a standing decision counts toward the gate: a revoked expert's stops counting, an
    unconfirmed one's never did (the decision service refuses them; this keeps the gate honest
    whatever wrote the row). Needs ``assignment`` selected."""
    assignment = decision.assignment
    return assignment is None or (
        assignment.state != AssignmentState.REVOKED and not assignment.awaiting_confirmation
    )


def votes_of(decisions: Iterable[Decision | ProposalDecision]) -> list[Vote]:
    """Standing decisions (reviewer and assignment selected) that count, as the gate's votes."""
    return [
        Vote(
            reviewer_id=d.reviewer_id,
            reviewer_name=d.reviewer.name,
            role=d.role,
            outcome=d.outcome,
            revision_id=d.revision_id,
            question_key=d.question_key,
            expertise=frozenset(d.assignment.expertise_tags if d.assignment else ()),
        )
        for d in decisions
        if decision_counts(d)
    ]


def current_votes(revision: StageRevision) -> list[Vote]:
    """The decisions that count now: the latest of each reviewer on this revision. Course
    staff review by their role, so every reviewer's request for changes blocks the gate."""
    decisions = Decision.objects.filter(revision=revision, replaced_at__isnull=True)
    return votes_of(decisions.select_related("reviewer", "assignment"))


def _member_ids(project: Project) -> list[int]:
    """The team's ids, from the members a page has already fetched when it has."""
    cached = getattr(project, "_prefetched_objects_cache", {}).get("members")
    if cached is not None:
        return [m.pk for m in cached]
    return list(project.members.values_list("pk", flat=True))


def gate_policy(definition: StageDefinition) -> GatePolicy:
    """A stage definition's gate as the pure gate function reads it."""
    owners = tuple(sorted((definition.question_owners or {}).items()))
    return GatePolicy(
        definition.min_approvals,
        definition.min_staff_approvals,
        definition.min_expert_approvals,
        rules=tuple(definition.gate_rules or ()),
        dismissal=definition.dismissal,
        owners=owners,
    )


def project_attributes(project: Project) -> dict[str, str]:
    return {"risk_tier": project.risk_tier, "domain": project.domain}


def _earlier(stage: ProjectStage) -> tuple[list[Vote], dict[int, RevisionDelta]]:
    """Standing approvals of the stage's earlier revisions, and what changed since each, for a
    policy that lets some of them carry."""
    revisions = list(
        StageRevision.objects.filter(stage=stage)
        .order_by("number")
        .only("pk", "number", "answers", "editorial")
    )
    current = next((r for r in revisions if r.pk == stage.current_revision_id), None)
    if current is None:
        return [], {}
    earlier = [r for r in revisions if r.number < current.number]
    if not earlier:
        return [], {}
    accepted = {
        (a.revision_id, a.reviewer_id) for a in EditorialAcceptance.objects.filter(revision=current)
    }
    deltas: dict[int, RevisionDelta] = {}
    for revision in earlier:
        keys = set(revision.answers) | set(current.answers)
        later = [r for r in revisions if revision.number < r.number <= current.number]
        deltas[revision.pk] = RevisionDelta(
            changed_questions=frozenset(
                k for k in keys if revision.answers.get(k) != current.answers.get(k)
            ),
            editorial=all(r.editorial for r in later),
            accepted_by=frozenset(reviewer for (_rev, reviewer) in accepted),
        )
    decisions = Decision.objects.filter(
        revision_id__in=list(deltas), replaced_at__isnull=True, outcome=DecisionOutcome.APPROVE
    ).select_related("reviewer", "assignment")
    return votes_of(decisions), deltas


def gate_for_stage(
    stage: ProjectStage, *, current_decisions: Iterable[Decision] | None = None
) -> GateResult:
    """The gate of a stage as it stands, for panels and for the decision service.
    ``current_decisions``: the standing decisions on the current revision, when the caller has
    them already (reviewer selected), so a page reads them once."""
    return gate_for_definition(stage, stage.definition, current_decisions=current_decisions)


def gate_for_definition(
    stage: ProjectStage,
    definition: StageDefinition,
    *,
    current_decisions: Iterable[Decision] | None = None,
    rules: list[dict[str, Any]] | None = None,
) -> GateResult:
    """The gate of ``stage`` judged by ``definition`` (its own, or another version's for a
    migration preview) and, for a dry run, by ``rules`` instead of the definition's."""
    policy = gate_policy(definition)
    if rules is not None:
        policy = GatePolicy(
            policy.min_approvals,
            policy.min_staff,
            policy.min_expert,
            rules=tuple(rules),
            dismissal=policy.dismissal,
            owners=policy.owners,
        )
    votes: list[Vote] = []
    if current_decisions is not None:
        votes = votes_of(current_decisions)
    elif stage.current_revision_id is not None:
        votes = current_votes(stage.current_revision)  # type: ignore[arg-type]
    deltas: dict[int, RevisionDelta] = {}
    if policy.dismissal != DISMISS_ALL and stage.current_revision_id is not None:
        earlier_votes, deltas = _earlier(stage)
        votes = [*votes, *earlier_votes]
    # The labels name the question of a request for changes or of an owner rule.
    labels = (
        {q.key: f"question {i}" for i, q in enumerate(definition.questions.all(), start=1)}
        if any(v.question_key for v in votes) or policy.owners or policy.rules
        else {}
    )
    min_severity = getattr(definition, "risk_min_severity", 0)
    risks = (
        risk_traces(stage.current_revision)
        if min_severity and stage.current_revision_id is not None
        else []
    )
    return evaluate_gate(
        policy,
        votes,
        current_revision_id=stage.current_revision_id,
        member_ids=_member_ids(stage.project),
        question_labels=labels,
        risks=risks,
        risk_min_severity=min_severity,
        attributes=project_attributes(stage.project),
        earlier=deltas,
    )


def risk_traces(revision: Any) -> list[RiskTrace]:
    """The risk register frozen in the revision, as the gate's "risks traced" rule reads it:
    a linked test counts when it is set (and, if it names a question of this very stage,
    answered in this revision)."""
    stage_key = revision.stage.definition.key
    traces = []
    for risk in revision.risks or []:
        link = str(risk.get("test_link") or "")
        linked_stage, _, question = link.partition("/")
        answered = bool(link) and (
            linked_stage != stage_key or revision.answers.get(question) not in (None, "", [], {})
        )
        traces.append(
            RiskTrace(
                title=str(risk.get("title", "")),
                severity=int(risk.get("severity") or 0),
                has_mitigation=bool(str(risk.get("mitigation") or "").strip()),
                has_test=answered,
            )
        )
    return traces


def decision_refusal(
    reviewer: Any, project: Project, role: str | None, assignment: ReviewAssignment | None
) -> str:
    """Why a reviewer of this stage may not decide yet, or "" when they may."""
    if getattr(reviewer, "email_verified_at", None) is None:
        return "Verify your e-mail address before you review: follow the link we sent you."
    if role != ReviewerRole.EXPERT:
        return ""
    if assignment is not None and assignment.awaiting_confirmation:
        return (
            "Course staff have not yet confirmed you as an independent expert for this project. "
            "Your decisions count once they have; you can read and comment meanwhile."
        )
    if not ConflictDeclaration.objects.filter(project=project, reviewer=reviewer).exists():
        return "Declare any conflicts of interest on this project before your first decision."
    return ""


@transaction.atomic
@audit_batch()  # the decision's and the stage's events, written last: see audit_batch
def decision_record(
    *,
    revision: StageRevision,
    reviewer: User,
    outcome: str,
    comment: str = "",
    question_key: str = "",
    change: bool = False,
    parts: Mapping[str, Any] | None = None,
) -> Decision:
    """Record a reviewer's decision on one exact revision and move the stage when it decides
    the gate: a request for changes sends the stage back; the approval that satisfies the gate
    approves the stage and opens the next one, in this same transaction.

    ``parts`` holds what the reviewer entered for the parts other layers add to a decision
    (``reviews.decision_parts``: the rubric's scores), by part key; each applicable part is
    checked before anything is written and writes its rows with the decision."""
    project = _lock_project(revision.stage.project_id)
    stage = _lock_stage(revision.stage_id, project)
    if stage.current_revision_id == revision.pk:
        stage.current_revision = revision  # revisions never change: no need to read it again
    return _decide(
        project,
        stage,
        revision,
        reviewer=reviewer,
        outcome=outcome,
        comment=comment,
        question_key=question_key,
        change=change,
        parts=parts,
    )


@transaction.atomic
@audit_batch()
def decision_record_posted(
    *,
    stage_id: int,
    revision_id: int,
    reviewer: User,
    outcome: str,
    comment: str = "",
    question_key: str = "",
    change: bool = False,
    post: QueryDict | None = None,
) -> Decision:
    """``decision_record`` for the review page's POST, which names the stage and the revision by
    id: the stage is read once, under its lock, with its current revision (the usual case), and
    the parts' values are taken from ``post`` once the stage is known. Anyone who is not a
    reviewer of the stage, and a stage or a revision of it that does not exist, get NotAllowed
    (the view's 404) before anything else is checked."""
    project = (
        Project.objects.select_for_update(of=("self",), no_key=True)  # see _lock_project
        .select_related("course")
        .filter(pk__in=ProjectStage.objects.filter(pk=stage_id).values("project_id"))
        .first()
    )
    if project is None:
        raise NotAllowed("No such review.")
    stage = _lock_stage(stage_id, project, with_current_revision=True)
    revision = stage.current_revision
    if revision is None or revision.pk != revision_id:
        revision = StageRevision.objects.filter(stage_id=stage_id, pk=revision_id).first()
    return _decide(
        project,
        stage,
        revision,
        reviewer=reviewer,
        outcome=outcome,
        comment=comment,
        question_key=question_key,
        change=change,
        parts=decision_parts.from_post_any_role(stage, post) if post is not None else None,
    )


def _lock_stage(
    stage_id: int, project: Project, *, with_current_revision: bool = False
) -> ProjectStage:
    """The stage, locked after its project (the lifecycle's order), with its definition and the
    settings its decision parts read; the team, read once here under the project's lock, serves
    the reviewer check, the gate, the approval and its notifications."""
    prefetch_related_objects([project], "members")
    related = ("definition", "current_revision") if with_current_revision else ("definition",)
    stage = (
        ProjectStage.objects.select_for_update(of=("self",), no_key=True)
        .select_related(*related)
        .annotate(**decision_parts.stage_reads())  # the parts' settings, in this same query
        .get(pk=stage_id)
    )
    stage.project = project
    return stage


def _decide(
    project: Project,
    stage: ProjectStage,
    revision: StageRevision | None,
    *,
    reviewer: User,
    outcome: str,
    comment: str,
    question_key: str,
    change: bool,
    parts: Mapping[str, Any] | None,
) -> Decision:
    """The decision itself, on the stage and its project locked and read by the caller."""
    outcome = DecisionOutcome(outcome)
    # Who may decide comes first: the review page's POST leaves this check to the service, so
    # nothing below may tell someone who is not a reviewer anything about the stage.
    role, assignment = permissions.reviewer_role(reviewer, project, stage.definition)
    if role is None:
        raise NotAllowed("You are not a reviewer of this stage.")
    if not project.is_active:
        raise IllegalTransition("This project was concluded; its stages take no decisions.")
    if revision is None:
        raise NotAllowed("No such revision of this stage.")
    # The caller reads where the stage went from the decision (decision.revision.stage).
    revision.stage = stage
    refusal = decision_refusal(reviewer, project, role, assignment)
    if refusal:
        raise IllegalTransition(refusal)
    if stage.current_revision_id != revision.pk:
        current = stage.current_revision.number if stage.current_revision else "none"
        raise IllegalTransition(
            f"Revision {revision.number} has been superseded by revision {current}; your "
            "decision was not recorded. Review the current revision."
        )
    if stage.status not in (
        StageStatus.IN_REVIEW,
        StageStatus.CHANGES_REQUESTED,
        StageStatus.APPROVED,
    ):
        raise IllegalTransition(f"{stage.definition.title} is not in review.")
    if outcome == DecisionOutcome.REQUEST_CHANGES:
        if not comment.strip():
            raise InvalidAnswers({"comment": ["Say what needs to change."]})
        if stage.status == StageStatus.APPROVED:
            raise IllegalTransition("This stage is already approved; leave a comment instead.")
    # Every standing decision on the revision, read once: the reviewer's own (which a change
    # replaces, so it is locked) and the others, which the gate counts below. The stage's lock
    # keeps the others as they are until this transaction ends: every decision on a stage's
    # revision is written here, under that lock.
    standing = list(
        Decision.objects.select_for_update(of=("self",), no_key=True)
        .filter(revision=revision, replaced_at__isnull=True)
        .select_related("reviewer", "assignment")
        .order_by("created_at", "pk")
    )
    previous = next((d for d in standing if d.reviewer_id == reviewer.pk), None)
    if previous is not None and not change:
        raise IllegalTransition(
            "You have already decided on this revision. Use “change my decision” to replace it."
        )
    cleaned_parts = decision_parts.clean_all(stage, role, parts)
    now = timezone.now()
    if previous is not None:
        previous.replaced_at = now
        previous.save(update_fields=["replaced_at"])
    decision = Decision.objects.create(
        revision=revision,
        reviewer=reviewer,
        assignment=assignment,
        role=role,
        outcome=outcome,
        comment=comment.strip(),
        question_key=question_key,
        created_at=now,
    )
    written = {
        part.key: part.write(decision=decision, stage=stage, cleaned=value)
        for part, value in cleaned_parts
    }
    audit_record(
        actor=reviewer,
        verb="decision.change" if previous else "decision.record",
        obj=decision,
        project=project,
        old={"outcome": previous.outcome, "comment": previous.comment} if previous else None,
        new={
            "outcome": outcome,
            "comment": decision.comment,
            "role": role,
            "revision": revision.number,
            "sha256": revision.content_sha256,
            "stage": stage.definition.key,
            "cycle": stage.cycle,
            "question": question_key or None,
            **written,
        },
    )
    if stage.status != StageStatus.IN_REVIEW:
        return decision  # recorded; the stage already moved (late approval, second request)
    if outcome == DecisionOutcome.REQUEST_CHANGES:
        revision.stage = lifecycle_services.stage_request_changes(
            stage=stage, revision=revision, actor=reviewer, reason=decision.comment
        )
        return decision
    others = [d for d in standing if d.reviewer_id != reviewer.pk]
    gate = gate_for_stage(stage, current_decisions=[*others, decision])
    if gate.satisfied:
        # Both rows are locked above, in the lifecycle's order (project, then stage).
        lifecycle_services.stage_mark_approved(
            stage=stage,
            revision=revision,
            actor=reviewer,
            gate_summary=gate.as_dict(),
            already_locked=True,
        )
    return decision


@transaction.atomic
def stage_override(*, stage: ProjectStage, actor: User, justification: str) -> ProjectStage:
    """An instructor approves without the quorum; the lifecycle service flags it forever."""
    if not justification.strip():
        raise InvalidAnswers({"justification": ["An override needs a justification."]})
    stage = ProjectStage.objects.select_related("current_revision", "project").get(pk=stage.pk)
    if stage.current_revision is None:
        raise IllegalTransition("Nothing has been submitted on this stage.")
    return lifecycle_services.stage_mark_approved(
        stage=stage,
        revision=stage.current_revision,
        actor=actor,
        override_justification=justification,
        gate_summary=gate_for_stage(stage).as_dict(),
    )


# --- comments -------------------------------------------------------------------------------


@transaction.atomic
def comment_add(
    *,
    revision: StageRevision,
    author: User,
    body: str,
    question_key: str = "",
    parent: Comment | None = None,
) -> Comment:
    project = _lock_project(revision.stage.project_id)
    definition_id = revision.stage.definition_id
    is_member = lifecycle_permissions.is_project_member(author, project)
    if not (is_member or permissions.can_review(author, project, definition_id)):
        raise NotAllowed("Only the team and this stage's reviewers can comment.")
    if not body.strip():
        raise InvalidAnswers({"body": ["Write something."]})
    if len(body) > 20_000:
        raise InvalidAnswers({"body": ["Keep comments under 20,000 characters."]})
    keys = set(revision.stage.definition.questions.values_list("key", flat=True))
    if question_key and question_key not in keys:
        raise InvalidAnswers({"question_key": ["No such question on this stage."]})
    if parent is not None and parent.revision_id != revision.pk:
        raise InvalidAnswers({"parent": ["Reply within the same revision."]})
    comment = Comment.objects.create(
        revision=revision,
        author=author,
        body=body.strip(),
        question_key=parent.question_key if parent else question_key,
        parent=parent,
    )
    audit_record(
        actor=author,
        verb="comment.add",
        obj=comment,
        project=project,
        new={
            "revision": revision.number,
            "question": comment.question_key or None,
            "parent": parent.pk if parent else None,
            "body": comment.body,
        },
    )
    events.publish(events.COMMENT_ADDED, comment=comment)
    return comment


@transaction.atomic
def comment_resolve(*, comment: Comment, actor: User) -> Comment:
    project = _lock_project(comment.revision.stage.project_id)
    if not lifecycle_permissions.is_project_member(actor, project):
        raise NotAllowed("Only the team resolves comments on its work.")
    comment = Comment.objects.select_for_update(no_key=True).get(pk=comment.pk)
    if comment.parent_id is not None:
        raise IllegalTransition("Resolve the thread, not a reply.")
    if comment.resolved_at:
        raise IllegalTransition("This thread is already resolved.")
    comment.resolved_at = timezone.now()
    comment.resolved_by = actor
    comment.save(update_fields=["resolved_at", "resolved_by"])
    audit_record(
        actor=actor, verb="comment.resolve", obj=comment, project=project, new={"resolved": True}
    )
    return comment


@transaction.atomic
def invitation_resend(*, invitation: Invitation, actor: Any) -> tuple[Invitation, str]:
    """Send a pending invitation again with a fresh token (the old link stops working) and a
    fresh expiry: for a lost or undelivered e-mail."""
    invitation = _lock_invitation_for_sender(invitation, actor, "resend")
    if invitation.state() not in ("pending", "expired"):
        raise IllegalTransition(f"This invitation is {invitation.state().replace('_', ' ')}.")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    invitation.token_hash = hash_token(token)
    invitation.expires_at = invitation_expiry(invitation.course)
    invitation.sent_at = None
    invitation.save(update_fields=["token_hash", "expires_at", "sent_at"])
    audit_record(
        actor=actor,
        verb="invitation.resend",
        obj=invitation,
        course=invitation.course,
        project=invitation.project,
        new={"email": invitation.email, "expires_at": invitation.expires_at},
    )
    transaction.on_commit(lambda: _send_invitation(invitation, token))
    return invitation, token


@transaction.atomic
def invitation_readdress(
    *, invitation: Invitation, actor: Any, email: str
) -> tuple[Invitation, str]:
    """Course staff correct where an invitation goes: the new address gets a new token, and the
    link sent to the old one stops working."""
    invitation = (
        Invitation.objects.select_for_update(of=("self",), no_key=True)
        .select_related("course", "project")
        .get(pk=invitation.pk)
    )
    _require_staff(actor, invitation.course)
    state = invitation.state()
    if state in ("accepted", "revoked"):
        raise IllegalTransition(f"This invitation was already {state}.")
    email = email.strip().lower()
    if not email:
        raise InvalidAnswers({"email": ["Enter the expert's e-mail address."]})
    if email == invitation.email:
        raise InvalidAnswers({"email": [f"The invitation already goes to {email}."]})
    _check_invitee(email, course=invitation.course, project=invitation.project)
    old_email = invitation.email
    token = secrets.token_urlsafe(TOKEN_BYTES)
    invitation.email = email
    invitation.token_hash = hash_token(token)
    invitation.expires_at = invitation_expiry(invitation.course)
    invitation.sent_at = None
    invitation.save(update_fields=["email", "token_hash", "expires_at", "sent_at"])
    audit_record(
        actor=actor,
        verb="invitation.readdress",
        obj=invitation,
        course=invitation.course,
        project=invitation.project,
        old={"email": old_email},
        new={"email": email, "expires_at": invitation.expires_at},
    )
    # Still waiting for staff to confirm it: confirming sends it (with yet another token).
    if invitation.state() != "awaiting_confirmation":
        transaction.on_commit(lambda: _send_invitation(invitation, token))
    return invitation, token


# --- independent experts ----------------------------------------------------------------------


def _lock_expert_assignment(assignment: ReviewAssignment, actor: Any) -> ReviewAssignment:
    project = _lock_project(assignment.project_id)
    _require_staff(actor, project.course)
    assignment = (
        ReviewAssignment.objects.select_for_update(of=("self",), no_key=True)
        .select_related("reviewer")
        .get(pk=assignment.pk)
    )
    assignment.project = project
    if assignment.role != ReviewerRole.EXPERT:
        raise IllegalTransition("Only domain experts are confirmed or revoked.")
    if assignment.state != AssignmentState.ACTIVE:
        raise IllegalTransition(f"This assignment was already {assignment.state}.")
    return assignment


@transaction.atomic
def expert_confirm(*, assignment: ReviewAssignment, actor: Any) -> ReviewAssignment:
    """Course staff vouch for an expert a team proposed: from now on their decisions count."""
    assignment = _lock_expert_assignment(assignment, actor)
    if not assignment.awaiting_confirmation:
        raise IllegalTransition("This expert needs no confirmation.")
    assignment.confirmed_by = actor
    assignment.confirmed_at = timezone.now()
    assignment.save(update_fields=["confirmed_by", "confirmed_at"])
    audit_record(
        actor=actor,
        verb="review.expert_confirm",
        obj=assignment,
        project=assignment.project,
        new={"reviewer": assignment.reviewer.email, "proposed_by": assignment.proposed_by.email},
    )
    return assignment


@transaction.atomic
def expert_revoke(*, assignment: ReviewAssignment, actor: Any) -> ReviewAssignment:
    """Course staff revoke an expert: the assignment ends and the expert's decisions stop
    counting on every stage still in review. A stage already approved stays approved: its
    approval is history, and the audit trail shows the revocation beside it."""
    assignment = _lock_expert_assignment(assignment, actor)
    assignment.state = AssignmentState.REVOKED
    assignment.withdrawn_at = timezone.now()
    assignment.revoked_by = actor
    assignment.save(update_fields=["state", "withdrawn_at", "revoked_by"])
    audit_record(
        actor=actor,
        verb="review.expert_revoke",
        obj=assignment,
        project=assignment.project,
        old={"state": AssignmentState.ACTIVE, "reviewer": assignment.reviewer.email},
        new={"state": AssignmentState.REVOKED},
    )
    return assignment


CONFLICT_DETAILS_LIMIT = 5000


@transaction.atomic
def conflict_declare(
    *, project: Project, reviewer: User, has_conflict: bool, details: str = ""
) -> ConflictDeclaration:
    """A domain expert declares, once per project and before deciding, whether anything ties
    them to the team or its outcome; staff see it beside the expert's name."""
    project = _lock_project(project.pk)
    is_expert = ReviewAssignment.objects.filter(
        project=project, reviewer=reviewer, role=ReviewerRole.EXPERT, state=AssignmentState.ACTIVE
    ).exists()
    if not is_expert:
        raise NotAllowed("Only this project's domain experts declare conflicts of interest here.")
    details = details.strip()
    if has_conflict and not details:
        raise InvalidAnswers({"details": ["Say what the conflict is, so staff can judge it."]})
    if len(details) > CONFLICT_DETAILS_LIMIT:
        raise InvalidAnswers({"details": [f"Keep it under {CONFLICT_DETAILS_LIMIT} characters."]})
    if ConflictDeclaration.objects.filter(project=project, reviewer=reviewer).exists():
        raise IllegalTransition("You have already declared your conflicts on this project.")
    declaration = ConflictDeclaration.objects.create(
        project=project, reviewer=reviewer, has_conflict=has_conflict, details=details
    )
    audit_record(
        actor=reviewer,
        verb="review.conflict_declare",
        obj=declaration,
        project=project,
        new={"has_conflict": has_conflict, "details": details},
    )
    return declaration


# --- nudges from the course board -----------------------------------------------------------

NUDGE_MESSAGE_LIMIT = 2000


@transaction.atomic
def nudge_projects(
    *, course: Course, actor: Any, projects: list[Project], message: str
) -> list[Project]:
    """Remind each project's team, in their notifications and by e-mail, that staff are
    waiting on them. Once per project, person nudging and day: a double click or a second bulk
    nudge the same day writes nothing more. Returns the projects nudged now."""
    _require_staff(actor, course)
    message = message.strip()
    if len(message) > NUDGE_MESSAGE_LIMIT:
        raise InvalidAnswers({"message": [f"Keep it under {NUDGE_MESSAGE_LIMIT} characters."]})
    if any(p.course_id != course.pk for p in projects):
        raise NotAllowed("You can only nudge projects of this course.")
    day = timezone.localdate()
    nudged = []
    # Locked in id order, so two bulk nudges over overlapping selections cannot deadlock; the
    # lock also makes the "already nudged today" check below race-free.
    for project in sorted(projects, key=lambda p: p.pk):
        project = _lock_project(project.pk)
        if not project.is_active:
            continue
        if AuditEvent.objects.filter(
            verb="project.nudge", project=project, actor=actor, created_at__date=day
        ).exists():
            continue
        members = list(project.members.filter(is_active=True))
        events.publish(
            events.PROJECT_NUDGED,
            project=project,
            actor=actor,
            stage=project.current_stage,
            message=message,
            day=day,
        )
        audit_record(
            actor=actor,
            verb="project.nudge",
            obj=project,
            project=project,
            new={"message": message, "recipients": sorted(m.email for m in members)},
        )
        nudged.append(project)
    return nudged
