"""The review pages: the inbox, a project's reviewers and invitations, accepting an invitation,
the review page with its decision and comment threads, the override and the course settings.

Personas (tests/conftest.py): Alice and Bob are the team of ``personas.project``; Carol is a
student on another team; Tina a TA, Ian the instructor; Erin an outside expert; Oscar an outsider.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from factories import UserFactory, current_stage, declare_no_conflict, enrol, fill_and_submit
from reauth import confirm_password

from accounts.models import User
from lifecycle import services as lifecycle_services
from lifecycle.errors import NotAllowed
from lifecycle.models import (
    AuditEvent,
    Course,
    ExpertInvitationPolicy,
    ProjectStage,
    Role,
    StageDefinition,
    StageStatus,
)
from reviews import services
from reviews.models import (
    AssignmentState,
    Comment,
    Decision,
    Invitation,
    ReviewAssignment,
)

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-and-unusual-passphrase-2026"
NEW_ACCOUNT = {"display_name": "Late Expert", "password1": PASSWORD, "password2": PASSWORD}


# --- helpers -----------------------------------------------------------------------------


def client_for(user: Any = None, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    if user is not None:
        client.force_login(user)
        confirm_password(client)  # as after signing in: the override asks for it
    return client


def csrf_from(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    return client.cookies["csrftoken"].value


def text(response: Any) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def review_url(stage: ProjectStage) -> str:
    return reverse("reviews:review_stage", args=[stage.pk])


def reviewers_url(project: Any) -> str:
    return reverse("reviews:project_reviewers", args=[project.pk])


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def invite_and_accept(p: Any, expert: Any, stage: ProjectStage, *, project: Any = None) -> Any:
    """Tina invites ``expert`` to review one stage; the expert accepts. Returns the assignment."""
    _, token = services.invitation_create(
        actor=p.tina,
        course=p.course,
        project=project or p.project,
        stage_definition=stage.definition,
        email=expert.email,
    )
    assignment = services.invitation_accept(token=token, user=expert)[1]
    declare_no_conflict(project or p.project, expert)
    return assignment


@pytest.fixture
def in_review(personas) -> tuple[ProjectStage, Any]:
    """Stage 1 of the team's project, submitted (revision 1), with Erin assigned to it."""
    stage = current_stage(personas.project)
    invite_and_accept(personas, personas.erin, stage)
    revision = fill_and_submit(stage, personas.alice)
    stage.refresh_from_db()
    return stage, revision


def decide_data(revision: Any, outcome: str = "approve", **extra: Any) -> dict[str, Any]:
    return {"revision": revision.pk, "outcome": outcome, "comment": "", "question_key": "", **extra}


# --- the inbox ----------------------------------------------------------------------------


def test_the_inbox_lists_pending_reviews_oldest_first_and_moves_decided_ones_to_done(personas):
    p = personas
    other_stage = current_stage(p.other_project)
    mine = current_stage(p.project)
    invite_and_accept(p, p.erin, mine)
    start = timezone.now()
    with time_machine.travel(start - dt.timedelta(days=3), tick=False):
        fill_and_submit(other_stage, p.carol)
    with time_machine.travel(start - dt.timedelta(days=1), tick=False):
        revision = fill_and_submit(mine, p.alice)

    page = client_for(p.tina).get(reverse("reviews:inbox"))
    assert page.status_code == 200
    assert [r.stage_id for r in page.context["pending"]] == [other_stage.pk, mine.pk]

    # Erin sees only what she is assigned to; the team never sees its own stage as a review.
    assert [r.stage_id for r in client_for(p.erin).get("/reviews/").context["pending"]] == [mine.pk]
    for student_or_outsider in (p.alice, p.carol, p.oscar):
        assert client_for(student_or_outsider).get("/reviews/").context["pending"] == []

    services.decision_record(revision=revision, reviewer=p.tina, outcome="approve")
    page = client_for(p.tina).get(reverse("reviews:inbox"))
    assert [r.stage_id for r in page.context["pending"]] == [other_stage.pk]
    assert [r.revision_id for r in page.context["done"]] == [revision.pk]
    assert "Approved" in text(page)


def test_the_inbox_shows_due_dates_and_marks_the_overdue(personas):
    p = personas
    stage = current_stage(p.project)
    services.assignment_create(
        project=p.project,
        actor=p.tina,
        reviewer=p.ian,
        role="staff",
        stage_definition=stage.definition,
        due_date=timezone.localdate() - dt.timedelta(days=2),
    )
    fill_and_submit(stage, p.alice)
    page = client_for(p.ian).get(reverse("reviews:inbox"))
    (pending,) = page.context["pending"]
    assert pending.due == timezone.localdate() - dt.timedelta(days=2)
    assert pending.overdue
    assert "overdue" in text(page)
    # Tina has no assignment: the stage's own due date (none) applies.
    (for_tina,) = client_for(p.tina).get(reverse("reviews:inbox")).context["pending"]
    assert for_tina.due is None and not for_tina.overdue


