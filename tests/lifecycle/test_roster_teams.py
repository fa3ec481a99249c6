"""Rosters by upload, the rest of it: every invitation goes through the notifications outbox
(retried like any notification, sent once however often the file is uploaded), and the optional
team column forms teams: a project per team name, created or joined, with students who have no
account yet placed on their team when they accept the invitation."""

from __future__ import annotations

import io
import smtplib

import pytest
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.test import Client
from django.urls import reverse
from factories import UserFactory

from lifecycle import rosters, services, teams
from lifecycle.errors import NotAllowed
from lifecycle.models import AuditEvent, Membership, Project, Role, RosterEntry
from notifications import outbox
from notifications.models import EmailStatus, Notification, NotificationKind

pytestmark = pytest.mark.django_db

TEAMS = (
    "email,name,team\n"
    "known@example.test,Known,Vision\n"
    "new.one@example.test,New One,Vision\n"
    "dana@example.test,Dana,triage ASSISTANT\n"
    "carol@example.test,Carol,Vision\n"
    "pending.two@example.test,Pending Two,Lonely\n"
)


@pytest.fixture
def people(personas):
    UserFactory(email="known@example.test", display_name="Known")
    UserFactory(email="dana@example.test", display_name="Dana")
    return personas


def _apply(p, text=TEAMS, actor=None, capture=None):
    with capture(execute=True):
        return rosters.roster_apply(course=p.course, actor=actor or p.tina, text=text)


def _state(p):
    return (
        sorted(RosterEntry.objects.values_list("email", "name", "team", "invited_at", "project")),
        sorted(
            (project.title, sorted(project.members.values_list("email", flat=True)))
            for project in Project.objects.filter(course=p.course)
        ),
        Membership.objects.count(),
        AuditEvent.objects.count(),
        Notification.objects.count(),
    )


# --- the outbox ------------------------------------------------------------------------------


def test_every_roster_invitation_is_an_outbox_row_and_a_new_address_has_no_recipient(
    people, django_capture_on_commit_callbacks
):
    p = people
    _apply(p, capture=django_capture_on_commit_callbacks)
    rows = {n.email: n for n in Notification.objects.filter(kind=NotificationKind.INVITATION)}
    assert set(rows) == {
        "known@example.test",
        "dana@example.test",
        "new.one@example.test",
        "pending.two@example.test",
    }
    assert rows["new.one@example.test"].recipient is None
    assert rows["known@example.test"].recipient.email == "known@example.test"
    assert {n.email_status for n in rows.values()} == {EmailStatus.SENT}
    sent = {m.to[0]: m for m in mail.outbox}
    assert set(sent) == set(rows)
    invitation = sent["new.one@example.test"]
    assert "?code=" + p.course.join_code in invitation.body
    assert "team “Vision”" in invitation.body
    assert "You are enrolled" in sent["known@example.test"].subject
    assert "“Vision”" in sent["known@example.test"].body
    # Dana joined an existing team; the subject of an enrolment names the course.
    assert "“triage ASSISTANT”" in sent["dana@example.test"].body


def test_re_uploading_the_same_file_changes_nothing_and_sends_nothing(
    people, django_capture_on_commit_callbacks
):
    p = people
    _apply(p, capture=django_capture_on_commit_callbacks)
    before, sent = _state(p), len(mail.outbox)
    again = _apply(p, capture=django_capture_on_commit_callbacks)
    assert _state(p) == before
    assert len(mail.outbox) == sent
    assert {t.action for t in again.teams} == {rosters.KEEP, rosters.CREATE_ON_JOIN}


def test_an_unverified_account_is_invited_as_its_own_recipient(
    personas, django_capture_on_commit_callbacks
):
    unverified = UserFactory(email="late@example.test", email_verified_at=None)
    _apply(
        personas,
        text="email,name\nlate@example.test,Late\n",
        capture=django_capture_on_commit_callbacks,
    )
    row = Notification.objects.get(email="late@example.test")
    assert row.recipient == unverified and row.kind == NotificationKind.INVITATION
    assert not Membership.objects.filter(user=unverified).exists()


