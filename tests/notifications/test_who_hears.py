"""Every hand-off reaches everyone who must act, and nobody else: comments and replies, review
requested (staff too whenever the gate needs staff), a team's expert awaiting staff
confirmation. Each kind keeps the person's e-mail preference (immediate or daily digest).

Alice and Bob are the team, Carol another team's student, Tina the TA, Ian the instructor,
Erin an outside expert, Oscar an outsider."""

from __future__ import annotations

from typing import Any

import pytest
from factories import UserFactory, current_stage, declare_no_conflict, fill_and_submit

from accounts.models import EmailFrequency, User
from lifecycle.models import ExpertInvitationPolicy, StageDefinition
from notifications.models import EmailStatus, Notification, NotificationKind
from reviews import services
from reviews.models import ReviewAssignment

pytestmark = pytest.mark.django_db


def assign(p: Any, reviewer: User, *, order: int = 1) -> ReviewAssignment:
    definition = p.project.template.stages.get(order=order)
    assignment = services.assignment_create(
        project=p.project,
        actor=p.ian,
        reviewer=reviewer,
        role="expert",
        stage_definition=definition,
    )
    declare_no_conflict(p.project, reviewer)
    return assignment


def heard(kind: str) -> set[User]:
    """Who got a notification of this kind; fails if anyone got two."""
    people = [
        n.recipient for n in Notification.objects.filter(kind=kind).select_related("recipient")
    ]
    assert len(people) == len(set(people)), f"someone got two {kind} notifications"
    return set(people)


def everyone(p: Any) -> set[User]:
    return {p.alice, p.bob, p.carol, p.tina, p.ian, p.erin, p.oscar}


def comment(p: Any, author: User, body: str = "Who are the affected communities?", **kw: Any):
    revision = current_stage(p.project).current_revision
    return services.comment_add(revision=revision, author=author, body=body, **kw)


# --- review requested ----------------------------------------------------------------------


def test_review_requested_reaches_the_assigned_expert_and_the_staff_the_gate_needs(personas):
    p = personas
    assign(p, p.erin)  # before the fix, an assigned reviewer kept staff from hearing

    fill_and_submit(current_stage(p.project), p.alice)

    told = heard(NotificationKind.REVIEW_REQUESTED)
    assert told == {p.erin, p.tina, p.ian}
    assert not told & {p.alice, p.bob, p.carol, p.oscar}


def _gate(p: Any, *, staff: int, expert: int, total: int) -> None:
    StageDefinition.objects.filter(pk=current_stage(p.project).definition_id).update(
        min_staff_approvals=staff, min_expert_approvals=expert, min_approvals=total
    )


def test_review_requested_skips_staff_when_the_gate_needs_only_the_assigned_expert(personas):
    p = personas
    _gate(p, staff=0, expert=1, total=1)
    assign(p, p.erin)

    fill_and_submit(current_stage(p.project), p.alice)

    assert heard(NotificationKind.REVIEW_REQUESTED) == {p.erin}


def test_review_requested_tells_staff_when_an_expert_part_has_no_expert_assigned(personas):
    p = personas
    _gate(p, staff=0, expert=1, total=1)

    fill_and_submit(current_stage(p.project), p.alice)

    # Nobody can give the expert approval yet: staff must assign or invite one.
    assert heard(NotificationKind.REVIEW_REQUESTED) == {p.tina, p.ian}


def test_review_requested_tells_staff_when_approvals_beyond_the_role_minimums_are_needed(
    personas,
):
    p = personas
    _gate(p, staff=0, expert=1, total=2)  # one more approval, which staff can give
    assign(p, p.erin)

    fill_and_submit(current_stage(p.project), p.alice)

    assert heard(NotificationKind.REVIEW_REQUESTED) == {p.erin, p.tina, p.ian}


# --- comments and replies ------------------------------------------------------------------


def test_a_reviewers_comment_reaches_the_team_and_not_its_author(personas):
    p = personas
    assign(p, p.erin)
    fill_and_submit(current_stage(p.project), p.alice)

    thread = comment(p, p.erin, question_key="problem-statement")

    assert heard(NotificationKind.COMMENT) == {p.alice, p.bob}
    row = Notification.objects.get(kind=NotificationKind.COMMENT, recipient=p.alice)
    assert row.link.endswith(f"/reviews/stages/{row.stage_id}/#comment-{thread.pk}")
    assert "Who are the affected communities?" in row.body


def test_a_reply_reaches_the_team_and_the_reviewers_in_the_thread_never_the_author(personas):
    p = personas
    assign(p, p.erin)
    fill_and_submit(current_stage(p.project), p.alice)
    thread = comment(p, p.erin)
    comment(p, p.ian, "Staff's other thread.")  # Ian writes elsewhere, not in Erin's thread
    Notification.objects.all().delete()

    comment(p, p.alice, "Teachers and parents; see the register.", parent=thread)

    told = heard(NotificationKind.COMMENT_REPLY)
    assert told == {p.bob, p.erin}
    assert not told & (everyone(p) - {p.bob, p.erin})