def _projects_in_review(p: Any, n: int) -> list[Any]:
    revisions = []
    for i in range(n):
        student = UserFactory()
        enrol(p.course, student, Role.STUDENT)
        project = lifecycle_services.project_create(
            course=p.course, actor=student, title=f"Project {i}"
        )
        revisions.append(fill_and_submit(current_stage(project), student))
    return revisions


def _inbox_queries(user: Any) -> int:
    client = client_for(user)
    client.get(reverse("reviews:inbox"))  # warm the session and caches
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("reviews:inbox"))
    assert response.status_code == 200
    return len(queries)


def test_the_inbox_query_count_does_not_grow_with_the_number_of_stages(personas):
    p = personas
    revisions = _projects_in_review(p, 2)
    services.decision_record(revision=revisions[0], reviewer=p.tina, outcome="approve")
    small = _inbox_queries(p.tina)
    revisions += _projects_in_review(p, 6)
    for revision in revisions[2:6]:
        services.decision_record(
            revision=revision, reviewer=p.tina, outcome="request_changes", comment="Why?"
        )
    large = _inbox_queries(p.tina)
    assert len(client_for(p.tina).get("/reviews/").context["pending"]) == 3
    assert small == large


# --- assignments --------------------------------------------------------------------------


def test_course_staff_assign_withdraw_and_reassign_reviewers_through_the_page(personas):
    p = personas
    stage = current_stage(p.project)
    tina = client_for(p.tina)
    page = tina.get(reviewers_url(p.project))
    assert page.status_code == 200 and 'id="assign-form"' in page.content.decode()

    response = tina.post(
        reverse("reviews:assignment_create", args=[p.project.pk]),
        {
            "reviewer": p.ian.pk,
            "stage_definition": stage.definition_id,
            "role": "staff",
            "due_date": "2026-12-01",
        },
    )
    assert response.status_code == 302
    assignment = ReviewAssignment.objects.get(project=p.project, reviewer=p.ian)
    assert assignment.due_date == dt.date(2026, 12, 1) and assignment.role == "staff"

    # An existing account typed by e-mail, as an expert for the whole project.
    response = tina.post(
        reverse("reviews:assignment_create", args=[p.project.pk]),
        {"email": "ERIN@example.test", "stage_definition": "", "role": "expert"},
    )
    assert response.status_code == 302
    erin = ReviewAssignment.objects.get(reviewer=p.erin)
    assert erin.stage_definition is None and erin.role == "expert"

    # An e-mail without an account, or a team member: errors next to the fields.
    response = tina.post(
        reverse("reviews:assignment_create", args=[p.project.pk]),
        {"email": "nobody@example.test", "role": "expert"},
    )
    assert response.status_code == 400
    assert "Invite them as a domain expert" in text(response)
    response = tina.post(
        reverse("reviews:assignment_create", args=[p.project.pk]),
        {"email": p.alice.email, "role": "expert"},
    )
    assert response.status_code == 400 and "Nobody reviews their own project" in text(response)

    response = tina.post(
        reverse("reviews:assignment_reassign", args=[assignment.pk]), {"reviewer": p.tina.pk}
    )
    assert response.status_code == 302
    assignment.refresh_from_db()
    assert assignment.state == AssignmentState.WITHDRAWN
    new = ReviewAssignment.objects.get(reviewer=p.tina, state=AssignmentState.ACTIVE)
    assert new.stage_definition_id == stage.definition_id and new.due_date == dt.date(2026, 12, 1)

    response = tina.post(reverse("reviews:assignment_withdraw", args=[new.pk]))
    assert response.status_code == 302
    new.refresh_from_db()
    assert new.state == AssignmentState.WITHDRAWN
    page = text(tina.get(reviewers_url(p.project)))
    assert "withdrawn" in page and "Dr Erin Chen" in page
    verbs = set(AuditEvent.objects.values_list("verb", flat=True))
    assert {"review.assign", "review.withdraw"} <= verbs


def test_only_course_staff_assign_withdraw_and_reassign(personas):
    p = personas
    assignment = services.assignment_create(
        project=p.project, actor=p.tina, reviewer=p.ian, role="staff"
    )
    alice = client_for(p.alice)
    page = alice.get(reviewers_url(p.project))
    assert page.status_code == 200 and 'id="assign-form"' not in page.content.decode()
    assert "Withdraw" not in text(page)
    create = reverse("reviews:assignment_create", args=[p.project.pk])
    for who, status in ((p.alice, 404), (p.carol, 404), (p.erin, 404), (p.oscar, 404)):
        client = client_for(who)
        assert client.post(create, {"reviewer": p.tina.pk, "role": "staff"}).status_code == status
        withdraw = reverse("reviews:assignment_withdraw", args=[assignment.pk])
        assert client.post(withdraw).status_code == status
        reassign = reverse("reviews:assignment_reassign", args=[assignment.pk])
        assert client.post(reassign, {"reviewer": p.tina.pk}).status_code == status
    assert ReviewAssignment.objects.filter(state=AssignmentState.ACTIVE).count() == 1
    assert client_for(p.tina).get(create).status_code == 405


