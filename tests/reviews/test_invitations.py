"""Invitations for domain experts from outside the university: the token, the e-mail, accepting
(new person or signed-in user), unusable links, scope, the course's policy for team invitations,
revocation, and two people clicking one link at the same moment."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import re
import threading
from collections import Counter

import pytest
import time_machine
from concurrency import race
from django.conf import settings as django_settings
from django.contrib.auth.models import AnonymousUser
from django.core import mail
from django.urls import reverse
from django.utils import timezone
from factories import current_stage, declare_no_conflict, fill_and_submit

from accounts.models import User
from lifecycle import freshness
from lifecycle import services as lifecycle_services
from lifecycle.audit import verify_chain
from lifecycle.errors import IllegalTransition, InvalidAnswers, NotAllowed
from lifecycle.models import AuditEvent, ProjectStage
from reviews import services
from reviews.models import Decision, Invitation, ReviewAssignment
from reviews.services import InvitationUnusable

pytestmark = pytest.mark.django_db

EXPERT_EMAIL = "dr.okafor@example.test"
PASSWORD = "a-long-and-unusual-passphrase"


@pytest.fixture(autouse=True)
def _the_audit_chain_stays_intact(db):
    yield
    report = verify_chain()
    assert report.intact, f"audit chain broken at #{report.broken_at}: {report.reason}"


def stage_one(p) -> ProjectStage:
    return current_stage(p.project)


def invite_expert(p, *, actor=None, project=None, stage=True, email=EXPERT_EMAIL):
    project = project or p.project
    definition = (
        ProjectStage.objects.get(project=project, cycle=1, definition__order=1).definition
        if stage
        else None
    )
    return services.invitation_create(
        actor=actor or p.tina,
        course=p.course,
        email=email,
        project=project,
        stage_definition=definition,
        name="Dr Okafor",
    )


def tampered(token: str) -> str:
    middle = len(token) // 2
    swapped = "A" if token[middle] != "A" else "B"
    return token[:middle] + swapped + token[middle + 1 :]


def set_policy(p, policy: str) -> None:
    lifecycle_services.course_update_settings(
        course=p.course, actor=p.ian, expert_invitations=policy
    )
    p.course.refresh_from_db()


# --- the token ------------------------------------------------------------------------------


def test_a_token_carries_at_least_128_random_bits_and_never_repeats(personas):
    p = personas
    tokens = [
        services.invitation_create(actor=p.tina, course=p.course, email=f"x{i}@example.test")[1]
        for i in range(100)
    ]
    for token in tokens:
        # URL-safe base64 holds 6 bits per character: 22 characters are 132 bits.
        assert len(token) >= 22
        assert re.fullmatch(r"[A-Za-z0-9_-]+", token)
    assert len(set(tokens)) == 100


def test_only_the_sha256_of_the_token_is_stored(personas):
    p = personas
    invitation, token = invite_expert(p)

    row = Invitation.objects.filter(pk=invitation.pk).values().get()

    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert not [name for name, value in row.items() if token in str(value)]
    audit = AuditEvent.objects.filter(verb="invitation.create").values("old", "new").get()
    assert token not in json.dumps(audit)
    assert services.invitation_for_token(token) == invitation


# --- the e-mail -----------------------------------------------------------------------------


def test_the_invitation_email_has_text_and_html_names_the_stage_and_holds_the_link(
    personas, django_capture_on_commit_callbacks
):
    p = personas
    stage = stage_one(p)
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        invitation, token = invite_expert(p)

    [message] = mail.outbox
    link = django_settings.SITE_URL.rstrip("/") + reverse("reviews:invitation_accept", args=[token])
    assert message.to == [EXPERT_EMAIL]
    assert p.project.title in message.subject
    assert stage.definition.title in message.subject
    assert link in message.body
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    assert f'href="{link}"' in html
    assert p.project.title in html
    invitation.refresh_from_db()
    assert invitation.sent_at is not None


def test_no_email_leaves_before_the_invitation_commits(
    personas, django_capture_on_commit_callbacks
):
    p = personas
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        invite_expert(p)
    assert mail.outbox == []
    assert len(freshness.other_callbacks(callbacks)) == 1  # touch() adds its own


# --- accepting ------------------------------------------------------------------------------


def test_a_new_person_accepting_gets_one_account_and_an_expert_assignment_for_the_stage(
    personas,
):
    p = personas
    invitation, token = invite_expert(p)
    users_before = User.objects.count()

    user, _accepted, assignment = services.invitation_accept_new_user(
        token=token, display_name="Dr Ngozi Okafor", password=PASSWORD
    )

    assert User.objects.count() == users_before + 1
    assert user.email == EXPERT_EMAIL and user.name == "Dr Ngozi Okafor"
    assert user.check_password(PASSWORD)
    assert (assignment.project, assignment.stage_definition, assignment.role) == (
        p.project,
        stage_one(p).definition,
        "expert",
    )
    assert assignment.is_active and assignment.assigned_by == p.tina
    invitation.refresh_from_db()
    assert invitation.accepted_by == user and invitation.accepted_at
    assert invitation.state() == "accepted"
    [event] = AuditEvent.objects.filter(verb="invitation.accept")
    assert event.actor == user and event.new["assignment"] == assignment.pk


def test_a_new_person_without_a_name_takes_the_name_on_the_invitation(personas):
    p = personas
    _, token = invite_expert(p)
    user, _, _ = services.invitation_accept_new_user(
        token=token, display_name=" ", password=PASSWORD
    )
    assert user.name == "Dr Okafor"


def test_the_accepted_expert_decides_on_the_stage_in_the_expert_role(personas):
    p = personas
    _, token = invite_expert(p)
    expert, _, _ = services.invitation_accept_new_user(
        token=token, display_name="Dr Okafor", password=PASSWORD
    )
    revision = fill_and_submit(stage_one(p), p.alice)
    declare_no_conflict(p.project, expert)

    decision = services.decision_record(revision=revision, reviewer=expert, outcome="approve")

    assert decision.role == "expert"


def test_a_signed_in_user_accepts_with_their_existing_account(personas):
    p = personas
    _, token = invite_expert(p, email="Erin@Example.test")  # her address, in another case
    users_before = User.objects.count()

    invitation, assignment = services.invitation_accept(token=token, user=p.erin)

    assert User.objects.count() == users_before
    assert invitation.accepted_by == p.erin
    assert (assignment.reviewer, assignment.role) == (p.erin, "expert")
    assert assignment.stage_definition == stage_one(p).definition


def test_accepting_while_signed_out_is_refused(personas):
    p = personas
    invitation, token = invite_expert(p)
    with pytest.raises(NotAllowed):
        services.invitation_accept(token=token, user=AnonymousUser())
    invitation.refresh_from_db()
    assert invitation.state() == "pending"


def test_a_new_account_for_an_address_that_has_one_is_refused(personas):
    p = personas
    invitation, token = invite_expert(p, email=p.erin.email.upper())
    users_before = User.objects.count()
    with pytest.raises(InvalidAnswers) as refused:
        services.invitation_accept_new_user(token=token, display_name="Erin", password=PASSWORD)
    assert "sign in" in refused.value.errors["__all__"][0]
    assert User.objects.count() == users_before
    invitation.refresh_from_db()
    assert invitation.state() == "pending"


def test_a_team_member_cannot_accept_an_invitation_to_their_own_project(personas):
    p = personas
    invitation, token = invite_expert(p, email="someone@example.test")
    with pytest.raises(NotAllowed):
        services.invitation_accept(token=token, user=p.bob)
    invitation.refresh_from_db()
    assert invitation.state() == "pending"
    assert not ReviewAssignment.objects.exists()


# --- unusable links -------------------------------------------------------------------------


def _expired(p, invitation, token):
    days = p.course.invitation_expiry_days
    return token, time_machine.travel(timezone.now() + dt.timedelta(days=days, minutes=1))


def _used(p, invitation, token):
    services.invitation_accept_new_user(token=token, display_name="Dr Okafor", password=PASSWORD)
    return token, None


def _revoked(p, invitation, token):
    services.invitation_revoke(invitation=invitation, actor=p.tina)
    return token, None


def _unknown(p, invitation, token):
    return tampered(token), None


@pytest.mark.parametrize(
    ("make_unusable", "state"),
    [(_expired, "expired"), (_used, "accepted"), (_revoked, "revoked"), (_unknown, "unknown")],
)
@pytest.mark.parametrize("how", ["new_account", "signed_in"])
def test_an_unusable_link_is_refused_with_its_state_and_never_makes_an_account(
    personas, make_unusable, state, how
):
    p = personas
    invitation, token = invite_expert(p)
    token, clock = make_unusable(p, invitation, token)
    users_before = User.objects.count()
    assignments_before = ReviewAssignment.objects.count()
    events_before = AuditEvent.objects.count()

    with clock or contextlib.nullcontext(), pytest.raises(InvitationUnusable) as refused:
        if how == "new_account":
            services.invitation_accept_new_user(
                token=token, display_name="Mallory", password=PASSWORD
            )
        else:
            services.invitation_accept(token=token, user=p.oscar)

    assert refused.value.state == state
    assert refused.value.message  # a sentence for the page
    assert User.objects.count() == users_before
    # Only the acceptance that used the link made the invited person's account.
    assert User.objects.filter(email=EXPERT_EMAIL).count() == (state == "accepted")
    assert ReviewAssignment.objects.count() == assignments_before
    assert AuditEvent.objects.count() == events_before


def test_a_link_is_still_good_just_before_it_expires(personas):
    p = personas
    _, token = invite_expert(p)
    days = p.course.invitation_expiry_days
    with time_machine.travel(timezone.now() + dt.timedelta(days=days, minutes=-1)):
        services.invitation_accept_new_user(token=token, display_name="Dr O", password=PASSWORD)
    assert User.objects.filter(email=EXPERT_EMAIL).exists()


def test_the_expiry_follows_the_course_setting(personas):
    p = personas
    lifecycle_services.course_update_settings(
        course=p.course, actor=p.ian, invitation_expiry_days=3
    )
    p.course.refresh_from_db()
    invitation, token = invite_expert(p)
    lifetime = invitation.expires_at - invitation.created_at
    assert abs(lifetime - dt.timedelta(days=3)) < dt.timedelta(seconds=1)
    with (
        time_machine.travel(timezone.now() + dt.timedelta(days=3, minutes=1)),
        pytest.raises(InvitationUnusable) as refused,
    ):
        services.invitation_accept(token=token, user=p.erin)
    assert refused.value.state == "expired"


# --- scope ----------------------------------------------------------------------------------


def test_an_expert_invited_for_one_stage_decides_on_nothing_else(personas):
    p = personas
    _, token = invite_expert(p)
    expert, _, _ = services.invitation_accept_new_user(
        token=token, display_name="Dr Okafor", password=PASSWORD
    )
    other_revision = fill_and_submit(current_stage(p.other_project), p.carol)
    with pytest.raises(NotAllowed):
        services.decision_record(revision=other_revision, reviewer=expert, outcome="approve")

    revision = fill_and_submit(stage_one(p), p.alice)
    declare_no_conflict(p.project, expert)
    services.decision_record(revision=revision, reviewer=expert, outcome="approve")
    services.decision_record(revision=revision, reviewer=p.tina, outcome="approve")
    stage_two = current_stage(p.project)
    assert stage_two.definition.order == 2
    revision_two = fill_and_submit(stage_two, p.alice)
    with pytest.raises(NotAllowed):
        services.decision_record(revision=revision_two, reviewer=expert, outcome="approve")

    assert list(Decision.objects.filter(reviewer=expert).values_list("revision", flat=True)) == [
        revision.pk
    ]


def test_an_expert_invited_for_a_whole_project_reviews_each_of_its_stages(personas):
    p = personas
    _, token = invite_expert(p, stage=False)
    expert, _, assignment = services.invitation_accept_new_user(
        token=token, display_name="Dr Okafor", password=PASSWORD
    )
    assert assignment.stage_definition is None
    other_revision = fill_and_submit(current_stage(p.other_project), p.carol)
    with pytest.raises(NotAllowed):
        services.decision_record(revision=other_revision, reviewer=expert, outcome="approve")
    revision = fill_and_submit(stage_one(p), p.alice)
    declare_no_conflict(p.project, expert)
    assert services.decision_record(revision=revision, reviewer=expert, outcome="approve")


def test_a_course_invitation_makes_an_account_but_no_assignment(personas):
    p = personas
    _, token = services.invitation_create(actor=p.ian, course=p.course, email=EXPERT_EMAIL)
    expert, invitation, assignment = services.invitation_accept_new_user(
        token=token, display_name="Dr Okafor", password=PASSWORD
    )
    assert assignment is None and invitation.scope == "course"
    revision = fill_and_submit(stage_one(p), p.alice)
    with pytest.raises(NotAllowed):
        services.decision_record(revision=revision, reviewer=expert, outcome="approve")


def test_a_stage_invitation_needs_its_project(personas):
    p = personas
    with pytest.raises(InvalidAnswers):
        services.invitation_create(
            actor=p.tina,
            course=p.course,
            email=EXPERT_EMAIL,
            project=None,
            stage_definition=stage_one(p).definition,
        )


# --- team invitations and the course's policy -----------------------------------------------


def test_a_team_cannot_invite_when_the_course_does_not_allow_it(
    personas, django_capture_on_commit_callbacks
):
    p = personas
    set_policy(p, "not_allowed")
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(NotAllowed):
        invite_expert(p, actor=p.alice)
    assert not Invitation.objects.exists()
    assert mail.outbox == []
    # Course staff still can.
    with django_capture_on_commit_callbacks(execute=True):
        invite_expert(p, actor=p.tina)
    assert len(mail.outbox) == 1


def test_a_team_invites_an_expert_directly_when_the_course_allows_it(
    personas, django_capture_on_commit_callbacks
):
    p = personas
    set_policy(p, "allowed")
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        invitation, token = invite_expert(p, actor=p.alice)
    assert invitation.state() == "pending" and not invitation.needs_confirmation
    [message] = mail.outbox
    assert token in message.body
    assert services.invitation_accept_new_user(
        token=token, display_name="Dr Okafor", password=PASSWORD
    )


def test_a_team_invitation_waits_for_staff_confirmation_which_sends_a_fresh_token(
    personas, django_capture_on_commit_callbacks
):
    p = personas
    set_policy(p, "after_confirmation")
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        invitation, first_token = invite_expert(p, actor=p.alice, email=p.erin.email)
    # Nothing reaches the expert yet; course staff are told it waits for them.
    assert [m.to for m in mail.outbox if p.erin.email in m.to] == []
    assert sorted(m.to[0] for m in mail.outbox) == sorted([p.tina.email, p.ian.email])
    mail.outbox.clear()
    assert invitation.state() == "awaiting_confirmation"
    with pytest.raises(InvitationUnusable) as refused:
        services.invitation_accept(token=first_token, user=p.erin)
    assert refused.value.state == "awaiting_confirmation"
    for who in (p.alice, p.bob, p.erin):
        with pytest.raises(NotAllowed):
            services.invitation_confirm(invitation=invitation, actor=who)

    with django_capture_on_commit_callbacks(execute=True):
        confirmed, token = services.invitation_confirm(invitation=invitation, actor=p.tina)

    assert token != first_token
    assert confirmed.confirmed_by == p.tina and confirmed.state() == "pending"
    [message] = mail.outbox
    assert token in message.body and first_token not in message.body
    with pytest.raises(InvitationUnusable) as refused:
        services.invitation_accept(token=first_token, user=p.erin)
    assert refused.value.state == "unknown"
    with pytest.raises(IllegalTransition):
        services.invitation_confirm(invitation=invitation, actor=p.ian)
    _, accepted = services.invitation_accept(token=token, user=p.erin)
    assert accepted.reviewer == p.erin
    assert AuditEvent.objects.filter(verb="invitation.confirm").count() == 1


def test_staff_invitations_need_no_confirmation_under_any_policy(personas):
    p = personas
    set_policy(p, "after_confirmation")
    invitation, _ = invite_expert(p, actor=p.tina)
    assert invitation.state() == "pending"


@pytest.mark.parametrize("who", ["carol", "erin", "oscar"])
def test_only_the_team_and_course_staff_invite_for_a_project(personas, who):
    p = personas
    with pytest.raises(NotAllowed):
        invite_expert(p, actor=getattr(p, who))
    assert not Invitation.objects.exists()


def test_a_team_member_cannot_send_a_course_wide_invitation(personas):
    p = personas
    with pytest.raises(NotAllowed):
        services.invitation_create(actor=p.alice, course=p.course, email=EXPERT_EMAIL)


@pytest.mark.parametrize("email", ["bob@example.test", "  Alice@Example.TEST "])
def test_a_team_members_address_is_refused(personas, email):
    p = personas
    with pytest.raises(InvalidAnswers) as refused:
        invite_expert(p, email=email)
    assert "email" in refused.value.errors
    assert not Invitation.objects.exists()


# --- revoking -------------------------------------------------------------------------------


def test_whoever_sent_an_invitation_can_revoke_it(personas):
    p = personas
    invitation, _token = invite_expert(p, actor=p.alice)
    for who in (p.bob, p.carol, p.erin, p.oscar):
        with pytest.raises(NotAllowed):
            services.invitation_revoke(invitation=invitation, actor=who)

    services.invitation_revoke(invitation=invitation, actor=p.alice)

    invitation.refresh_from_db()
    assert invitation.revoked_by == p.alice and invitation.state() == "revoked"
    [event] = AuditEvent.objects.filter(verb="invitation.revoke")
    assert event.actor == p.alice and event.object_id == str(invitation.pk)
    with pytest.raises(IllegalTransition):
        services.invitation_revoke(invitation=invitation, actor=p.tina)


@pytest.mark.parametrize("who", ["tina", "ian"])
def test_course_staff_can_revoke_any_invitation_of_their_course(personas, who):
    p = personas
    invitation, _ = invite_expert(p, actor=p.alice)
    services.invitation_revoke(invitation=invitation, actor=getattr(p, who))
    invitation.refresh_from_db()
    assert invitation.state() == "revoked"


def test_an_accepted_invitation_cannot_be_revoked(personas):
    p = personas
    invitation, token = invite_expert(p, email=p.erin.email)
    services.invitation_accept(token=token, user=p.erin)
    with pytest.raises(IllegalTransition):
        services.invitation_revoke(invitation=invitation, actor=p.tina)


# --- two people, one link -------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("threads", [2, 10])
@pytest.mark.parametrize("round_", range(3))
def test_simultaneous_acceptances_of_one_link_make_one_account_and_one_acceptance(
    personas, threads, round_
):
    p = personas
    invitation, token = invite_expert(p)

    results = race(
        threads,
        lambda i: services.invitation_accept_new_user(
            token=token, display_name=f"Clicker {i}", password=PASSWORD
        ),
    )

    winners = [value for status, value in results if status == "ok"]
    losers = [value for status, value in results if status != "ok"]
    assert len(winners) == 1
    assert all(isinstance(e, InvitationUnusable | InvalidAnswers) for e in losers), losers
    assert all(e.state == "accepted" for e in losers if isinstance(e, InvitationUnusable))
    assert Counter(status for status, _ in results) == {"ok": 1, "error": threads - 1}
    [user, _accepted, assignment] = winners[0]
    assert list(User.objects.filter(email=EXPERT_EMAIL)) == [user]
    invitation.refresh_from_db()
    assert invitation.accepted_by == user
    assert list(ReviewAssignment.objects.filter(project=p.project)) == [assignment]
    assert AuditEvent.objects.filter(verb="invitation.accept").count() == 1
    assert verify_chain().intact


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("action", ["accept", "revoke"])
def test_an_invitation_and_a_decision_on_the_same_project_at_once_both_go_through(
    personas, monkeypatch, action
):
    """The decision holds the project's lock until it commits, its audit event last. The
    acceptance or revocation references that project too (its assignment, its audit event):
    neither may wait on the project while holding the audit chain, or the two deadlock and
    PostgreSQL kills one of them."""
    p = personas
    stage = stage_one(p)
    services.assignment_create(
        project=p.project,
        actor=p.tina,
        reviewer=p.erin,
        role="expert",
        stage_definition=stage.definition,
    )
    declare_no_conflict(p.project, p.erin)
    revision = fill_and_submit(stage, p.alice)
    invitation, token = invite_expert(p)
    decision_holds_project = threading.Event()
    other_started = threading.Event()
    real_reviewer_role = services.permissions.reviewer_role

    def slow_reviewer_role(*args, **kwargs):
        # Called by decision_record once the project row is locked.
        decision_holds_project.set()
        other_started.wait(timeout=10)
        threading.Event().wait(0.5)  # let the other transaction reach its locks
        return real_reviewer_role(*args, **kwargs)

    monkeypatch.setattr(services.permissions, "reviewer_role", slow_reviewer_role)

    def work(i: int):
        if i == 0:
            return services.decision_record(revision=revision, reviewer=p.erin, outcome="approve")
        decision_holds_project.wait(timeout=10)
        other_started.set()
        if action == "accept":
            return services.invitation_accept_new_user(
                token=token, display_name="Dr Okafor", password=PASSWORD
            )
        return services.invitation_revoke(invitation=invitation, actor=p.tina)

    results = race(2, work)

    assert [status for status, _ in results] == ["ok", "ok"], results
    assert Decision.objects.filter(revision=revision).count() == 1
    invitation.refresh_from_db()
    assert invitation.state() == ("accepted" if action == "accept" else "revoked")
    assert verify_chain().intact


def test_a_second_invitation_for_the_same_person_is_allowed(personas):
    p = personas
    invite_expert(p)
    second, _ = invite_expert(p)
    assert Invitation.objects.filter(email=EXPERT_EMAIL).count() == 2
    assert second.state() == "pending"


def test_invitation_audit_events_carry_the_scope(personas):
    p = personas
    _invitation, _ = invite_expert(p, actor=p.alice)
    [event] = AuditEvent.objects.filter(verb="invitation.create")
    assert event.actor == p.alice and event.project_id == p.project.pk
    assert event.new["scope"] == "stage"
    assert event.new["stage"] == stage_one(p).definition.key
    assert event.new["needs_confirmation"] is False