def test_a_staff_reply_reaches_the_team_and_every_reviewer_already_in_the_thread(personas):
    p = personas
    assign(p, p.erin)
    fill_and_submit(current_stage(p.project), p.alice)
    thread = comment(p, p.erin)
    reply = comment(p, p.alice, "Teachers.", parent=thread)
    Notification.objects.all().delete()

    comment(p, p.tina, "And the pupils?", parent=reply)  # a reply to a reply: same thread

    assert heard(NotificationKind.COMMENT_REPLY) == {p.alice, p.bob, p.erin}


def test_a_reviewer_who_can_no_longer_review_the_stage_hears_no_more_of_the_thread(personas):
    p = personas
    assignment = assign(p, p.erin)
    fill_and_submit(current_stage(p.project), p.alice)
    thread = comment(p, p.erin)
    services.assignment_withdraw(assignment=assignment, actor=p.ian)
    Notification.objects.all().delete()

    comment(p, p.bob, "Answered in the register.", parent=thread)

    assert heard(NotificationKind.COMMENT_REPLY) == {p.alice}


# --- experts awaiting staff confirmation ---------------------------------------------------


def test_a_team_invitation_held_for_confirmation_tells_the_course_staff(personas):
    p = personas
    p.course.expert_invitations = ExpertInvitationPolicy.AFTER_CONFIRMATION
    p.course.save(update_fields=["expert_invitations"])

    services.invitation_create(
        actor=p.alice, course=p.course, project=p.project, email="okafor@clinic.test"
    )

    assert heard(NotificationKind.EXPERT_CONFIRMATION) == {p.tina, p.ian}
    row = Notification.objects.get(kind=NotificationKind.EXPERT_CONFIRMATION, recipient=p.tina)
    assert "okafor@clinic.test" in row.subject
    assert row.link.endswith(f"/reviews/projects/{p.project.pk}/reviewers/")


def test_a_staff_invitation_needs_no_confirmation_and_tells_nobody_to_confirm(personas):
    p = personas
    services.invitation_create(
        actor=p.tina, course=p.course, project=p.project, email="okafor@clinic.test"
    )

    assert heard(NotificationKind.EXPERT_CONFIRMATION) == set()


def test_an_expert_the_team_invited_who_accepted_waits_for_staff_who_are_told(personas):
    p = personas
    assert p.course.team_experts_need_confirmation  # the default
    _, token = services.invitation_create(
        actor=p.alice, course=p.course, project=p.project, email=p.erin.email
    )

    _, assignment = services.invitation_accept(token=token, user=p.erin)

    assert assignment is not None and assignment.awaiting_confirmation
    assert heard(NotificationKind.EXPERT_CONFIRMATION) == {p.tina, p.ian}


# --- the e-mail preference -----------------------------------------------------------------


def _comment_and_reply(p: Any) -> None:
    assign(p, p.erin)
    fill_and_submit(current_stage(p.project), p.alice)
    thread = comment(p, p.erin)
    comment(p, p.bob, "Yes.", parent=thread)


def _held_invitation(p: Any) -> None:
    p.course.expert_invitations = ExpertInvitationPolicy.AFTER_CONFIRMATION
    p.course.save(update_fields=["expert_invitations"])
    services.invitation_create(
        actor=p.alice, course=p.course, project=p.project, email="okafor@clinic.test"
    )


CASES = {
    NotificationKind.REVIEW_REQUESTED: (
        lambda p: fill_and_submit(current_stage(p.project), p.alice),
        "tina",
        "ian",
    ),
    NotificationKind.COMMENT: (_comment_and_reply, "alice", "bob"),
    NotificationKind.COMMENT_REPLY: (_comment_and_reply, "erin", "alice"),
    NotificationKind.EXPERT_CONFIRMATION: (_held_invitation, "tina", "ian"),
}


@pytest.mark.parametrize("kind", list(CASES), ids=[str(k) for k in CASES])
def test_each_new_kind_waits_for_the_digest_of_whoever_chose_it(personas, kind):
    p = personas
    act, on_digest, immediate = CASES[kind]
    digest_reader = getattr(p, on_digest)
    digest_reader.email_frequency = EmailFrequency.DAILY_DIGEST
    digest_reader.save(update_fields=["email_frequency"])

    act(p)

    statuses = dict(
        Notification.objects.filter(kind=kind).values_list("recipient__email", "email_status")
    )
    assert statuses[digest_reader.email] == EmailStatus.DIGEST
    assert statuses[getattr(p, immediate).email] == EmailStatus.PENDING


def test_an_outsider_and_another_team_hear_nothing_of_any_of_it(personas):
    p = personas
    gwen = UserFactory(display_name="Gwen")  # expert on another project only
    services.assignment_create(
        project=p.other_project,
        actor=p.ian,
        reviewer=gwen,
        role="expert",
        stage_definition=None,
    )
    _comment_and_reply(p)
    Notification.objects.filter(recipient=gwen).delete()  # her own assignment's news

    assert not Notification.objects.filter(recipient__in=[p.carol, p.oscar, gwen]).exists()