# --- invitations --------------------------------------------------------------------------


def _set_policy(course: Course, policy: str) -> None:
    Course.objects.filter(pk=course.pk).update(expert_invitations=policy)
    course.refresh_from_db()


def _invite_post(**overrides: Any) -> dict[str, Any]:
    return {
        "email": "mei.chen@hospital.example",
        "name": "Dr Mei Chen",
        "stage_definition": "",
        "message": "Would triage nurses trust this?",
        "due_date": "",
        **overrides,
    }


def test_teams_may_not_invite_when_the_course_does_not_allow_it(personas):
    p = personas
    _set_policy(p.course, ExpertInvitationPolicy.NOT_ALLOWED)
    alice = client_for(p.alice)
    page = alice.get(reviewers_url(p.project))
    assert 'id="invite-form"' not in page.content.decode()
    assert "teams do not invite domain experts" in text(page)
    response = alice.post(
        reverse("reviews:invitation_create", args=[p.project.pk]), _invite_post(), follow=True
    )
    assert any("does not let teams invite" in m for m in messages_of(response))
    assert not Invitation.objects.exists()
    # Course staff still may.
    response = client_for(p.tina).post(
        reverse("reviews:invitation_create", args=[p.project.pk]), _invite_post()
    )
    assert response.status_code == 302 and Invitation.objects.count() == 1


def test_a_team_invitation_is_sent_when_the_course_allows_it(
    personas, django_capture_on_commit_callbacks
):
    p = personas
    _set_policy(p.course, ExpertInvitationPolicy.ALLOWED)
    stage = current_stage(p.project)
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(p.alice).post(
            reverse("reviews:invitation_create", args=[p.project.pk]),
            _invite_post(stage_definition=stage.definition_id),
        )
    assert response.status_code == 302
    invitation = Invitation.objects.get()
    assert invitation.state() == "pending" and invitation.stage_definition == stage.definition
    (message,) = mail.outbox
    assert message.to == ["mei.chen@hospital.example"]
    assert "/reviews/invitations/" in message.body
    page = text(client_for(p.bob).get(reviewers_url(p.project)))
    assert "sent, not yet accepted" in page


def test_a_team_invitation_waits_for_staff_confirmation_when_the_course_says_so(
    personas, django_capture_on_commit_callbacks
):
    p = personas
    _set_policy(p.course, ExpertInvitationPolicy.AFTER_CONFIRMATION)
    alice = client_for(p.alice)
    assert "before it is sent" in text(alice.get(reviewers_url(p.project)))
    with django_capture_on_commit_callbacks(execute=True):
        alice.post(reverse("reviews:invitation_create", args=[p.project.pk]), _invite_post())
    invitation = Invitation.objects.get()
    # Nothing goes to the invited address yet; course staff are told it waits for them.
    assert invitation.state() == "awaiting_confirmation"
    assert sorted(address for m in mail.outbox for address in m.to) == sorted(
        [p.ian.email, p.tina.email]
    )
    staff_notices = len(mail.outbox)
    assert "awaiting staff confirmation" in text(alice.get(reviewers_url(p.project)))
    confirm = reverse("reviews:invitation_confirm", args=[invitation.pk])
    assert alice.post(confirm).status_code == 404  # the team does not confirm its own
    inbox = client_for(p.tina).get(reverse("reviews:inbox"))
    assert [i.pk for i in inbox.context["to_confirm"]] == [invitation.pk]
    with django_capture_on_commit_callbacks(execute=True):
        assert client_for(p.tina).post(confirm).status_code == 302
    invitation.refresh_from_db()
    assert invitation.state() == "pending" and len(mail.outbox) == staff_notices + 1
    assert mail.outbox[-1].to == [invitation.email]


def test_whoever_invited_or_staff_revoke_an_invitation(personas):
    p = personas
    invitation, _ = services.invitation_create(
        actor=p.alice, course=p.course, project=p.project, email="x@example.test"
    )
    revoke = reverse("reviews:invitation_revoke", args=[invitation.pk])
    assert client_for(p.bob).post(revoke).status_code == 404  # teammate, not the inviter
    assert client_for(p.carol).post(revoke).status_code == 404
    assert client_for(p.alice).post(revoke).status_code == 302
    invitation.refresh_from_db()
    assert invitation.state() == "revoked"
    assert client_for(p.tina).post(revoke).status_code == 409  # already revoked


