"""Reads of the review layer used by more than one view."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Exists, F, OuterRef, Q, QuerySet, Subquery
from django.http import Http404
from django.utils import timezone

from lifecycle import permissions as lifecycle_permissions
from lifecycle.models import (
    STAFF_ROLES,
    IndependentReview,
    Membership,
    Project,
    ProjectStage,
    ProjectStatus,
    StageRevision,
    StageStatus,
)
from lifecycle.policy import independent_review_mode

from . import permissions, queue
from .anonymity import NAMED, ReviewerNames
from .models import (
    AssignmentState,
    Comment,
    Decision,
    Invitation,
    ReviewAssignment,
    ReviewerRole,
)
from .services import gate_for_stage


def assignments_for_stage(stage: ProjectStage) -> QuerySet[ReviewAssignment]:
    return ReviewAssignment.objects.filter(
        Q(stage_definition=stage.definition_id) | Q(stage_definition__isnull=True),
        project_id=stage.project_id,
        state=AssignmentState.ACTIVE,
    ).select_related("reviewer")


STALE_SHOWN = 20


def gate_panel_context(stage: ProjectStage, names: ReviewerNames = NAMED) -> dict[str, Any]:
    """Everything the gate panel shows, from one read of the stage's standing decisions: the
    current revision's count toward the gate, the others are shown as stale. ``names``: how
    the reader sees reviewers (masked before the gate's summary names anyone)."""
    standing = list(
        Decision.objects.filter(revision__stage=stage, replaced_at__isnull=True)
        .select_related("reviewer", "revision", "assignment")
        .order_by("-created_at", "-pk")
    )
    names.mask(standing, "reviewer")
    current = stage.current_revision_id
    decisions = sorted(
        (d for d in standing if current is not None and d.revision_id == current),
        key=lambda d: (d.revision_id, d.created_at),  # the model's ordering, as before
    )
    stale = [d for d in standing if d.revision_id != current][:STALE_SHOWN]
    gate = gate_for_stage(stage, current_decisions=decisions)
    decided = {d.reviewer_id for d in decisions}
    waiting = [a for a in assignments_for_stage(stage) if a.reviewer_id not in decided]
    names.mask(waiting, "reviewer")
    return {
        "stage": stage,
        "gate": gate,
        "decisions": decisions,
        "waiting": waiting,
        "stale": stale,
        "current_decided_by": decided,
    }


def get_reviewable_stage(user: Any, stage_pk: int) -> ProjectStage:
    """The stage, for its team, course staff and its assigned reviewers; 404 for anyone else.
    The team comes prefetched (the query its membership check would make anyway), so a view
    that checks again (who may decide) asks nothing more."""
    stage = (
        ProjectStage.objects.select_related("project__course", "definition", "current_revision")
        .prefetch_related("project__members")
        .filter(pk=stage_pk)
        .first()
    )
    if stage is None or not permissions.can_see_stage(user, stage):
        raise Http404("No such review.")
    return stage


def stage_for_decision(stage_pk: int) -> ProjectStage:
    """The stage a decision is posted on, with what the decision form reads (its definition
    and current revision); 404 if there is none. It checks no permission: ``decision_record``
    checks the reviewer under the project's lock before anything else (a view turns its
    NotAllowed into a 404), and a view that shows anything of the stage without the service
    must check ``permissions.reviewer_role`` first."""
    try:
        return ProjectStage.objects.select_related("definition", "current_revision").get(
            pk=stage_pk
        )
    except ProjectStage.DoesNotExist:
        raise Http404("No such review.") from None


# --- the reviewer inbox and the review page ---------------------------------------------------


def _active_assignments_of(user: Any) -> QuerySet[ReviewAssignment]:
    """The user's active assignments covering the outer query's stage (stage ones first)."""
    return (
        ReviewAssignment.objects.filter(
            reviewer=user,
            state=AssignmentState.ACTIVE,
            project_id=OuterRef("project_id"),
        )
        .filter(Q(stage_definition_id=OuterRef("definition_id")) | Q(stage_definition__isnull=True))
        .order_by(F("stage_definition_id").asc(nulls_last=True), "created_at")
    )


@dataclass(frozen=True)
class PendingReview:
    stage: ProjectStage
    due: dt.date | None  # the assignment's due date, else the stage's
    overdue: bool
    role: str  # ReviewerRole the user decides under


@dataclass(frozen=True)
class Thread:
    comment: Comment
    replies: list[Comment] = field(default_factory=list)


def _reviewable_project_ids(user: Any, scope: queue.ReviewerScope) -> list[int]:
    """Ids of the projects the user has an active assignment on or whose course they teach."""
    taught = Project.objects.filter(course_id__in=scope.staff_course_ids).values_list(
        "pk", flat=True
    )
    return sorted({a.project_id for a in scope.assignments} | set(taught))


def _pending_filter(user: Any, scope: queue.ReviewerScope) -> QuerySet[ProjectStage]:
    """Stages in review that ``user`` may decide and has not decided on their current revision,
    annotated with the user's assignment (due date, role), in no order."""
    assignments = _active_assignments_of(user)
    on_team = Project.members.through.objects.filter(
        project_id=OuterRef("project_id"), user_id=user.pk
    )
    decided = Decision.objects.filter(
        revision_id=OuterRef("current_revision_id"), reviewer=user, replaced_at__isnull=True
    )
    return (
        ProjectStage.objects.filter(
            status=StageStatus.IN_REVIEW,
            project__status=ProjectStatus.ACTIVE,
            current_revision__isnull=False,
        )
        # Narrowed first to the user's own projects, then checked exactly per stage: the OR
        # alone scans every project. The ids go in as a list, so the planner sees how few they
        # are and probes the (project, status) index instead of every stage in review.
        .filter(project_id__in=_reviewable_project_ids(user, scope))
        .filter(Q(Exists(assignments)) | Q(project__course_id__in=scope.staff_course_ids))
        .exclude(Exists(on_team))
        .exclude(Exists(decided))
        .annotate(
            assignment_due=Subquery(assignments.values("due_date")[:1]),
            assignment_role=Subquery(assignments.values("role")[:1]),
        )
    )


def pending_review_stages(user: Any) -> QuerySet[ProjectStage]:
    """Stages in review that ``user`` may decide and has not decided on their current revision,
    oldest submission first, annotated with the user's assignment (due date, role), as model
    rows (for mails and small callers; pages use queue.pending_slice, which keeps to the same
    rules in SQL)."""
    scope = queue.reviewer_scope(user, experts=False)
    if not scope.reviews:
        return ProjectStage.objects.none()
    return (
        _pending_filter(user, scope)
        .defer("draft_answers", "draft_changed_at", "draft_changed_by", "override_justification")
        .select_related("project__course", "definition", "current_revision")
        .order_by(F("submitted_at").asc(nulls_last=True), "pk")
    )


def as_pending_reviews(stages: Iterable[ProjectStage]) -> list[PendingReview]:
    today = timezone.localdate()
    pending = []
    for stage in stages:
        due = stage.assignment_due or stage.due_date  # type: ignore[attr-defined]
        pending.append(
            PendingReview(
                stage=stage,
                due=due,
                overdue=due is not None and due < today,
                role=stage.assignment_role or ReviewerRole.STAFF,  # type: ignore[attr-defined]
            )
        )
    return pending


def pending_reviews_for_user(user: Any) -> list[PendingReview]:
    """Every pending review of the user (unpaged: for mails and small callers)."""
    return as_pending_reviews(pending_review_stages(user))


def invitations_to_confirm(course_ids: Any) -> QuerySet[Invitation]:
    """Teams' invitations of these courses (ids, or a subquery of them) that course staff still
    have to confirm: live (not revoked, accepted or expired) and not yet confirmed. Only a
    team invites under confirmation, always to its project. The home page's list and the
    confirmations list read this; reviews.queue's count is the same filter in SQL."""
    return Invitation.objects.filter(
        course_id__in=course_ids,
        needs_confirmation=True,
        confirmed_at__isnull=True,
        revoked_at__isnull=True,
        accepted_at__isnull=True,
        expires_at__gt=timezone.now(),
    )


def invitations_awaiting_confirmation(user: Any) -> list[Invitation]:
    """Teams' invitations that course staff of the user's courses still have to confirm."""
    if not getattr(user, "is_authenticated", False):
        return []
    staff_courses = Membership.objects.filter(user=user, role__in=STAFF_ROLES).values("course_id")
    return list(
        invitations_to_confirm(staff_courses)
        .select_related("project", "stage_definition", "invited_by")
        .order_by("created_at")
    )


def blind_for(stage: ProjectStage, role: str | None) -> bool:
    """Whether someone deciding under ``role`` on this stage decides blind (the course's
    setting for the stage, else the course's, else the template's)."""
    if role is None:
        return False
    mode = independent_review_mode(stage.project.course, stage.definition)
    if mode == IndependentReview.EVERYONE:
        return True
    return mode == IndependentReview.EXPERTS and role == ReviewerRole.EXPERT


def hides_other_reviews(
    user: Any, stage: ProjectStage, *, decided_by: set[int] | None = None
) -> bool:
    """Independent review: a reviewer who decides blind on this stage and has not decided on
    its current revision sees neither the other reviewers' decisions nor their comments (the
    team sees everything). ``decided_by``: who has a standing decision on the current
    revision, if already read."""
    if not stage.current_revision_id:
        return False
    if independent_review_mode(stage.project.course, stage.definition) == IndependentReview.OFF:
        return False
    if decided_by is not None and user.pk in decided_by:
        return False
    role, _ = permissions.reviewer_role(user, stage.project, stage.definition)
    if not blind_for(stage, role):
        return False
    if decided_by is not None:
        return True
    return not Decision.objects.filter(
        revision_id=stage.current_revision_id, reviewer=user, replaced_at__isnull=True
    ).exists()


def comment_threads(revision: StageRevision, *, only_author: Any = None) -> dict[str, list[Thread]]:
    """Threads on a revision keyed by question key ("" for the revision as a whole), each with
    its replies in order. One query."""
    comments = Comment.objects.filter(revision=revision).select_related("author", "resolved_by")
    if only_author is not None:
        comments = comments.filter(author=only_author)
    threads: dict[str, list[Thread]] = {}
    by_pk: dict[int, Thread] = {}
    for comment in comments.order_by("created_at", "pk"):
        if comment.parent_id is None:
            by_pk[comment.pk] = Thread(comment)
            threads.setdefault(comment.question_key, []).append(by_pk[comment.pk])
        elif comment.parent_id in by_pk:
            # A reply to a reply joins the thread of its root, shown flat in time order.
            by_pk[comment.pk] = by_pk[comment.parent_id]
            by_pk[comment.pk].replies.append(comment)
    return threads


def candidate_reviewers(project: Project) -> QuerySet[Any]:
    """People course staff may assign: the course's staff and everyone who accepted an expert
    invitation to this course; never a member of the project."""
    from accounts.models import User

    accepted = Invitation.objects.filter(
        course_id=project.course_id, accepted_by__isnull=False
    ).values("accepted_by_id")
    staff = Membership.objects.filter(course_id=project.course_id, role__in=STAFF_ROLES).values(
        "user_id"
    )
    return (
        User.objects.filter(Q(pk__in=staff) | Q(pk__in=accepted), is_active=True)
        .exclude(projects=project)
        .order_by("display_name", "email")
    )


def get_invitation_for_user(user: Any, pk: int) -> Invitation:
    """An invitation, for course staff, the project's team and whoever sent it; 404 otherwise."""
    invitation = (
        Invitation.objects.select_related("course", "project", "stage_definition")
        .filter(pk=pk)
        .first()
    )
    if invitation is None or not getattr(user, "is_authenticated", False):
        raise Http404("No such invitation.")
    if invitation.invited_by_id == user.pk:
        return invitation
    if lifecycle_permissions.is_course_staff(user, invitation.course):
        return invitation
    if invitation.project is not None and lifecycle_permissions.is_project_member(
        user, invitation.project
    ):
        return invitation
    raise Http404("No such invitation.")


def get_assignment_for_user(user: Any, pk: int) -> ReviewAssignment:
    """An assignment, for the project's team and course staff; 404 otherwise."""
    assignment = (
        ReviewAssignment.objects.select_related("project__course", "reviewer", "stage_definition")
        .filter(pk=pk)
        .first()
    )
    if assignment is None or not lifecycle_permissions.can_view_project(user, assignment.project):
        raise Http404("No such assignment.")
    return assignment


def get_comment_for_user(user: Any, pk: int) -> Comment:
    """A comment on a stage the user may see; 404 otherwise."""
    comment = Comment.objects.select_related("revision__stage").filter(pk=pk).first()
    if comment is None:
        raise Http404("No such comment.")
    stage = get_reviewable_stage(user, comment.revision.stage_id)
    comment.revision.stage = stage
    return comment