def test_an_invitation_that_fails_to_send_is_retried_with_back_off_and_sent_once(
    personas, monkeypatch, django_capture_on_commit_callbacks, settings
):
    settings.NOTIFICATION_BACKOFF_SECONDS = 0
    real_send = EmailMultiAlternatives.send

    def refuse(self, *args, **kwargs):
        raise smtplib.SMTPServerDisconnected("the mail server went away")

    monkeypatch.setattr(EmailMultiAlternatives, "send", refuse)
    _apply(
        personas,
        text="email,name\nnobody.yet@example.test,Nobody Yet\n",
        capture=django_capture_on_commit_callbacks,
    )
    row = Notification.objects.get(email="nobody.yet@example.test")
    assert row.email_status == EmailStatus.PENDING and row.email_attempts == 1
    assert "went away" in row.email_error
    monkeypatch.setattr(EmailMultiAlternatives, "send", real_send)
    assert outbox.sweep()["sent"] == 1
    assert outbox.sweep().get("sent", 0) == 0
    assert [m.to for m in mail.outbox] == [["nobody.yet@example.test"]]
    row.refresh_from_db()
    assert row.email_status == EmailStatus.SENT and row.email_attempts == 2


def test_a_rolled_back_upload_queues_no_invitation(personas, django_capture_on_commit_callbacks):
    from django.db import transaction

    with (
        django_capture_on_commit_callbacks(execute=True) as queued,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        rosters.roster_apply(
            course=personas.course,
            actor=personas.tina,
            text="email,name\nnobody.yet@example.test,Nobody Yet\n",
        )
        raise RuntimeError("the request failed after the upload")
    assert queued == []
    assert not Notification.objects.exists()
    assert mail.outbox == []


# --- teams -----------------------------------------------------------------------------------


def test_the_preview_shows_which_teams_are_created_or_joined_and_who_is_placed(people):
    preview = rosters.preview_roster(people.course, TEAMS)
    assert preview.ok
    plans = {t.name: t for t in preview.teams}
    assert list(plans) == ["Vision", "triage ASSISTANT", "Lonely"]
    assert plans["Vision"].action == rosters.CREATE
    assert [(r.email, r.placement) for r in plans["Vision"].rows] == [
        ("known@example.test", rosters.PLACE),
        ("new.one@example.test", rosters.PENDING),
        ("carol@example.test", rosters.ELSEWHERE),
    ]
    assert plans["Vision"].rows[2].elsewhere == "Crop yield forecaster"
    assert plans["triage ASSISTANT"].action == rosters.JOIN
    assert plans["triage ASSISTANT"].project == people.project
    assert plans["Lonely"].action == rosters.CREATE_ON_JOIN
    assert not Project.objects.filter(title="Vision").exists()


def test_applying_creates_a_team_owned_by_its_first_member_and_joins_an_existing_one(
    people, django_capture_on_commit_callbacks
):
    p = people
    _apply(p, capture=django_capture_on_commit_callbacks)
    vision = Project.objects.get(course=p.course, title="Vision")
    assert vision.created_by.email == "known@example.test"
    assert list(vision.members.values_list("email", flat=True)) == ["known@example.test"]
    assert vision.current_stage is not None
    assert p.project.members.filter(email="dana@example.test").exists()
    # Carol stays on her team; nobody is moved.
    assert not vision.members.filter(pk=p.carol.pk).exists()
    assert p.other_project.members.filter(pk=p.carol.pk).exists()
    assert not Project.objects.filter(title="Lonely").exists()
    entries = dict(RosterEntry.objects.values_list("email", "project"))
    assert entries == {
        "known@example.test": vision.pk,
        "dana@example.test": p.project.pk,
        "new.one@example.test": None,
        "carol@example.test": None,
        "pending.two@example.test": None,
    }
    created = AuditEvent.objects.get(verb="project.create", project=vision)
    assert created.actor == p.tina and created.new["by"] == "roster"
    added = AuditEvent.objects.get(verb="project.member_add", project=p.project)
    assert added.actor == p.tina and added.new["user"] == "dana@example.test"
    upload = AuditEvent.objects.get(verb="course.roster_upload")
    assert upload.new["teams_created"] == ["Vision"]
    assert upload.new["teams_joined"] == ["triage ASSISTANT"]


def test_a_student_without_an_account_joins_their_team_when_they_accept_the_invitation(
    people, django_capture_on_commit_callbacks
):
    p = people
    _apply(p, capture=django_capture_on_commit_callbacks)
    new_one = UserFactory(email="new.one@example.test", display_name="New One")
    services.course_join(user=new_one, join_code=p.course.join_code)
    vision = Project.objects.get(course=p.course, title="Vision")
    assert vision.members.filter(pk=new_one.pk).exists()
    joined = AuditEvent.objects.get(verb="project.member_add", project=vision)
    assert joined.actor == new_one and joined.new["by"] == "roster"
    # The first of a team that had nobody yet starts its project.
    lonely = UserFactory(email="pending.two@example.test", display_name="Pending Two")
    services.course_join(user=lonely, join_code=p.course.join_code)
    project = Project.objects.get(course=p.course, title="Lonely")
    assert project.created_by == lonely
    assert RosterEntry.objects.get(email="pending.two@example.test").project == project
    # Joining again, or uploading again, changes nothing.
    before = _state(p)
    services.course_join(user=lonely, join_code=p.course.join_code)
    again = _apply(p, capture=django_capture_on_commit_callbacks)
    assert _state(p) == before
    assert {t.action for t in again.teams} == {rosters.KEEP}


def test_a_student_staff_moved_is_not_moved_back_by_a_re_upload(
    people, django_capture_on_commit_callbacks
):
    p = people
    _apply(p, capture=django_capture_on_commit_callbacks)
    dana = Membership.objects.get(user__email="dana@example.test").user
    teams.project_member_remove(project=p.project, actor=p.ian, user=dana)
    teams.project_member_add(project=p.other_project, actor=p.ian, user=dana)
    before = _state(p)
    _apply(p, capture=django_capture_on_commit_callbacks)
    assert _state(p) == before
    assert not p.project.members.filter(pk=dana.pk).exists()


def test_a_team_renamed_in_the_file_places_nobody_who_is_on_a_team_already(
    people, django_capture_on_commit_callbacks
):
    p = people
    _apply(p, capture=django_capture_on_commit_callbacks)
    preview = rosters.preview_roster(
        p.course, TEAMS.replace("known@example.test,Known,Vision", "known@example.test,Known,X")
    )
    known = next(r for r in preview.rows if r.email == "known@example.test")
    assert (known.status, known.placement, known.elsewhere) == (
        rosters.UPDATE,
        rosters.ELSEWHERE,
        "Vision",
    )


def test_a_team_name_two_active_projects_share_is_refused_naming_the_line(personas):
    services.project_create(course=personas.course, actor=personas.carol, title="Twin")
    dan = UserFactory(email="dan@example.test")
    services.course_join(user=dan, join_code=personas.course.join_code)
    services.project_create(course=personas.course, actor=dan, title="twin")
    preview = rosters.preview_roster(personas.course, "email,name,team\nx@example.test,X,TWIN\n")
    assert not preview.ok
    assert "2 active projects of this course are called “TWIN”" in preview.rows[0].message


def test_teaching_assistants_are_on_no_team(personas):
    preview = rosters.preview_roster(
        personas.course, "email,name,team\nta@example.test,T,Red\n", role=Role.TA
    )
    assert not preview.ok and "on no team" in preview.rows[0].message


def test_only_course_staff_form_a_team(personas):
    for who in (personas.alice, personas.erin, personas.oscar):
        with pytest.raises(NotAllowed):
            teams.project_create_for_team(
                course=personas.course, actor=who, title="T", members=[personas.alice]
            )


# --- the page --------------------------------------------------------------------------------


def _upload(client, url, text, **extra):
    upload = io.BytesIO(text.encode())
    upload.name = "roster.csv"
    return client.post(url, {"file": upload, "role": "student", "action": "preview", **extra})


@pytest.mark.parametrize("who", ["tina", "ian"])
def test_staff_see_the_teams_in_the_preview_then_apply_them(people, who):
    p = people
    client = Client(enforce_csrf_checks=False)
    client.force_login(getattr(p, who))
    url = reverse("lifecycle:course_roster", args=[p.course.pk])
    r = _upload(client, url, TEAMS)
    assert r.status_code == 200
    html = r.content.decode()
    assert 'id="roster-teams"' in html
    assert 'roster-team roster-team-create" data-team="Vision"' in html
    assert "joins when they accept the invitation" in html
    assert "on “Crop yield forecaster” already: not moved" in html
    assert not Project.objects.filter(title="Vision").exists()
    r = client.post(
        url, {"csv": r.context["csv_text"], "role": "student", "action": "apply"}, follow=True
    )
    assert "1 teams created, 1 joined" in r.content.decode()
    assert Project.objects.filter(course=p.course, title="Vision").exists()
    page = client.get(url).content.decode()
    assert "(not on it yet)" in page and ">Vision</a>" in page


@pytest.mark.parametrize("who", ["alice", "carol", "erin", "oscar"])
def test_nobody_but_staff_applies_a_roster_with_teams(people, who):
    client = Client()
    client.force_login(getattr(people, who))
    url = reverse("lifecycle:course_roster", args=[people.course.pk])
    assert _upload(client, url, TEAMS).status_code == 404
    assert client.post(url, {"action": "apply", "csv": TEAMS}).status_code == 404
    assert not RosterEntry.objects.exists() and not Project.objects.filter(title="Vision").exists()


def test_the_roster_page_refuses_other_methods_and_anonymous_visitors(people):
    url = reverse("lifecycle:course_roster", args=[people.course.pk])
    assert Client().get(url).status_code == 302
    client = Client()
    client.force_login(people.tina)
    assert client.delete(url).status_code == 405
    assert client.patch(url).status_code == 405


def test_course_staff_see_a_roster_invitation_that_failed_after_every_retry(
    personas, monkeypatch, django_capture_on_commit_callbacks, settings
):
    from django.test import Client

    settings.NOTIFICATION_MAX_ATTEMPTS = 1

    def refuse(self, *args, **kwargs):
        raise smtplib.SMTPRecipientsRefused({"gone@example.test": (550, b"no such user")})

    monkeypatch.setattr(EmailMultiAlternatives, "send", refuse)
    _apply(
        personas,
        text="email,name\ngone@example.test,Gone\n",
        capture=django_capture_on_commit_callbacks,
    )
    row = Notification.objects.get(email="gone@example.test")
    assert row.email_status == EmailStatus.FAILED
    for staff in (personas.tina, personas.ian):
        client = Client()
        client.force_login(staff)
        section = client.get(reverse("notifications:list")).content.decode()
        section = section.split('id="failed-emails"')[1]
        assert f'data-notification="{row.pk}"' in section and "No account yet" in section
    other = UserFactory(email="other.staff@example.test")
    from factories import CourseFactory, enrol

    enrol(CourseFactory(), other, Role.INSTRUCTOR)
    client = Client()
    client.force_login(other)
    assert (
        f'data-notification="{row.pk}"'
        not in client.get(reverse("notifications:list")).content.decode()
    )


def test_a_ta_the_instructor_listed_without_an_account_joins_as_a_ta(
    personas, django_capture_on_commit_callbacks
):
    p = personas
    with django_capture_on_commit_callbacks(execute=True):
        rosters.roster_apply(
            course=p.course,
            actor=p.ian,
            text="email,name\nnew.ta@example.test,New TA\n",
            role=Role.TA,
        )
    [invitation] = [m for m in mail.outbox if m.to == ["new.ta@example.test"]]
    assert "as a teaching assistant" in invitation.body
    newcomer = UserFactory(email="new.ta@example.test")
    membership = services.course_join(user=newcomer, join_code=p.course.join_code)
    assert membership.role == Role.TA
    joined = AuditEvent.objects.get(verb="membership.join", course=p.course)
    assert joined.new == {"role": Role.TA, "user": "new.ta@example.test", "roster": True}
    # Anyone else with the code still joins as a student.
    walk_in = UserFactory(email="walk.in@example.test")
    assert services.course_join(user=walk_in, join_code=p.course.join_code).role == Role.STUDENT


def test_joining_on_the_page_says_which_team_the_roster_put_you_on(
    people, django_capture_on_commit_callbacks
):
    p = people
    _apply(p, capture=django_capture_on_commit_callbacks)
    new_one = UserFactory(email="new.one@example.test", display_name="New One")
    client = Client()
    client.force_login(new_one)
    r = client.post(reverse("lifecycle:course_join"), {"code": p.course.join_code}, follow=True)
    assert "are on the team “Vision”, as the course&#x27;s roster says" in r.content.decode()
    assert Project.objects.get(title="Vision").members.filter(pk=new_one.pk).exists()