# --- accepting an invitation --------------------------------------------------------------


@pytest.fixture
def stage_invitation(personas) -> tuple[Invitation, str, ProjectStage]:
    stage = current_stage(personas.project)
    invitation, token = services.invitation_create(
        actor=personas.tina,
        course=personas.course,
        project=personas.project,
        stage_definition=stage.definition,
        email="newexpert@clinic.example",
        name="Dr New",
    )
    return invitation, token, stage


def accept_url(token: str) -> str:
    return reverse("reviews:invitation_accept", args=[token])


def test_a_new_person_sets_a_password_is_signed_in_and_lands_on_the_review_page(
    personas, stage_invitation
):
    p = personas
    _, token, stage = stage_invitation
    client = client_for(csrf=True)
    page = client.get(accept_url(token))
    assert page.status_code == 200
    assert "Tina" in text(page) and stage.definition.title in text(page)
    response = client.post(
        accept_url(token),
        {
            "display_name": "Dr New Expert",
            "password1": PASSWORD,
            "password2": PASSWORD,
            "csrfmiddlewaretoken": client.cookies["csrftoken"].value,
        },
    )
    assert response.status_code == 302 and response["Location"] == review_url(stage)
    user = User.objects.get(email="newexpert@clinic.example")
    assert user.display_name == "Dr New Expert" and user.check_password(PASSWORD)
    assert client.get(review_url(stage)).status_code == 200  # signed in
    # They see only what they are invited to.
    other = current_stage(p.other_project)
    assert client.get(review_url(other)).status_code == 404
    stage2 = ProjectStage.objects.get(project=p.project, definition__order=2)
    assert client.get(review_url(stage2)).status_code == 404
    assert client.get(reviewers_url(p.project)).status_code == 404
    assert client.get(p.project.get_absolute_url()).status_code == 404
    # The link worked once.
    again = Client().get(accept_url(token))
    assert again.status_code == 410 and User.objects.filter(email=user.email).count() == 1


def test_the_password_rules_apply_when_accepting(personas, stage_invitation):
    _, token, _ = stage_invitation
    client = client_for()
    mismatch = client.post(
        accept_url(token),
        {"display_name": "X", "password1": PASSWORD, "password2": PASSWORD + "x"},
    )
    assert mismatch.status_code == 400 and "The two passwords differ" in text(mismatch)
    weak = client.post(
        accept_url(token), {"display_name": "X", "password1": "12345", "password2": "12345"}
    )
    assert weak.status_code == 400 and "too short" in text(weak)
    assert not User.objects.filter(email="newexpert@clinic.example").exists()


def test_a_signed_in_person_accepts_with_one_button(personas):
    p = personas
    stage = current_stage(p.project)
    _, token = services.invitation_create(
        actor=p.tina,
        course=p.course,
        project=p.project,
        stage_definition=stage.definition,
        email=p.erin.email,
    )
    client = client_for(p.erin, csrf=True)
    page = client.get(accept_url(token))
    assert 'id="accept-signed-in"' in page.content.decode()
    response = client.post(
        accept_url(token), {"csrfmiddlewaretoken": client.cookies["csrftoken"].value}
    )
    assert response.status_code == 302 and response["Location"] == review_url(stage)
    assert ReviewAssignment.objects.filter(reviewer=p.erin, role="expert").exists()


