"""Who hears about what. The layers below publish domain events (lifecycle.events,
reviews.events) inside their transactions; the handlers here write the notification rows in
that same transaction, so an event and what it causes commit together or not at all."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.db.models import Q
from django.urls import reverse

from accounts.models import User
from lifecycle import events
from lifecycle.models import STAFF_ROLES, Membership, Project, ProjectStage
from reviews import events as review_events
from reviews.anonymity import NAMED, names_for_team
from reviews.models import (
    AssignmentState,
    Comment,
    Decision,
    DecisionOutcome,
    Invitation,
    ReviewAssignment,
    ReviewerRole,
)
from reviews.permissions import can_review

from .models import NotificationKind
from .services import absolute, notify, review_link, stage_link

# --- recipients -----------------------------------------------------------------------------


def project_members(project: Project) -> list[User]:
    return list(project.members.all())


def course_staff(project: Project) -> list[User]:
    return [
        m.user
        for m in Membership.objects.filter(
            course_id=project.course_id, role__in=STAFF_ROLES
        ).select_related("user")
    ]


def stage_reviewers(project: Project, definition_ids: Iterable[int]) -> list[User]:
    ids = list(definition_ids)
    return [
        a.reviewer
        for a in ReviewAssignment.objects.filter(
            Q(stage_definition_id__in=ids) | Q(stage_definition__isnull=True),
            project=project,
            state=AssignmentState.ACTIVE,
        ).select_related("reviewer")
    ]


def _title(stage: ProjectStage) -> str:
    return f"stage {stage.definition.order} “{stage.definition.title}”"


# --- lifecycle events ---------------------------------------------------------------------


def _still_asking(stage: ProjectStage, revision: Any) -> list[User]:
    """Reviewers whose latest word on an earlier revision of this stage was a request for
    changes: a reviewer who asked on revision 1 and approved revision 2 is not waiting."""
    latest: dict[int, Decision] = {}
    for d in (
        Decision.objects.filter(revision__stage=stage, replaced_at__isnull=True)
        .exclude(revision=revision)
        .select_related("reviewer")
        .order_by("created_at", "pk")
    ):
        latest[d.reviewer_id] = d
    return [d.reviewer for d in latest.values() if d.outcome == DecisionOutcome.REQUEST_CHANGES]


def gate_needs_staff(definition: Any) -> bool:
    """Staff can satisfy a part of this gate: it asks for a staff approval, or for approvals
    beyond what the role minimums ask, which any reviewer (staff included) can give."""
    return definition.min_staff_approvals > 0 or definition.min_approvals > (
        definition.min_staff_approvals + definition.min_expert_approvals
    )


def gate_reviewers(stage: ProjectStage) -> tuple[list[User], list[User]]:
    """(assigned reviewers, course staff to tell) for a stage that waits for its gate: everyone
    who can satisfy a part of it. Staff are told whenever the gate needs staff, and also when a
    part of it has nobody assigned who could satisfy it (then staff must assign someone), so an
    assigned expert no longer keeps the TA and the instructor from hearing about the stage."""
    definition = stage.definition
    assignments = [
        a
        for a in ReviewAssignment.objects.filter(
            project_id=stage.project_id, state=AssignmentState.ACTIVE
        ).select_related("reviewer")
        if a.covers(stage.definition_id)
    ]
    roles = {a.role for a in assignments}
    unassigned_part = not assignments or (
        definition.min_expert_approvals > 0 and ReviewerRole.EXPERT not in roles
    )
    staff = course_staff(stage.project) if gate_needs_staff(definition) or unassigned_part else []
    return [a.reviewer for a in assignments], staff


def _decided_before(stage: ProjectStage, revision: Any) -> list[User]:
    """Reviewers with a standing decision on an earlier revision of the stage: the people a
    response to reviewers answers."""
    people: dict[int, User] = {}
    for d in (
        Decision.objects.filter(revision__stage=stage, replaced_at__isnull=True)
        .exclude(revision=revision)
        .select_related("reviewer")
        .order_by("created_at", "pk")
    ):
        people.setdefault(d.reviewer_id, d.reviewer)
    return list(people.values())


def on_stage_submitted(
    *, stage: ProjectStage, revision: Any, actor: Any, resubmission: bool
) -> None:
    project = stage.project
    assigned, staff = gate_reviewers(stage)
    members = {u.pk for u in project_members(project)}
    reviewers = [u for u in [*assigned, *staff] if u.pk not in members]
    asked: list[User] = []
    responded: list[User] = []
    if resubmission:
        # Only people who may still review the stage: an expert whose assignment was withdrawn
        # since asking would get a link to a page they can no longer open. Course staff always
        # may.
        may_review = {u.pk for u in [*assigned, *course_staff(project)]}
        if revision.response_to_reviewers or revision.thread_responses:
            response_text = revision.response_to_reviewers or "(See their replies in the threads.)"
            responded = [u for u in _decided_before(stage, revision) if u.pk in may_review]
            notify(
                recipients=responded,
                kind=NotificationKind.RESPONSE_TO_REVIEWERS,
                project=project,
                stage=stage,
                key=f"response_to_reviewers:r{revision.pk}",
                subject=f"[{project.title}] The team's response to your review of {_title(stage)}",
                body=f"{actor.name} resubmitted {_title(stage)} as revision {revision.number} "
                f"and wrote to the reviewers:\n\n{response_text}"
                "\n\nThe review page shows it beside what changed since your last decision.",
                link=review_link(stage) + "#response",
            )
        told = {u.pk for u in responded}
        asked = [
            u for u in _still_asking(stage, revision) if u.pk in may_review and u.pk not in told
        ]
        notify(
            recipients=asked,
            kind=NotificationKind.RESUBMITTED,
            project=project,
            stage=stage,
            key=f"resubmitted:r{revision.pk}:asked",
            subject=f"[{project.title}] Revision {revision.number} of {_title(stage)} answers "
            "your request for changes",
            body=f"{actor.name} resubmitted {_title(stage)} after the changes you asked for.",
            link=review_link(stage),
        )
    # One notification per person and event: whoever heard "answers your request" above does
    # not also get the general one.
    already = {u.pk for u in [*asked, *responded]}
    notify(
        recipients=[u for u in reviewers if u.pk not in already],
        kind=NotificationKind.RESUBMITTED if resubmission else NotificationKind.REVIEW_REQUESTED,
        project=project,
        stage=stage,
        key=f"review_requested:r{revision.pk}",
        subject=f"[{project.title}] Review requested: {_title(stage)}, revision {revision.number}",
        body=f"{actor.name} submitted {_title(stage)} for review. Approve it or request changes "
        "on exactly this revision.",
        link=review_link(stage),
    )


def on_changes_requested(*, stage: ProjectStage, revision: Any, actor: Any, reason: str) -> None:
    project = stage.project
    notify(
        recipients=project_members(project),
        kind=NotificationKind.CHANGES_REQUESTED,
        project=project,
        stage=stage,
        key=f"changes_requested:r{revision.pk}",
        subject=f"[{project.title}] Changes requested on {_title(stage)}",
        body=f"{names_for_team(project).name_of(actor)} asked for changes on revision "
        f"{revision.number}:\n\n{reason}\n\n"
        "Revise the answers and submit again.",
        link=stage_link(stage),
    )


def on_stage_approved(
    *, stage: ProjectStage, revision: Any, actor: Any, next_stage: Any, override: bool
) -> None:
    project = stage.project
    opened = (
        f" {next_stage.definition.order}. {next_stage.definition.title} is open."
        if (next_stage)
        else " Choose the project's outcome on the Iterate stage."
    )
    notify(
        recipients=project_members(project),
        kind=NotificationKind.STAGE_APPROVED,
        project=project,
        stage=stage,
        key=f"stage_approved:s{stage.pk}:r{revision.pk}",
        subject=f"[{project.title}] Approved: {_title(stage)}",
        body=f"Revision {revision.number} of {_title(stage)} passed its gate.{opened}",
        link=stage_link(next_stage or stage),
    )
    if override:
        # Staff read the instructor's name; the team of a course with anonymous reviewers reads
        # a label if the instructor also reviewed the project.
        team_names = names_for_team(project)
        for recipients, names in (
            (course_staff(project), NAMED),
            (project_members(project), team_names),
        ):
            notify(
                recipients=recipients,
                kind=NotificationKind.OVERRIDE,
                project=project,
                stage=stage,
                key=f"override:s{stage.pk}:r{revision.pk}",
                subject=f"[{project.title}] Instructor override on {_title(stage)}",
                body=f"{names.name_of(actor)} approved {_title(stage)} without its quorum. "
                f"Justification: {stage.override_justification}",
                link=stage_link(stage),
            )


def on_looped_back(
    *, project: Project, actor: Any, from_stage: ProjectStage, to_stage: ProjectStage, reason: str
) -> None:
    reopened = list(
        project.stages.filter(cycle=project.cycle).values_list("definition_id", flat=True)
    )
    notify(
        recipients=[*project_members(project), *stage_reviewers(project, reopened)],
        kind=NotificationKind.LOOPED_BACK,
        project=project,
        stage=to_stage,
        key=f"looped_back:p{project.pk}:c{project.cycle}",
        subject=f"[{project.title}] Back to {_title(to_stage)}: cycle {project.cycle}",
        body=f"{actor.name} looped the project back to {_title(to_stage)} — cycle "
        f"{project.cycle}. What they learned:\n\n{reason}",
        link=stage_link(to_stage),
    )


def on_assignment_created(*, assignment: ReviewAssignment) -> None:
    """A reviewer assigned while the stage waits in review hears about it at once."""
    from lifecycle.models import StageStatus

    stages = ProjectStage.objects.filter(
        project_id=assignment.project_id, status=StageStatus.IN_REVIEW
    ).select_related("definition", "project", "current_revision")
    for stage in stages:
        if not assignment.covers(stage.definition_id) or stage.current_revision is None:
            continue
        notify(
            recipients=[assignment.reviewer],
            kind=NotificationKind.REVIEW_REQUESTED,
            project=stage.project,
            stage=stage,
            key=f"review_requested:r{stage.current_revision_id}",
            subject=f"[{stage.project.title}] Review requested: {_title(stage)}, revision "
            f"{stage.current_revision.number}",
            body=f"You were assigned to review {_title(stage)} of “{stage.project.title}”.",
            link=review_link(stage),
        )


def on_project_nudged(
    *, project: Project, actor: Any, stage: ProjectStage | None, message: str, day: dt.date
) -> None:
    """Course staff nudged the team from the board: once per project, person and day."""
    link = absolute(stage.get_absolute_url() if stage else project.get_absolute_url())
    notify(
        recipients=project.members.filter(is_active=True),
        kind=NotificationKind.NUDGE,
        key=f"nudge:p{project.pk}:a{actor.pk}:{day.isoformat()}",
        project=project,
        stage=stage,
        subject=f"[{project.title}] A nudge from {actor.name}",
        body=message or f"{actor.name} is waiting to hear from your team.",
        link=link,
        payload={"nudged_by": actor.pk},
    )


# --- review events: comments and experts awaiting confirmation -----------------------------


def _thread_of(comment: Comment) -> list[Comment]:
    """Every comment of the thread ``comment`` belongs to, root first (one query: the
    revision's comments, walked up to their roots in Python)."""
    on_revision = {
        c.pk: c
        for c in Comment.objects.filter(revision_id=comment.revision_id).select_related("author")
    }
    on_revision.setdefault(comment.pk, comment)

    def root(c: Comment) -> int:
        seen = set()
        while c.parent_id is not None and c.parent_id in on_revision and c.pk not in seen:
            seen.add(c.pk)
            c = on_revision[c.parent_id]
        return c.pk

    mine = root(comment)
    return sorted(
        (c for c in on_revision.values() if root(c) == mine),
        key=lambda c: (c.parent_id is not None, c.created_at, c.pk),
    )


def on_comment_added(*, comment: Comment) -> None:
    """A new thread or a reply: the team hears it, and so does every reviewer who wrote in the
    thread and may still review the stage; the author never hears their own words."""
    stage = comment.revision.stage
    project = stage.project
    thread = _thread_of(comment)
    members = project_members(project)
    member_ids = {u.pk for u in members}
    writers = {c.author_id: c.author for c in thread if c.author_id not in member_ids}
    reviewers = [u for u in writers.values() if can_review(u, project, stage.definition_id)]
    recipients = [u for u in [*members, *reviewers] if u.pk != comment.author_id]
    root = thread[0]
    question = ""
    if comment.question_key:
        prompt = (
            stage.definition.questions.filter(key=comment.question_key)
            .values_list("prompt", flat=True)
            .first()
        )
        question = f" on “{prompt or comment.question_key}”"
    reply = comment.parent_id is not None
    excerpt = comment.body if len(comment.body) <= 600 else comment.body[:600] + "…"
    # Anonymous reviewers: the team reads the reviewer's label, the reviewers read the name.
    team_names = names_for_team(project)
    for group, names in (
        ([u for u in recipients if u.pk in member_ids], team_names),
        ([u for u in recipients if u.pk not in member_ids], NAMED),
    ):
        author = names.name_of(comment.author)
        notify(
            recipients=group,
            kind=NotificationKind.COMMENT_REPLY if reply else NotificationKind.COMMENT,
            project=project,
            stage=stage,
            key=f"comment:c{comment.pk}",
            subject=f"[{project.title}] {author} "
            + (f"replied{question}" if reply else f"commented{question}")
            + f" ({_title(stage)})",
            body=f"{author} wrote on revision {comment.revision.number} of "
            f"{_title(stage)}{question}:\n\n{excerpt}",
            link=review_link(stage) + f"#comment-{root.pk}",
            payload={"comment": comment.pk, "thread": root.pk},
        )


def _course_staff_of(course_id: int) -> list[User]:
    return [
        m.user
        for m in Membership.objects.filter(course_id=course_id, role__in=STAFF_ROLES)
        .select_related("user")
        .order_by("user_id")
    ]


def _reviewers_link(project: Project) -> str:
    return absolute(reverse("reviews:project_reviewers", args=[project.pk]))


def on_invitation_awaiting_confirmation(*, invitation: Invitation) -> None:
    """A team invited a domain expert and the course holds the link until staff confirm."""
    project = invitation.project
    if project is None:  # only a team's invitation waits, and a team invites to its project
        return
    who = f"{invitation.name} <{invitation.email}>" if invitation.name else invitation.email
    notify(
        recipients=_course_staff_of(invitation.course_id),
        kind=NotificationKind.EXPERT_CONFIRMATION,
        project=project,
        key=f"expert_confirmation:i{invitation.pk}",
        subject=f"[{project.title}] Confirm the expert the team invited: {who}",
        body=f"{invitation.invited_by.name} invited {who} as a domain-expert reviewer. The "
        "invitation is sent once course staff confirm the expert as independent.",
        link=_reviewers_link(project),
        payload={"invitation": invitation.pk},
    )


def on_expert_awaiting_confirmation(*, assignment: ReviewAssignment) -> None:
    """An expert the team proposed accepted; their decisions count once staff confirm them."""
    project = assignment.project
    expert = assignment.reviewer
    notify(
        recipients=_course_staff_of(project.course_id),
        kind=NotificationKind.EXPERT_CONFIRMATION,
        project=project,
        key=f"expert_confirmation:a{assignment.pk}",
        subject=f"[{project.title}] Confirm {expert.name} as an independent expert",
        body=f"{expert.name} accepted the team's invitation to review “{project.title}”. "
        "Their decisions count once course staff confirm them as independent.",
        link=_reviewers_link(project),
        payload={"assignment": assignment.pk},
    )


def on_review_flagged(*, flag: Any, project: Project) -> None:
    """A team member flagged a review as unfair: course staff read the flag, who raised it and
    who wrote the review (staff see names even under anonymous review), except the reviewer."""
    decision = flag.decision
    stage = decision.revision.stage
    # A TA whose own review was flagged is not told who flagged it: the rest of the staff are.
    staff = [u for u in _course_staff_of(project.course_id) if u.pk != decision.reviewer_id]
    notify(
        recipients=staff,
        kind=NotificationKind.REVIEW_FLAGGED,
        project=project,
        stage=stage,
        key=f"review_flagged:f{flag.pk}",
        subject=f"[{project.title}] A review was flagged as unfair",
        body=f"{flag.raised_by.name} flagged the review by {decision.reviewer.name} on "
        f"“{stage.definition.title}” (revision {decision.revision.number}) as unfair: "
        f"{flag.reason}",
        link=absolute(reverse("reviews:course_flags", args=[project.course_id])),
        payload={"flag": flag.pk, "decision": decision.pk},
    )


def connect() -> None:
    events.subscribe(events.STAGE_SUBMITTED, on_stage_submitted)
    events.subscribe(events.STAGE_CHANGES_REQUESTED, on_changes_requested)
    events.subscribe(events.STAGE_APPROVED, on_stage_approved)
    events.subscribe(events.PROJECT_LOOPED_BACK, on_looped_back)
    review_events.subscribe(review_events.ASSIGNMENT_CREATED, on_assignment_created)
    review_events.subscribe(review_events.PROJECT_NUDGED, on_project_nudged)
    review_events.subscribe(review_events.COMMENT_ADDED, on_comment_added)
    review_events.subscribe(
        review_events.INVITATION_AWAITING_CONFIRMATION, on_invitation_awaiting_confirmation
    )
    review_events.subscribe(
        review_events.EXPERT_AWAITING_CONFIRMATION, on_expert_awaiting_confirmation
    )
    review_events.subscribe(review_events.REVIEW_FLAGGED, on_review_flagged)
