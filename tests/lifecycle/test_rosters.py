"""Rosters by upload: the preview says who is new, who exists and which lines are wrong before
anything is written; applying is all or nothing; the same file twice changes nothing; a corpus
of malformed files is refused naming the line."""

from __future__ import annotations

import io

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from factories import UserFactory

from lifecycle import rosters
from lifecycle.errors import InvalidAnswers, NotAllowed
from lifecycle.models import AuditEvent, Membership, Role, RosterEntry

pytestmark = pytest.mark.django_db

GOOD = (
    "email,name,team\n"
    "new.one@example.test,New One,Red\n"
    "Bob@Example.test,Bob,Blue\n"
    "known@example.test,Known Person,\n"
)


@pytest.fixture
def known(personas):
    return UserFactory(email="known@example.test", display_name="Known")


def test_the_preview_says_who_is_new_who_exists_and_writes_nothing(personas, known):
    preview = rosters.preview_roster(personas.course, GOOD)
    assert preview.ok
    assert [(r.line, r.email, r.status) for r in preview.rows] == [
        (2, "new.one@example.test", rosters.NEW),
        (3, "bob@example.test", rosters.RECORD),  # a student of the course already
        (4, "known@example.test", rosters.ENROL),
    ]
    assert not RosterEntry.objects.exists()


def test_applying_enrols_accounts_invites_the_rest_once_and_a_second_upload_changes_nothing(
    personas, known, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        rosters.roster_apply(course=personas.course, actor=personas.tina, text=GOOD)
    assert Membership.objects.filter(course=personas.course, user=known, role=Role.STUDENT).exists()
    # The new address is invited, the enrolled account told: both through the outbox.
    assert sorted(m.to for m in mail.outbox) == [["known@example.test"], ["new.one@example.test"]]
    assert RosterEntry.objects.get(email="new.one@example.test").team == "Red"
    events = AuditEvent.objects.filter(verb="course.roster_upload")
    assert events.count() == 1
    assert events.get().new["invited"] == ["new.one@example.test"]

    state = (
        list(RosterEntry.objects.values_list("email", "name", "team", "invited_at")),
        Membership.objects.count(),
        AuditEvent.objects.count(),
    )
    with django_capture_on_commit_callbacks(execute=True):
        again = rosters.roster_apply(course=personas.course, actor=personas.tina, text=GOOD)
    assert {r.status for r in again.rows} == {rosters.UNCHANGED}
    assert len(mail.outbox) == 2
    assert (
        list(RosterEntry.objects.values_list("email", "name", "team", "invited_at")),
        Membership.objects.count(),
        AuditEvent.objects.count(),
    ) == state


MALFORMED = [
    ("", "The file is empty."),
    ("mail,name\nx@example.test,X\n", "line 1: the header must name"),
    ("email,name,age\nx@example.test,X,3\n", "unknown: age"),
    ("email,name\nnot-an-address,X\n", "line 2: not an e-mail address"),
    ("email,name\nx@example.test,\n", "line 2: the name is empty"),
    (
        "email,name\nx@example.test,X\nX@example.test,Y\n",
        "line 3: the address is repeated from line 2",
    ),
    ("email,name\nx@example.test,X,extra\n", "line 2: 3 columns, expected 2"),
    ('email,name\n"x@example.test,X\n', "line"),
    ("email,name\nian@example.test,Ian\n", "line 2: already in the course as instructor"),
    ("email,name\n" + "x@example.test," + "n" * 151 + "\n", "too long"),
    ("email,name\x00\n", "not a text CSV"),
]


@pytest.mark.parametrize(("text", "message"), MALFORMED)
def test_a_malformed_roster_is_refused_naming_the_line_and_nothing_is_written(
    personas, text, message
):
    preview = rosters.preview_roster(personas.course, text)
    assert not preview.ok
    with pytest.raises(InvalidAnswers) as refused:
        rosters.roster_apply(course=personas.course, actor=personas.ian, text=text)
    assert any(message in m for m in refused.value.errors["file"]), refused.value.errors
    assert not RosterEntry.objects.exists()
    assert not AuditEvent.objects.filter(verb="course.roster_upload").exists()


def test_a_file_that_is_not_utf8_or_too_large_is_refused():
    with pytest.raises(InvalidAnswers):
        rosters.decode_upload("email,name\né@x.test,É\n".encode("latin-1"))
    with pytest.raises(InvalidAnswers):
        rosters.decode_upload(b"x" * (rosters.MAX_BYTES + 1))


def test_only_an_instructor_uploads_teaching_assistants(personas, known):
    text = "email,name\nknown@example.test,Known\n"
    with pytest.raises(NotAllowed):
        rosters.roster_apply(course=personas.course, actor=personas.tina, text=text, role=Role.TA)
    for who in (personas.alice, personas.oscar):
        with pytest.raises(NotAllowed):
            rosters.roster_apply(course=personas.course, actor=who, text=text)
    rosters.roster_apply(course=personas.course, actor=personas.ian, text=text, role=Role.TA)
    assert Membership.objects.get(user=known).role == Role.TA


@pytest.mark.parametrize("who", ["alice", "erin", "oscar"])
def test_the_roster_page_is_course_staffs_alone(personas, who):
    client = Client()
    client.force_login(getattr(personas, who))
    url = reverse("lifecycle:course_roster", args=[personas.course.pk])
    assert client.get(url).status_code == 404
    assert client.post(url, {"action": "apply", "csv": GOOD}).status_code == 404
    assert not RosterEntry.objects.exists()


def test_staff_preview_then_apply_on_the_roster_page(personas, known):
    client = Client()
    client.force_login(personas.tina)
    url = reverse("lifecycle:course_roster", args=[personas.course.pk])
    upload = io.BytesIO(GOOD.encode())
    upload.name = "roster.csv"
    r = client.post(url, {"file": upload, "role": "student", "action": "preview"})
    assert r.status_code == 200
    assert r.context["preview"].count(rosters.NEW) == 1
    assert not RosterEntry.objects.exists()
    r = client.post(url, {"csv": r.context["csv_text"], "role": "student", "action": "apply"})
    assert r.status_code == 302
    assert RosterEntry.objects.count() == 3
    bad = io.BytesIO(b"email,name\nnope,X\n")
    bad.name = "bad.csv"
    r = client.post(url, {"file": bad, "role": "student", "action": "preview"})
    assert r.status_code == 400 and b"roster-refused" in r.content
    assert client.put(url).status_code == 405