def test_accepting_without_the_csrf_token_is_refused(personas, stage_invitation):
    _, token, _ = stage_invitation
    client = client_for(personas.erin, csrf=True)
    assert client.post(accept_url(token)).status_code == 403
    anonymous = client_for(csrf=True)
    response = anonymous.post(
        accept_url(token), {"display_name": "X", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert response.status_code == 403
    assert not ReviewAssignment.objects.exists()
    assert not User.objects.filter(email="newexpert@clinic.example").exists()


def test_a_team_member_cannot_accept_an_invitation_to_their_own_project(personas, stage_invitation):
    _, token, _ = stage_invitation
    client = client_for(personas.alice)
    page = client.get(accept_url(token))
    assert page.status_code == 403  # the link is someone else's
    assert "This invitation is for someone else" in text(page)
    assert client.post(accept_url(token)).status_code == 403
    assert not ReviewAssignment.objects.exists()


def test_someone_with_an_account_is_told_to_sign_in(personas):
    p = personas
    _, token = services.invitation_create(
        actor=p.tina, course=p.course, project=p.project, email=p.erin.email
    )
    client = client_for()
    page = client.get(accept_url(token))
    assert page.status_code == 200
    login = reverse("accounts:login") + "?next=" + accept_url(token).replace("/", "%2F")
    assert login in page.content.decode()
    response = client.post(accept_url(token), NEW_ACCOUNT | {"display_name": "Imposter"})
    assert response.status_code == 400
    p.erin.refresh_from_db()
    assert p.erin.display_name == "Dr Erin Chen" and not p.erin.check_password(PASSWORD)
    assert not ReviewAssignment.objects.exists()


@pytest.mark.parametrize("state", ["expired", "used", "revoked", "unknown", "unconfirmed"])
def test_unusable_links_get_a_clear_page_and_never_an_account(personas, state):
    p = personas
    invitation, token = services.invitation_create(
        actor=p.tina, course=p.course, project=p.project, email="late@example.test"
    )
    expected = {"expired": 410, "used": 410, "revoked": 410, "unknown": 404, "unconfirmed": 409}
    travel = None
    if state == "expired":
        travel = time_machine.travel(invitation.expires_at + dt.timedelta(minutes=1))
    elif state == "used":
        services.invitation_accept_new_user(token=token, display_name="Late", password=PASSWORD)
    elif state == "revoked":
        services.invitation_revoke(invitation=invitation, actor=p.tina)
    elif state == "unknown":
        token = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    else:
        Invitation.objects.filter(pk=invitation.pk).update(needs_confirmation=True)
    users = User.objects.count()
    if travel:
        travel.start()
    try:
        client = client_for()
        page = client.get(accept_url(token))
        posted = client.post(accept_url(token), NEW_ACCOUNT)
        signed_in = client_for(p.erin).post(accept_url(token))
    finally:
        if travel:
            travel.stop()
    for response in (page, posted, signed_in):
        assert response.status_code == expected[state]
        assert 'id="invitation-unusable"' in response.content.decode()
        assert "No account was created" in text(response)
    assert User.objects.count() == users
    assert not ReviewAssignment.objects.filter(reviewer=p.erin).exists()


# --- deciding through the review page -----------------------------------------------------


def test_a_reviewer_approves_through_the_page(personas, in_review):
    p = personas
    stage, revision = in_review
    client = client_for(p.tina, csrf=True)
    token = csrf_from(client, review_url(stage))
    response = client.post(
        reverse("reviews:stage_decide", args=[stage.pk]),
        {**decide_data(revision), "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302
    decision = Decision.objects.get(reviewer=p.tina)
    assert decision.outcome == "approve" and decision.revision == revision
    stage.refresh_from_db()
    assert stage.status == StageStatus.IN_REVIEW  # still needs the domain expert
    page = text(client.get(review_url(stage)))
    assert "Change my decision" in page and "Needs 1 more domain-expert approval" in page
    # The expert's approval satisfies the gate and opens stage 2.
    erin = client_for(p.erin)
    assert (
        erin.post(
            reverse("reviews:stage_decide", args=[stage.pk]), decide_data(revision)
        ).status_code
        == 302
    )
    stage.refresh_from_db()
    assert stage.status == StageStatus.APPROVED
    assert current_stage(p.project).definition.order == 2


def test_deciding_needs_the_csrf_token(personas, in_review):
    stage, revision = in_review
    client = client_for(personas.tina, csrf=True)
    response = client.post(reverse("reviews:stage_decide", args=[stage.pk]), decide_data(revision))
    assert response.status_code == 403 and not Decision.objects.exists()


def test_requesting_changes_needs_a_comment_shown_next_to_the_field(personas, in_review):
    p = personas
    stage, revision = in_review
    client = client_for(p.erin, csrf=True)
    token = csrf_from(client, review_url(stage))
    url = reverse("reviews:stage_decide", args=[stage.pk])
    response = client.post(
        url, {**decide_data(revision, "request_changes"), "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert re.search(r'id="error_\d+_id_comment"[^>]*>\s*<strong>Say what needs to change', html)
    assert not Decision.objects.exists()
    response = client.post(
        url,
        {
            **decide_data(
                revision,
                "request_changes",
                comment="Which clinics sent the referrals?",
                question_key="problem-statement",
            ),
            "csrfmiddlewaretoken": token,
        },
    )
    assert response.status_code == 302
    decision = Decision.objects.get()
    assert decision.question_key == "problem-statement"
    stage.refresh_from_db()
    assert stage.status == StageStatus.CHANGES_REQUESTED
    page = text(client_for(p.alice).get(stage.get_absolute_url()))
    assert "Dr Erin Chen requested changes on question 1" in page


def test_changing_my_decision_replaces_it_only_when_asked(personas, in_review):
    p = personas
    stage, revision = in_review
    client = client_for(p.tina)
    url = reverse("reviews:stage_decide", args=[stage.pk])
    data = decide_data(revision, "request_changes", comment="More on consent.")
    assert client.post(url, data).status_code == 302
    # A second decision without "change my decision" is refused.
    assert client.post(url, decide_data(revision)).status_code == 409
    assert Decision.objects.filter(reviewer=p.tina).count() == 1
    page = client.get(review_url(stage))
    form = page.context["decision_form"]
    assert form.initial["change"] is True and "Change my decision" in text(page)
    assert client.post(url, decide_data(revision, change="True")).status_code == 302
    current = Decision.objects.get(reviewer=p.tina, replaced_at__isnull=True)
    assert current.outcome == "approve"
    assert Decision.objects.filter(reviewer=p.tina, replaced_at__isnull=False).count() == 1
    assert AuditEvent.objects.filter(verb="decision.change").exists()


def test_a_decision_on_a_superseded_revision_gets_409_and_records_nothing(personas, in_review):
    p = personas
    stage, first = in_review
    services.decision_record(
        revision=first, reviewer=p.tina, outcome="request_changes", comment="Consent?"
    )
    second = fill_and_submit(stage, p.alice, **{"problem-statement": "Rural clinics too."})
    client = client_for(p.erin, csrf=True)
    token = csrf_from(client, review_url(stage))
    response = client.post(
        reverse("reviews:stage_decide", args=[stage.pk]),
        {**decide_data(first), "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 409
    assert "superseded by revision 2" in text(response)
    assert not Decision.objects.filter(reviewer=p.erin).exists()
    # The page offers the current revision, with what changed since Tina last decided.
    page = client_for(p.tina).get(review_url(stage))
    assert page.context["revision"] == second
    assert page.context["diff"]["since"] == first and page.context["diff"]["changed"] == 1
    assert "Rural clinics too." in text(page)


def test_a_decision_names_a_revision_of_its_own_stage_or_is_a_404_for_everyone(personas, in_review):
    p = personas
    stage, revision = in_review
    other_revision = fill_and_submit(current_stage(p.other_project), p.carol)
    url = reverse("reviews:stage_decide", args=[stage.pk])
    for reviewer in (p.tina, p.erin):
        client = client_for(reviewer)
        # Another stage's revision (Tina reviews that one too), and a revision no one has.
        assert client.post(url, decide_data(other_revision)).status_code == 404
        assert client.post(url, {**decide_data(revision), "revision": 99999}).status_code == 404
    # A stage that does not exist, with a valid form and with an invalid one.
    gone = reverse("reviews:stage_decide", args=[99999])
    assert client_for(p.tina).post(gone, decide_data(revision)).status_code == 404
    assert client_for(p.tina).post(gone, {"outcome": "approve"}).status_code == 404
    assert not Decision.objects.exists()
    # The stage's own current revision goes through, for the same reviewer.
    response = client_for(p.erin).post(url, decide_data(revision))
    assert response.status_code == 302 and response["Location"] == review_url(stage)
    assert Decision.objects.get().revision == revision


def test_a_service_given_the_stage_by_id_refuses_another_stages_revision(personas, in_review):
    p = personas
    stage, revision = in_review
    other_revision = fill_and_submit(current_stage(p.other_project), p.carol)
    with pytest.raises(NotAllowed, match="No such revision"):
        services.decision_record_posted(
            stage_id=stage.pk, revision_id=other_revision.pk, reviewer=p.tina, outcome="approve"
        )
    with pytest.raises(NotAllowed, match="No such review"):
        services.decision_record_posted(
            stage_id=99999, revision_id=revision.pk, reviewer=p.tina, outcome="approve"
        )
    # Someone who reviews neither is told nothing more about the revision than a 404's worth.
    with pytest.raises(NotAllowed, match="not a reviewer"):
        services.decision_record_posted(
            stage_id=stage.pk, revision_id=other_revision.pk, reviewer=p.oscar, outcome="approve"
        )
    assert not Decision.objects.exists()
    decision = services.decision_record_posted(
        stage_id=stage.pk, revision_id=revision.pk, reviewer=p.tina, outcome="approve"
    )
    assert decision.revision == revision and decision.revision.stage.pk == stage.pk


def test_earlier_revisions_stay_readable(personas, in_review):
    p = personas
    stage, first = in_review
    services.decision_record(
        revision=first, reviewer=p.tina, outcome="request_changes", comment="Consent?"
    )
    fill_and_submit(stage, p.alice, **{"problem-statement": "Rural clinics too."})
    page = client_for(p.erin).get(review_url(stage) + "?revision=1")
    assert page.status_code == 200 and page.context["revision"] == first
    assert 'id="older-revision"' in page.content.decode()
    assert page.context["decision_form"] is None
    assert client_for(p.erin).get(review_url(stage) + "?revision=9").status_code == 404


def test_the_team_reads_the_review_page_without_a_decision_form(personas, in_review):
    p = personas
    stage, revision = in_review
    page = client_for(p.alice).get(review_url(stage))
    assert page.status_code == 200 and page.context["decision_form"] is None
    assert 'id="decision-form"' not in page.content.decode()
    response = client_for(p.alice).post(
        reverse("reviews:stage_decide", args=[stage.pk]), decide_data(revision)
    )
    assert response.status_code == 404 and not Decision.objects.exists()


def test_the_review_page_shows_answers_guidance_and_the_frozen_register(personas, in_review):
    p = personas
    stage, _ = in_review
    lifecycle_services.stakeholder_add(
        project=p.project, actor=p.alice, name="Added after submission", kind="other"
    )
    page = client_for(p.erin).get(review_url(stage))
    html = page.content.decode()
    assert "<strong>long</strong> answer" in html  # Markdown rendered
    assert "Unsure" in html and "Because we asked." in html  # yes/no/unsure + justification
    assert 'id="guidance-body"' in html and "digit recognition" in html.lower()
    assert "Teachers" in html and "Added after submission" not in html


def test_independent_review_hides_others_decisions_and_comments_until_deciding(personas, in_review):
    p = personas
    stage, revision = in_review
    StageDefinition.objects.filter(pk=stage.definition_id).update(independent_review="everyone")
    services.decision_record(
        revision=revision,
        reviewer=p.tina,
        outcome="request_changes",
        comment="Tina thinks consent is missing.",
    )
    services.comment_add(revision=revision, author=p.tina, body="A remark from Tina.")
    erin = client_for(p.erin)
    page = text(erin.get(review_url(stage)))
    assert "Independent review" in page
    assert "Tina thinks consent" not in page and "A remark from Tina" not in page
    assert "requested changes" not in page
    # Nor on the stage page's gate panel, for course staff who have not decided.
    ian_stage_page = text(client_for(p.ian).get(stage.get_absolute_url()))
    gate_panel = ian_stage_page[ian_stage_page.index('id="gate-panel"') :]
    gate_panel = gate_panel[: gate_panel.index("</section>")]
    assert "Independent review" in gate_panel and "requested changes" not in gate_panel
    assert "Tina" not in ian_stage_page
    assert "Tina thinks" not in text(client_for(p.ian).get(review_url(stage)))
    # The team sees everything.
    assert "A remark from Tina" in text(client_for(p.alice).get(review_url(stage)))
    erin.post(
        reverse("reviews:stage_decide", args=[stage.pk]),
        decide_data(revision, "request_changes", comment="Which clinics?"),
    )
    page = text(erin.get(review_url(stage)))
    assert "Tina thinks consent is missing." in page and "A remark from Tina." in page


# --- comments -----------------------------------------------------------------------------


def test_comments_on_a_question_replies_and_resolution_by_the_team_only(personas, in_review):
    p = personas
    stage, revision = in_review
    url = reverse("reviews:comment_add", args=[stage.pk])
    erin = client_for(p.erin)
    response = erin.post(
        url,
        {"revision": revision.pk, "question_key": "problem-statement", "body": "Which clinics?"},
    )
    assert response.status_code == 302
    thread = Comment.objects.get()
    assert thread.question_key == "problem-statement"
    assert response["Location"].endswith(f"#comment-{thread.pk}")
    assert (
        client_for(p.alice)
        .post(url, {"revision": revision.pk, "parent": thread.pk, "body": "Two urban, one rural."})
        .status_code
        == 302
    )
    reply = Comment.objects.get(parent=thread)
    assert reply.question_key == "problem-statement"
    page = client_for(p.tina).get(review_url(stage)).content.decode()
    section = page[page.index('id="q-problem-statement"') :]
    assert section.index("Which clinics?") < section.index("Two urban, one rural.")
    assert section.index("Two urban") < section.index('id="q-encode-relevant-features"')
    # A comment on no question at all, and one on a question that does not exist.
    erin.post(url, {"revision": revision.pk, "body": "Overall clear."})
    assert Comment.objects.filter(question_key="").count() == 1
    erin.post(url, {"revision": revision.pk, "question_key": "nope", "body": "x"})
    assert not Comment.objects.filter(question_key="nope").exists()
    # Outsiders cannot comment at all.
    assert client_for(p.carol).post(url, {"revision": revision.pk, "body": "x"}).status_code == 404

    resolve = reverse("reviews:comment_resolve", args=[thread.pk])
    for reviewer in (p.erin, p.tina, p.ian):
        assert client_for(reviewer).post(resolve).status_code == 404
    assert client_for(p.oscar).post(resolve).status_code == 404
    thread.refresh_from_db()
    assert thread.resolved_at is None
    assert client_for(p.bob).post(resolve).status_code == 302
    thread.refresh_from_db()
    assert thread.resolved_by == p.bob
    assert "resolved by Bob" in text(client_for(p.erin).get(review_url(stage)))
    assert client_for(p.bob).get(resolve).status_code == 405


XSS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[x](javascript:alert(1))",
]


def test_an_xss_corpus_in_comments_and_decisions_leaves_no_script(personas, in_review):
    p = personas
    stage, revision = in_review
    url = reverse("reviews:comment_add", args=[stage.pk])
    for body in XSS:
        client_for(p.erin).post(
            url, {"revision": revision.pk, "question_key": "problem-statement", "body": body}
        )
        client_for(p.alice).post(url, {"revision": revision.pk, "body": body})
    client_for(p.tina).post(
        reverse("reviews:stage_decide", args=[stage.pk]),
        decide_data(revision, "request_changes", comment=" ".join(XSS)),
    )
    assert Comment.objects.count() == 6 and Decision.objects.count() == 1
    for viewer in (p.alice, p.tina, p.erin):
        html = client_for(viewer).get(review_url(stage)).content.decode()
        inline_scripts = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html, flags=re.I)
        assert inline_scripts == []
        assert not re.search(r"<[a-z][^>]*\son[a-z]+\s*=", html, flags=re.I)
        assert not re.search(r"href\s*=\s*[\"']?\s*javascript:", html, flags=re.I)
        assert "&lt;script&gt;" in html or "alert(1)" not in html


# --- override and course settings ---------------------------------------------------------


def test_only_an_instructor_overrides_and_only_with_a_justification(personas, in_review):
    p = personas
    stage, _ = in_review
    url = reverse("reviews:stage_override", args=[stage.pk])
    for who in (p.alice, p.tina, p.erin, p.oscar):
        assert client_for(who).get(url).status_code == 404
        assert client_for(who).post(url, {"justification": "Because."}).status_code == 404
    ian = client_for(p.ian)
    assert ian.get(url).status_code == 200
    blank = ian.post(url, {"justification": "   "})
    assert blank.status_code == 400 and "This field is required" in text(blank)
    stage.refresh_from_db()
    assert stage.status == StageStatus.IN_REVIEW
    response = ian.post(
        url, {"justification": "The expert is ill; the clinic lead approved by phone."}
    )
    assert response.status_code == 302
    stage.refresh_from_db()
    assert stage.status == StageStatus.APPROVED and stage.approved_by_override
    assert AuditEvent.objects.filter(verb="stage.override_approve", flagged=True).exists()
    for page in (
        client_for(p.erin).get(review_url(stage)),
        client_for(p.alice).get(stage.get_absolute_url()),
    ):
        assert "the clinic lead approved by phone" in text(page)
        assert "Instructor override" in text(page) or "instructor override" in text(page)


def test_course_settings_refuse_a_policy_that_cannot_be_met_and_say_why(personas):
    p = personas
    url = reverse("reviews:course_settings", args=[p.course.pk])
    for who in (p.tina, p.alice, p.erin, p.oscar):
        assert client_for(who).get(url).status_code == 404
    ian = client_for(p.ian)
    assert ian.get(url).status_code == 200
    data = {
        "allows_experts": "",
        "expert_invitations": ExpertInvitationPolicy.NOT_ALLOWED,
        "invitation_expiry_days": 14,
        "reminder_interval_days": 3,
        "reminder_limit": 2,
    }
    response = ian.post(url, data)
    assert response.status_code == 400
    assert "allows no domain experts, but its template requires expert approvals on" in text(
        response
    )
    p.course.refresh_from_db()
    assert p.course.allows_experts
    response = ian.post(url, {**data, "allows_experts": "on", "invitation_expiry_days": 7})
    assert response.status_code == 302
    p.course.refresh_from_db()
    assert p.course.invitation_expiry_days == 7
    assert p.course.expert_invitations == ExpertInvitationPolicy.NOT_ALLOWED


# --- admin --------------------------------------------------------------------------------


def test_the_admin_shows_reviews_read_only_and_never_the_token_hash(personas, stage_invitation):
    invitation, _, _ = stage_invitation
    admin_user = User.objects.create_superuser(email="root@example.test", password=PASSWORD)
    client = client_for(admin_user)
    page = client.get(reverse("admin:reviews_invitation_change", args=[invitation.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert invitation.token_hash not in html and "token_hash" not in html
    assert 'name="_save"' not in html
    assert client.get(reverse("admin:reviews_invitation_add")).status_code == 403
    for name in ("reviewassignment", "decision", "comment", "invitation"):
        assert client.get(reverse(f"admin:reviews_{name}_changelist")).status_code == 200


@pytest.mark.parametrize(
    "comment",
    [
        "Fine.",
        "x" * 120,
        "x" * 121,
        "é" * 119 + "e\u0301",  # not NFC: normalised, as the filter does
        "e\u0301" * 70,  # combining characters do not count
        "a <b> & “c”" * 20,
    ],
)
def test_inbox_shortens_a_comment_as_truncatechars_does(comment: str) -> None:
    from django.template.defaultfilters import truncatechars

    from reviews.queue import DONE_COMMENT_CHARS
    from reviews.views.inbox import _short_comment

    assert _short_comment(comment) == truncatechars(comment, DONE_COMMENT_CHARS)
