"""Issue 10, defects 1 and 5, attacked as the issue describes: an invitation link works only for
the address it was sent to and never makes a course member a reviewer; an expert a team
proposes decides only once staff confirm them, and every expert declares conflicts first."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from factories import UserFactory, current_stage, declare_no_conflict, enrol, fill_and_submit

from accounts.models import User
from lifecycle import services as lifecycle_services
from lifecycle.audit import verify_chain
from lifecycle.errors import IllegalTransition, InvalidAnswers, NotAllowed
from lifecycle.models import AuditEvent, Role, StageStatus
from reviews import services
from reviews.models import (
    AssignmentState,
    ConflictDeclaration,
    Decision,
    Invitation,
    ReviewAssignment,
)

pytestmark = pytest.mark.django_db

EXPERT = "mei.chen@hospital.example"
PASSWORD = "a-long-and-unusual-passphrase-2026"


@pytest.fixture(autouse=True)
def _the_audit_chain_stays_intact(db):
    yield
    report = verify_chain()
    assert report.intact, f"audit chain broken at #{report.broken_at}: {report.reason}"


def signed_in(user: User, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def invite(p, *, actor=None, email=EXPERT):
    stage = current_stage(p.project)
    return services.invitation_create(
        actor=actor or p.tina,
        course=p.course,
        project=p.project,
        stage_definition=stage.definition,
        email=email,
    )


def link(token: str) -> str:
    return reverse("reviews:invitation_accept", args=[token])


def review_url(stage) -> str:
    return reverse("reviews:review_stage", args=[stage.pk])


def csrf_from(response) -> str:
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.content.decode())
    assert found, "the page has a CSRF token"
    return found.group(1)


# --- defect 1: the link is bound to the invited address ------------------------------------


def test_carol_opening_alices_expert_link_while_signed_in_is_refused_and_the_page_stays_404(
    personas,
):
    p = personas
    stage = current_stage(p.project)
    _, token = invite(p)
    fill_and_submit(stage, p.alice)
    carol = signed_in(p.carol)
    assert carol.get(review_url(stage)).status_code == 404

    page = carol.get(link(token))
    assert page.status_code == 403
    html = page.content.decode()
    assert "This invitation is for someone else" in html
    assert EXPERT in html and p.carol.email in html
    # A POST sign-out form that comes back to the link.
    assert f'action="{reverse("accounts:logout")}"' in html
    assert f'name="next" value="{link(token)}"' in html

    refused = carol.post(link(token))
    assert refused.status_code == 403
    assert not ReviewAssignment.objects.filter(reviewer=p.carol).exists()
    assert Invitation.objects.get().state() == "pending"
    assert carol.get(review_url(stage)).status_code == 404
    assert (
        carol.post(
            reverse("reviews:stage_decide", args=[stage.pk]),
            {"revision": stage.revisions.get().pk, "outcome": "approve"},
        ).status_code
        == 404
    )


def test_an_outsider_holding_a_forwarded_link_is_refused_by_the_service_too(personas):
    p = personas
    _, token = invite(p)
    with pytest.raises(services.WrongInvitee):
        services.invitation_accept(token=token, user=p.oscar)
    assert Invitation.objects.get().accepted_at is None


def test_signing_out_from_the_refusal_returns_to_the_link_under_csrf(personas):
    p = personas
    _, token = invite(p)
    client = signed_in(p.carol, enforce_csrf_checks=True)
    page = client.get(link(token))
    forged = client.post(reverse("accounts:logout"), {"next": link(token)})
    assert forged.status_code == 403  # no CSRF token: nobody signs Carol out from elsewhere
    out = client.post(
        reverse("accounts:logout"), {"next": link(token), "csrfmiddlewaretoken": csrf_from(page)}
    )
    assert out.status_code == 302 and out["Location"] == link(token)
    again = client.get(link(token))
    assert again.status_code == 200
    assert "Set up your reviewer account" in again.content.decode()


def test_the_invited_person_signed_in_accepts(personas):
    p = personas
    _, token = invite(p, email=p.erin.email)
    client = signed_in(p.erin)
    assert client.get(link(token)).status_code == 200
    response = client.post(link(token))
    assert response.status_code == 302
    assert ReviewAssignment.objects.filter(reviewer=p.erin, state="active").exists()


def test_a_new_account_from_the_link_gets_the_invited_address_not_a_typed_one(personas):
    p = personas
    _, token = invite(p)
    page = Client().get(link(token)).content.decode()
    # Shown read-only, and disabled: a browser does not even submit it.
    field = re.search(r"<input[^>]*name=\"email\"[^>]*>", page)
    assert field and "disabled" in field.group(0) and EXPERT in field.group(0)

    response = Client().post(
        link(token),
        {
            "email": "attacker@evil.example",
            "display_name": "Mei Chen",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )
    assert response.status_code == 302
    assert not User.objects.filter(email="attacker@evil.example").exists()
    user = User.objects.get(email=EXPERT)
    assert user.email_verified_at is not None  # the link reached the mailbox
    assert Invitation.objects.get().accepted_by == user


def test_a_student_of_the_course_cannot_be_invited_as_an_expert(personas):
    p = personas
    with pytest.raises(InvalidAnswers) as refused:
        invite(p, email="CAROL@example.test")
    assert "course members cannot become a team's reviewer" in str(refused.value.errors)
    client = signed_in(p.alice)
    response = client.post(
        reverse("reviews:invitation_create", args=[p.project.pk]),
        {"email": p.carol.email, "stage_definition": ""},
    )
    assert response.status_code == 400
    assert "course members cannot become" in response.content.decode()
    assert not Invitation.objects.exists()


@pytest.mark.parametrize("role", [Role.STUDENT, Role.TA])
def test_someone_who_joined_the_course_after_being_invited_cannot_accept(personas, role):
    p = personas
    _, token = invite(p, email=p.oscar.email)
    enrol(p.course, p.oscar, role)
    client = signed_in(p.oscar)
    page = client.get(link(token))
    assert page.status_code == 200
    assert 'id="course-member-refused"' in page.content.decode()
    response = client.post(link(token))
    assert response.status_code == 403
    assert not ReviewAssignment.objects.filter(reviewer=p.oscar).exists()
    with pytest.raises(NotAllowed):
        services.invitation_accept(token=token, user=p.oscar)


def test_staff_cannot_assign_a_student_of_the_course_as_the_expert(personas):
    p = personas
    with pytest.raises(InvalidAnswers):
        services.assignment_create(project=p.project, actor=p.tina, reviewer=p.carol, role="expert")


def test_staff_re_address_an_invitation_with_a_new_token_and_the_old_one_dies(
    personas, django_capture_on_commit_callbacks
):
    p = personas
    invitation, old_token = invite(p, email="typo@hospitl.example")
    mail.outbox.clear()
    client = signed_in(p.tina)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("reviews:invitation_readdress", args=[invitation.pk]), {"email": EXPERT}
        )
    assert response.status_code == 302
    invitation.refresh_from_db()
    assert invitation.email == EXPERT
    assert Client().get(link(old_token)).status_code == 404
    [sent] = mail.outbox
    assert sent.to == [EXPERT]
    new_token = re.search(r"/reviews/invitations/([^/\s]+)/", sent.body).group(1)
    assert new_token != old_token
    assert Client().get(link(new_token)).status_code == 200
    event = AuditEvent.objects.filter(verb="invitation.readdress").get()
    assert event.old == {"email": "typo@hospitl.example"}
    assert event.new["email"] == EXPERT


def test_only_staff_re_address_and_never_to_a_course_member(personas):
    p = personas
    invitation, _ = invite(p, actor=p.alice)
    with pytest.raises(NotAllowed):
        services.invitation_readdress(invitation=invitation, actor=p.alice, email=EXPERT)
    response = signed_in(p.alice).post(
        reverse("reviews:invitation_readdress", args=[invitation.pk]), {"email": EXPERT}
    )
    assert response.status_code == 404
    with pytest.raises(InvalidAnswers):
        services.invitation_readdress(invitation=invitation, actor=p.tina, email=p.bob.email)
    invitation.refresh_from_db()
    assert invitation.email == EXPERT


# --- defect 5: an independent expert -------------------------------------------------------


def accept_as_new_account(token: str) -> tuple[Client, User]:
    client = Client()
    response = client.post(
        link(token),
        {"display_name": "Totally Independent", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert response.status_code == 302
    return client, User.objects.get(email=EXPERT)


def test_a_team_cannot_supply_its_own_expert_until_staff_confirm_them(personas):
    """The attack: Alice invites an address she controls, accepts with a new account and
    approves. Refused until staff confirm; after confirmation and the declaration it counts."""
    p = personas
    stage = current_stage(p.project)
    assert stage.definition.min_expert_approvals == 1
    _, token = invite(p, actor=p.alice)  # the default policy lets teams invite
    sock_puppet, puppet = accept_as_new_account(token)
    revision = fill_and_submit(stage, p.alice)
    assignment = ReviewAssignment.objects.get(reviewer=puppet)
    assert assignment.awaiting_confirmation and assignment.proposed_by == p.alice

    page = sock_puppet.get(review_url(stage)).content.decode()
    assert 'id="conflict-form"' in page
    sock_puppet.post(reverse("reviews:conflict_declare", args=[stage.pk]), {"has_conflict": "no"})
    page = sock_puppet.get(review_url(stage)).content.decode()
    assert "not yet confirmed you as an independent expert" in page
    assert 'id="decision-form"' not in page
    refused = sock_puppet.post(
        reverse("reviews:stage_decide", args=[stage.pk]),
        {"revision": revision.pk, "outcome": "approve"},
    )
    assert refused.status_code == 409
    assert not Decision.objects.filter(reviewer=puppet).exists()
    services.decision_record(revision=revision, reviewer=p.tina, outcome="approve")
    stage.refresh_from_db()
    assert stage.status == StageStatus.IN_REVIEW
    assert services.gate_for_stage(stage).expert_approvals == 0

    # Staff see who proposed the expert, and confirm them.
    reviewers = signed_in(p.tina).get(reverse("reviews:project_reviewers", args=[p.project.pk]))
    html = reviewers.content.decode()
    assert f"Invited by Alice ({p.alice.email})" in html
    assert "declares no conflict of interest" in html
    assert (
        signed_in(p.alice).post(reverse("reviews:expert_confirm", args=[assignment.pk])).status_code
        == 404
    )
    confirmed = signed_in(p.tina).post(reverse("reviews:expert_confirm", args=[assignment.pk]))
    assert confirmed.status_code == 302
    assert AuditEvent.objects.filter(verb="review.expert_confirm").count() == 1

    approved = sock_puppet.post(
        reverse("reviews:stage_decide", args=[stage.pk]),
        {"revision": revision.pk, "outcome": "approve"},
    )
    assert approved.status_code == 302
    stage.refresh_from_db()
    assert stage.status == StageStatus.APPROVED


def test_a_course_setting_lets_team_experts_decide_without_confirmation(personas):
    p = personas
    lifecycle_services.course_update_settings(
        course=p.course, actor=p.ian, team_experts_need_confirmation=False
    )
    p.course.refresh_from_db()
    stage = current_stage(p.project)
    _, token = invite(p, actor=p.alice)
    _, expert = accept_as_new_account(token)
    revision = fill_and_submit(stage, p.alice)
    stage.refresh_from_db()
    declare_no_conflict(p.project, expert)
    services.decision_record(revision=revision, reviewer=expert, outcome="approve")
    assert services.gate_for_stage(stage).expert_approvals == 1


def test_an_invitation_staff_confirmed_before_sending_makes_a_confirmed_expert(personas):
    p = personas
    lifecycle_services.course_update_settings(
        course=p.course, actor=p.ian, expert_invitations="after_confirmation"
    )
    p.course.refresh_from_db()
    invitation, _ = invite(p, actor=p.alice)
    _, token = services.invitation_confirm(invitation=invitation, actor=p.tina)
    _, expert = accept_as_new_account(token)
    assignment = ReviewAssignment.objects.get(reviewer=expert)
    assert not assignment.awaiting_confirmation
    assert assignment.confirmed_by == p.tina


def test_an_unconfirmed_experts_decision_never_counts_in_the_gate(personas):
    p = personas
    stage = current_stage(p.project)
    _, token = invite(p, actor=p.alice)
    _, expert = accept_as_new_account(token)
    revision = fill_and_submit(stage, p.alice)
    stage.refresh_from_db()
    assignment = ReviewAssignment.objects.get(reviewer=expert)
    # A row written past the service (an import, a bug): the gate still ignores it.
    Decision.objects.create(
        revision=revision, reviewer=expert, assignment=assignment, role="expert", outcome="approve"
    )
    assert services.gate_for_stage(stage).expert_approvals == 0
    services.expert_confirm(assignment=assignment, actor=p.tina)
    assert services.gate_for_stage(stage).expert_approvals == 1  # the same row, now counted


def test_every_expert_declares_conflicts_before_their_first_decision(personas):
    p = personas
    stage = current_stage(p.project)
    services.assignment_create(project=p.project, actor=p.tina, reviewer=p.erin, role="expert")
    revision = fill_and_submit(stage, p.alice)
    with pytest.raises(IllegalTransition, match="conflicts of interest"):
        services.decision_record(revision=revision, reviewer=p.erin, outcome="approve")

    erin = signed_in(p.erin)
    url = reverse("reviews:conflict_declare", args=[stage.pk])
    missing = erin.post(url, {"has_conflict": "yes", "details": ""})
    assert missing.status_code == 400
    assert not ConflictDeclaration.objects.exists()
    erin.post(url, {"has_conflict": "yes", "details": "I supervised Bob's internship."})
    declaration = ConflictDeclaration.objects.get()
    assert declaration.has_conflict and "internship" in declaration.details
    event = AuditEvent.objects.get(verb="review.conflict_declare")
    assert event.new == {"has_conflict": True, "details": "I supervised Bob's internship."}
    assert erin.post(url, {"has_conflict": "no"}).status_code == 409  # once per project
    html = signed_in(p.tina).get(reverse("reviews:project_reviewers", args=[p.project.pk]))
    assert "I supervised Bob&#x27;s internship." in html.content.decode()
    services.decision_record(revision=revision, reviewer=p.erin, outcome="approve")


def test_only_the_projects_experts_declare(personas):
    p = personas
    stage = current_stage(p.project)
    response = signed_in(p.tina).post(
        reverse("reviews:conflict_declare", args=[stage.pk]), {"has_conflict": "no"}
    )
    assert response.status_code == 404
    assert not ConflictDeclaration.objects.exists()


def test_revoking_an_expert_stops_their_approval_counting_while_the_stage_is_in_review(personas):
    p = personas
    stage = current_stage(p.project)
    assignment = services.assignment_create(
        project=p.project, actor=p.tina, reviewer=p.erin, role="expert"
    )
    declare_no_conflict(p.project, p.erin)
    revision = fill_and_submit(stage, p.alice)
    stage.refresh_from_db()
    services.decision_record(revision=revision, reviewer=p.erin, outcome="approve")
    assert services.gate_for_stage(stage).expert_approvals == 1

    response = signed_in(p.ian).post(reverse("reviews:expert_revoke", args=[assignment.pk]))
    assert response.status_code == 302
    assignment.refresh_from_db()
    assert assignment.state == AssignmentState.REVOKED and assignment.revoked_by == p.ian
    assert AuditEvent.objects.filter(verb="review.expert_revoke").count() == 1
    assert services.gate_for_stage(stage).expert_approvals == 0
    services.decision_record(revision=revision, reviewer=p.tina, outcome="approve")
    stage.refresh_from_db()
    assert stage.status == StageStatus.IN_REVIEW  # still needs an independent expert
    assert signed_in(p.erin).get(review_url(stage)).status_code == 404


def test_students_cannot_revoke_or_confirm_experts(personas):
    p = personas
    assignment = services.assignment_create(
        project=p.project, actor=p.tina, reviewer=p.erin, role="expert"
    )
    for name in ("expert_revoke", "expert_confirm"):
        response = signed_in(p.alice).post(reverse(f"reviews:{name}", args=[assignment.pk]))
        assert response.status_code == 404
    with pytest.raises(NotAllowed):
        services.expert_revoke(assignment=assignment, actor=p.alice)
    assignment.refresh_from_db()
    assert assignment.state == AssignmentState.ACTIVE


def test_an_unverified_staff_member_cannot_decide(personas):
    p = personas
    stage = current_stage(p.project)
    revision = fill_and_submit(stage, p.alice)
    ta = UserFactory(email="new.ta@example.test", email_verified_at=None)
    enrol(p.course, ta, Role.TA)
    with pytest.raises(IllegalTransition, match="Verify your e-mail"):
        services.decision_record(revision=revision, reviewer=ta, outcome="approve")
