"""The team workspace pages: home, courses, projects, the stakeholder register and the outcomes.

Personas (tests/conftest.py): Alice and Bob are one team, Carol a student on another team,
Tina a TA, Ian the instructor, Erin an outside expert with no course role, Oscar an outsider.
Staff read projects; only the team writes them; everyone else gets a 404, never a 403, so a
project's existence stays private.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from factories import (
    CourseFactory,
    UserFactory,
    advance_to,
    conclude_not_pursued,
    enrol,
    fill_and_submit,
)

from lifecycle import freshness, services
from lifecycle.models import (
    AuditEvent,
    Membership,
    Outcome,
    Project,
    ProjectStatus,
    Role,
    StageStatus,
    Stakeholder,
)

pytestmark = pytest.mark.django_db

PERSONAS = ["alice", "bob", "carol", "tina", "ian", "erin", "oscar", "anonymous"]
LOGIN = "login"  # expected: a redirect to the sign-in page


def client_for(personas: Any, who: str, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    if who != "anonymous":
        client.force_login(getattr(personas, who))
    return client


def assert_status(response: Any, expected: int | str) -> None:
    if expected == LOGIN:
        assert response.status_code == 302, response.status_code
        assert response["Location"].startswith(reverse("accounts:login") + "?next=")
    else:
        assert response.status_code == expected, response.status_code


def page_text(response: Any) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def field_error(response: Any, field: str) -> str:
    """The error crispy renders under a field, or '' when there is none."""
    html = response.content.decode()
    found = re.search(
        rf'id="error_\d+_(?:id|loop|conclude)_{field}"[^>]*>\s*<strong>(.*?)</strong>',
        html,
        flags=re.S,
    )
    return found.group(1) if found else ""


def csrf_token(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return client.cookies["csrftoken"].value


@pytest.fixture
def stakeholder(personas) -> Stakeholder:
    return add_stakeholder(personas)


def add_stakeholder(personas: Any) -> Stakeholder:
    return services.stakeholder_add(
        project=personas.project,
        actor=personas.alice,
        name="Triage nurses",
        kind="operator",
        interests="Less time sorting referrals",
        possible_harms="Automation bias",
        possible_benefits="Faster care",
        consulted=True,
        consultation="Two interviews",
    )


STAKEHOLDER_POST = {
    "name": "Families of referred children",
    "kind": "affected_community",
    "interests": "Timely, fair care",
    "possible_harms": "Under-triage of rare conditions",
    "possible_benefits": "Shorter waits",
    "consultation": "",
}


# --- Who sees which page ------------------------------------------------------------------


def _expect(**overrides: int | str) -> dict[str, int | str]:
    """Start from 'everyone signed in may see it' and override."""
    base: dict[str, int | str] = dict.fromkeys(PERSONAS, 200)
    base["anonymous"] = LOGIN
    base.update(overrides)
    return base


PROJECT_READ = _expect(carol=404, erin=404, oscar=404)  # the team and course staff
TEAM_ONLY = _expect(carol=404, tina=404, ian=404, erin=404, oscar=404)

PAGES: dict[str, tuple[Callable[[Any, Any], str], dict[str, int | str]]] = {
    "home": (lambda p, s: reverse("home"), _expect()),
    "course_join": (lambda p, s: reverse("lifecycle:course_join") + "?code=X", _expect()),
    "course_detail": (
        lambda p, s: reverse("lifecycle:course_detail", args=[p.course.pk]),
        _expect(erin=404, oscar=404),
    ),
    "project_create": (
        lambda p, s: reverse("lifecycle:project_create", args=[p.course.pk]),
        _expect(tina=404, ian=404, erin=404, oscar=404),
    ),
    "project_detail": (lambda p, s: p.project.get_absolute_url(), PROJECT_READ),
    "project_detail_cycle_1": (
        lambda p, s: p.project.get_absolute_url() + "?cycle=1",
        PROJECT_READ,
    ),
    "stakeholders": (
        lambda p, s: reverse("lifecycle:stakeholders", args=[p.project.pk]),
        PROJECT_READ,
    ),
    "stakeholder_edit": (
        lambda p, s: reverse("lifecycle:stakeholder_edit", args=[p.project.pk, s.pk]),
        TEAM_ONLY,
    ),
    "project_conclude": (
        lambda p, s: reverse("lifecycle:project_conclude", args=[p.project.pk]),
        TEAM_ONLY,
    ),
}


@pytest.fixture(scope="class")
def class_stakeholder(class_personas) -> Stakeholder:
    return add_stakeholder(class_personas)


# The two matrices below take the personas and the stakeholder built once per class
# (tests/conftest.py, class_db): each case runs in a savepoint of the class's transaction, so
# every case starts from the same rows.


class TestWhoSeesWhichPage:
    @pytest.mark.parametrize(
        ("page", "who"), [(page, who) for page in PAGES for who in PERSONAS], ids=lambda v: v
    )
    def test_each_page_answers_each_persona_as_the_access_rules_say(
        self, class_personas, class_stakeholder, page, who
    ):
        personas, stakeholder = class_personas, class_stakeholder
        url_of, expected = PAGES[page]
        response = client_for(personas, who).get(url_of(personas, stakeholder))
        assert_status(response, expected[who])


def test_another_teams_stakeholder_is_a_404_even_for_a_member_of_a_project(personas, stakeholder):
    carol_entry = services.stakeholder_add(
        project=personas.other_project, actor=personas.carol, name="Farmers", kind="direct_user"
    )
    client = client_for(personas, "alice")
    # Alice's project in the URL, Carol's stakeholder id: no way round the scoping.
    url = reverse("lifecycle:stakeholder_edit", args=[personas.project.pk, carol_entry.pk])
    assert client.get(url).status_code == 404
    remove = reverse("lifecycle:stakeholder_remove", args=[personas.project.pk, carol_entry.pk])
    assert client.post(remove).status_code == 404
    assert Stakeholder.objects.filter(pk=carol_entry.pk).exists()


def test_a_cycle_the_project_never_reached_is_a_404(personas):
    client = client_for(personas, "alice")
    url = personas.project.get_absolute_url()
    assert client.get(url + "?cycle=2").status_code == 404
    assert client.get(url + "?cycle=0").status_code == 404
    assert client.get(url + "?cycle=abc").status_code == 200  # ignored, shows the current one


# --- Who may write ------------------------------------------------------------------------

WRITES_EXPECTED = {
    # action: (allowed personas, status for the allowed)
    "course_invite": ({"tina", "ian"}, 302),
    "project_create": ({"alice", "bob", "carol"}, 302),
    "proposal_submit": ({"alice", "bob"}, 302),
    "project_loop_back": ({"alice", "bob"}, 302),
    "stakeholder_add": ({"alice", "bob"}, 302),
    "stakeholder_edit": ({"alice", "bob"}, 302),
    "stakeholder_remove": ({"alice", "bob"}, 302),
}


def _write(personas: Any, stakeholder: Stakeholder, action: str) -> tuple[str, dict[str, Any]]:
    p = personas.project.pk
    return {
        "course_invite": (
            reverse("lifecycle:course_invite", args=[personas.course.pk]),
            {"emails": "new.student@example.test"},
        ),
        "project_create": (
            reverse("lifecycle:project_create", args=[personas.course.pk]),
            {"title": "Essay feedback bot", "summary": ""},
        ),
        "proposal_submit": (
            reverse("lifecycle:proposal_submit", args=[p]),
            {"reasons": ["should_not"], "reasoning": "A machine should not decide this."},
        ),
        "project_loop_back": (
            reverse("lifecycle:project_loop_back", args=[p]),
            {"to_order": "1", "reason": "We learned something."},
        ),
        "stakeholder_add": (reverse("lifecycle:stakeholders", args=[p]), STAKEHOLDER_POST),
        "stakeholder_edit": (
            reverse("lifecycle:stakeholder_edit", args=[p, stakeholder.pk]),
            {**STAKEHOLDER_POST, "name": "Renamed"},
        ),
        "stakeholder_remove": (
            reverse("lifecycle:stakeholder_remove", args=[p, stakeholder.pk]),
            {},
        ),
    }[action]


def _effect(personas: Any, stakeholder: Stakeholder, action: str) -> bool:
    """Did the write happen?"""
    project = Project.objects.get(pk=personas.project.pk)
    return {
        "course_invite": AuditEvent.objects.filter(verb="course.invite").exists(),
        "project_create": Project.objects.filter(title="Essay feedback bot").exists(),
        "proposal_submit": project.not_pursued_proposals.exists(),
        # At stage 1 the service refuses; nobody's request may get as far as a new cycle.
        "project_loop_back": project.cycle > 1,
        "stakeholder_add": project.stakeholders.filter(name=STAKEHOLDER_POST["name"]).exists(),
        "stakeholder_edit": project.stakeholders.filter(name="Renamed").exists(),
        "stakeholder_remove": not project.stakeholders.filter(pk=stakeholder.pk).exists(),
    }[action]


class TestWhoMayWrite:
    @pytest.mark.parametrize(
        ("action", "who"),
        [(action, who) for action in WRITES_EXPECTED for who in PERSONAS],
        ids=lambda v: v,
    )
    def test_each_write_is_done_only_by_those_allowed(
        self, class_personas, class_stakeholder, django_capture_on_commit_callbacks, action, who
    ):
        personas, stakeholder = class_personas, class_stakeholder
        allowed, ok_status = WRITES_EXPECTED[action]
        url, data = _write(personas, stakeholder, action)
        with django_capture_on_commit_callbacks(execute=True):
            response = client_for(personas, who).post(url, data)
        if who == "anonymous":
            assert_status(response, LOGIN)
            assert not _effect(personas, stakeholder, action)
        elif who in allowed:
            assert response.status_code == ok_status
            if action != "project_loop_back":
                assert _effect(personas, stakeholder, action)
        else:
            assert response.status_code == 404
            assert not _effect(personas, stakeholder, action)
            assert mail.outbox == []


@pytest.mark.parametrize(
    "name",
    ["course_invite", "project_loop_back", "stakeholder_remove"],
)
def test_post_only_actions_refuse_get(personas, stakeholder, name):
    args = {
        "course_invite": [personas.course.pk],
        "project_loop_back": [personas.project.pk],
        "stakeholder_remove": [personas.project.pk, stakeholder.pk],
    }[name]
    who = "ian" if name == "course_invite" else "alice"
    response = client_for(personas, who).get(reverse(f"lifecycle:{name}", args=args))
    assert response.status_code == 405
    assert Stakeholder.objects.filter(pk=stakeholder.pk).exists()


@pytest.mark.parametrize(
    ("name", "method"),
    [
        ("home", "post"),
        ("course_detail", "post"),
        ("project_detail", "post"),
        ("project_detail", "delete"),
        ("stakeholders", "put"),
        ("project_conclude", "delete"),
        ("course_join", "put"),
    ],
)
def test_pages_refuse_methods_they_do_not_handle(personas, name, method):
    args = {
        "home": [],
        "course_join": [],
        "course_detail": [personas.course.pk],
    }.get(name, [personas.project.pk])
    url = reverse(name if name == "home" else f"lifecycle:{name}", args=args)
    response = getattr(client_for(personas, "alice"), method)(url)
    assert response.status_code == 405


# --- CSRF ---------------------------------------------------------------------------------

CSRF_CASES = {
    # name: (who, page to take the token from, url, data, effect)
    "loop_back": "alice",
    "conclude": "alice",
    "stakeholder_add": "alice",
    "project_create": "alice",
    "course_invite": "ian",
}


def _csrf_case(personas: Any, name: str) -> tuple[str, str, dict[str, Any], Callable[[], bool]]:
    project = personas.project
    detail = project.get_absolute_url()
    if name == "loop_back":
        return (
            detail,
            reverse("lifecycle:project_loop_back", args=[project.pk]),
            {"to_order": "3", "reason": "Dusk photos were missing from our data."},
            lambda: Project.objects.get(pk=project.pk).cycle == 2,
        )
    if name == "conclude":
        return (
            project.get_absolute_url(),
            reverse("lifecycle:proposal_submit", args=[project.pk]),
            {"reasons": ["social"], "reasoning": "Not a problem for an algorithm."},
            lambda: project.not_pursued_proposals.exists(),
        )
    if name == "stakeholder_add":
        url = reverse("lifecycle:stakeholders", args=[project.pk])
        return (url, url, STAKEHOLDER_POST, lambda: project.stakeholders.exists())
    if name == "project_create":
        url = reverse("lifecycle:project_create", args=[personas.course.pk])
        return (
            url,
            url,
            {"title": "Essay feedback bot"},
            lambda: Project.objects.filter(title="Essay feedback bot").exists(),
        )
    course_url = reverse("lifecycle:course_detail", args=[personas.course.pk])
    return (
        course_url,
        reverse("lifecycle:course_invite", args=[personas.course.pk]),
        {"emails": "someone@example.test"},
        lambda: AuditEvent.objects.filter(verb="course.invite").exists(),
    )


@pytest.mark.parametrize("name", list(CSRF_CASES))
def test_writes_without_a_csrf_token_are_refused_and_with_it_go_through(
    personas, django_capture_on_commit_callbacks, name
):
    if name == "loop_back":
        advance_to(personas.project, 7, team_member=personas.alice, reviewer=personas.tina)
    page, url, data, happened = _csrf_case(personas, name)
    client = client_for(personas, CSRF_CASES[name], csrf=True)

    refused = client.post(url, data)
    assert refused.status_code == 403
    assert not happened()

    token = csrf_token(client, page)
    with django_capture_on_commit_callbacks(execute=True):
        accepted = client.post(url, {**data, "csrfmiddlewaretoken": token})
    assert accepted.status_code == 302, page_text(accepted)[:2000]
    assert happened()


# --- Home ---------------------------------------------------------------------------------


def test_home_lists_the_courses_with_the_role_and_the_projects_with_their_stage(personas):
    response = client_for(personas, "alice").get(reverse("home"))
    text = page_text(response)
    assert personas.course.title in text
    assert "Student" in text
    assert "Triage assistant" in text
    assert "1. Identify a problem and its stakeholders" in text
    assert "Drafting" in text
    # Carol's project belongs to another team.
    assert "Crop yield forecaster" not in text


def test_home_shows_staff_every_project_of_their_courses(personas):
    text = page_text(client_for(personas, "tina").get(reverse("home")))
    assert "Teaching assistant" in text
    assert "Triage assistant" in text
    assert "Crop yield forecaster" in text
    assert "Start a project" not in text


def test_home_shows_the_outcome_of_a_concluded_project(personas):
    conclude_not_pursued(personas.project, personas.alice, personas.tina)
    text = page_text(client_for(personas, "alice").get(reverse("home")))
    assert "Concluded" in text
    assert "Not pursued" in text


def test_home_without_a_course_says_how_to_join_and_offers_the_form(personas):
    response = client_for(personas, "oscar").get(reverse("home"))
    text = page_text(response)
    assert "Join a course with the code your course staff gave you" in text
    assert f'action="{reverse("lifecycle:course_join")}"' in text
    assert 'name="code"' in text
    assert re.search(r'<label[^>]*for="id_code"', text)


# --- Joining a course ---------------------------------------------------------------------


def test_joining_with_the_code_makes_a_student_and_opens_the_course(personas):
    client = client_for(personas, "oscar")
    code = personas.course.join_code
    response = client.post(reverse("lifecycle:course_join"), {"code": f"  {code.lower()} "})
    course_url = reverse("lifecycle:course_detail", args=[personas.course.pk])
    assert response.status_code == 302
    assert response["Location"] == course_url
    membership = Membership.objects.get(course=personas.course, user=personas.oscar)
    assert membership.role == Role.STUDENT
    page = page_text(client.get(course_url))
    assert "You have joined" in page
    assert AuditEvent.objects.filter(verb="membership.join").count() == 1


def test_a_wrong_code_is_an_error_next_to_the_field(personas):
    response = client_for(personas, "oscar").post(
        reverse("lifecycle:course_join"), {"code": "NOPE0000"}
    )
    assert response.status_code == 400
    assert "No course has that join code" in field_error(response, "code")
    assert not Membership.objects.filter(user=personas.oscar).exists()


def test_the_join_page_prefills_the_code_from_the_link(personas):
    response = client_for(personas, "oscar").get(reverse("lifecycle:course_join") + "?code=ab12")
    assert re.search(r'name="code"[^>]*value="AB12"', page_text(response))


def test_joining_a_course_twice_says_so_and_changes_nothing(personas):
    response = client_for(personas, "alice").post(
        reverse("lifecycle:course_join"), {"code": personas.course.join_code}, follow=True
    )
    assert "You are a member of" in page_text(response)
    assert Membership.objects.get(course=personas.course, user=personas.alice).role == "student"
    assert not AuditEvent.objects.filter(verb="membership.join").exists()


def test_an_anonymous_join_link_asks_to_sign_in_and_offers_sign_up_with_the_code(client, db):
    course = CourseFactory(join_code="JOINME23")
    response = client.get(reverse("lifecycle:course_join") + "?code=JOINME23", follow=True)
    text = page_text(response)
    assert response.redirect_chain[0][0].startswith(reverse("accounts:login") + "?next=")
    assert f'href="{reverse("accounts:signup")}?code=JOINME23"' in text
    assert course.title  # the course exists; only the code travels


# --- Course page and invitations ----------------------------------------------------------


def test_students_see_their_projects_and_can_start_one(personas):
    text = page_text(
        client_for(personas, "alice").get(
            reverse("lifecycle:course_detail", args=[personas.course.pk])
        )
    )
    assert "Triage assistant" in text
    assert "Crop yield forecaster" not in text
    assert "Start a project" in text
    assert personas.course.join_code not in text
    assert "Invite students by e-mail" not in text
    assert "Carol" in text  # the members


def test_staff_see_all_projects_the_join_code_and_the_invitation_form(personas):
    text = page_text(
        client_for(personas, "ian").get(
            reverse("lifecycle:course_detail", args=[personas.course.pk])
        )
    )
    assert "Triage assistant" in text and "Crop yield forecaster" in text
    assert personas.course.join_code in text
    assert "Invite students by e-mail" in text
    assert "Start a project" not in text


def test_invitations_are_e_mailed_with_the_join_link_and_recorded(
    personas, django_capture_on_commit_callbacks
):
    url = reverse("lifecycle:course_invite", args=[personas.course.pk])
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client_for(personas, "ian").post(
            url, {"emails": "Zoe@Example.test, yusuf@example.test\nzoe@example.test"}
        )
    assert response.status_code == 302
    assert len(freshness.other_callbacks(callbacks)) == 1  # touch() adds its own
    assert sorted(m.to[0] for m in mail.outbox) == ["yusuf@example.test", "zoe@example.test"]
    join_link = f"{settings.SITE_URL.rstrip('/')}/courses/join/?code={personas.course.join_code}"
    for message in mail.outbox:
        assert len(message.to) == 1  # nobody sees who else was invited
        assert personas.course.title in message.subject
        assert join_link in message.body
        html, mimetype = message.alternatives[0]
        assert mimetype == "text/html"
        assert f'href="{join_link}"' in html
    event = AuditEvent.objects.get(verb="course.invite")
    assert event.actor == personas.ian
    assert event.new["emails"] == ["zoe@example.test", "yusuf@example.test"]


def test_invalid_invitation_addresses_are_listed_and_nothing_is_sent(
    personas, django_capture_on_commit_callbacks
):
    url = reverse("lifecycle:course_invite", args=[personas.course.pk])
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(personas, "tina").post(
            url, {"emails": "good@example.test\nnot-an-address, also@bad"}
        )
    assert response.status_code == 400
    error = field_error(response, "emails")
    assert "not-an-address" in error and "also@bad" in error
    assert "good@example.test" not in error
    assert mail.outbox == []
    assert not AuditEvent.objects.filter(verb="course.invite").exists()


def test_an_invitation_is_not_mailed_when_its_transaction_rolls_back(
    personas, django_capture_on_commit_callbacks
):
    from django.db import transaction

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        try:
            with transaction.atomic():
                services.course_invite_students(
                    course=personas.course, actor=personas.ian, emails=["x@example.test"]
                )
                raise RuntimeError("something later in the same transaction failed")
        except RuntimeError:
            pass
    assert callbacks == []
    assert mail.outbox == []


def test_a_mail_server_that_is_down_does_not_turn_an_invitation_into_an_error(
    personas, django_capture_on_commit_callbacks, settings, caplog
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = 9  # discard: nothing listens
    settings.EMAIL_TIMEOUT = 2
    url = reverse("lifecycle:course_invite", args=[personas.course.pk])
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(personas, "ian").post(url, {"emails": "x@example.test"})
    assert response.status_code == 302
    assert "Could not send 1 course invitation" in caplog.text


# --- Starting a project -------------------------------------------------------------------


def test_starting_a_project_with_a_teammate_opens_stage_one(personas):
    client = client_for(personas, "carol")
    url = reverse("lifecycle:project_create", args=[personas.course.pk])
    form_page = page_text(client.get(url))
    # Teammates: the course's other students, not Carol herself and not the staff.
    assert f'value="{personas.alice.pk}"' in form_page
    assert f'value="{personas.carol.pk}"' not in form_page
    assert f'value="{personas.tina.pk}"' not in form_page

    response = client.post(
        url, {"title": "Loan default model", "summary": "Who repays?", "members": [personas.bob.pk]}
    )
    project = Project.objects.get(title="Loan default model")
    stage_one = project.stages.get(definition__order=1, cycle=1)
    assert response.status_code == 302
    assert response["Location"] == stage_one.get_absolute_url()
    assert set(project.members.all()) == {personas.carol, personas.bob}
    assert project.created_by == personas.carol


def test_a_project_without_a_title_shows_the_error_next_to_the_field(personas):
    response = client_for(personas, "alice").post(
        reverse("lifecycle:project_create", args=[personas.course.pk]), {"title": "  "}
    )
    assert response.status_code == 400
    assert field_error(response, "title")
    assert Project.objects.count() == 2


def test_a_teammate_who_is_not_a_student_of_the_course_is_refused(personas):
    response = client_for(personas, "alice").post(
        reverse("lifecycle:project_create", args=[personas.course.pk]),
        {"title": "Sneaky", "members": [personas.tina.pk]},
    )
    assert response.status_code == 400
    assert field_error(response, "members")
    assert not Project.objects.filter(title="Sneaky").exists()


def test_the_services_errors_appear_next_to_the_fields_they_name(personas, monkeypatch):
    from lifecycle.errors import InvalidAnswers

    def refuse(**kwargs):
        raise InvalidAnswers({"members": ["Not a student of this course: bob@example.test."]})

    monkeypatch.setattr(services, "project_create", refuse)
    response = client_for(personas, "alice").post(
        reverse("lifecycle:project_create", args=[personas.course.pk]),
        {"title": "Race", "members": [personas.bob.pk]},
    )
    assert response.status_code == 400
    assert "Not a student of this course" in field_error(response, "members")


# --- The project overview -----------------------------------------------------------------


def test_the_overview_shows_the_seven_stages_with_their_status_and_the_current_one(personas):
    response = client_for(personas, "alice").get(personas.project.get_absolute_url())
    html = response.content.decode()
    statuses = re.findall(r'data-stage="(\d)" data-status="(\w+)"', html)
    assert statuses == [("1", "drafting")] + [(str(n), "locked") for n in range(2, 8)]
    current = re.search(r'<li[^>]*aria-current="step"[^>]*>', html)
    assert current and 'data-stage="1"' in current.group(0)
    stage_one = personas.project.stages.get(definition__order=1)
    assert f'href="{stage_one.get_absolute_url()}"' in html
    text = page_text(response)
    assert "Alice" in text and "Bob" in text  # the team
    assert re.search(r'id="stakeholder-count">0<', text)
    assert reverse("lifecycle:stakeholders", args=[personas.project.pk]) in text


def test_the_overview_shows_due_and_approval_dates(personas):
    import datetime as dt

    stage = advance_to(personas.project, 2, team_member=personas.alice, reviewer=personas.tina)
    services.stage_set_due_date(stage=stage, actor=personas.tina, due_date=dt.date(2026, 12, 3))
    text = page_text(client_for(personas, "tina").get(personas.project.get_absolute_url()))
    assert "Due 3 Dec 2026" in text
    assert re.search(r"Approved \d{1,2} \w{3} \d{4}", text)


def test_looping_back_from_iterate_opens_a_new_cycle_at_the_chosen_stage(personas):
    advance_to(personas.project, 7, team_member=personas.alice, reviewer=personas.tina)
    client = client_for(personas, "bob")
    overview = page_text(client.get(personas.project.get_absolute_url()))
    assert 'id="outcome-panel"' in overview
    assert "the problem might need a social solution, not a technical one" in overview.lower()
    ids = re.findall(r'\sid="([^"]+)"', overview)
    assert len(ids) == len(set(ids)), "two forms side by side must not share element ids"
    # Iterate is drafting, not approved: "deployed" is not on offer yet.
    assert 'value="deployed"' not in overview
    assert 'id="proposal-form"' in overview

    response = client.post(
        reverse("lifecycle:project_loop_back", args=[personas.project.pk]),
        {"to_order": "3", "reason": "Monitoring showed failures at dusk."},
    )
    project = Project.objects.get(pk=personas.project.pk)
    stage_three = project.stages.get(cycle=2, definition__order=3)
    assert response.status_code == 302
    assert response["Location"] == stage_three.get_absolute_url()
    assert project.cycle == 2
    assert project.current_stage == stage_three
    assert AuditEvent.objects.filter(verb="project.loop_back").count() == 1

    current = client.get(project.get_absolute_url()).content.decode()
    rows = re.findall(r'data-stage="(\d)" data-status="(\w+)"', current)
    assert rows == [("1", "approved"), ("2", "approved"), ("3", "drafting")] + [
        (str(n), "locked") for n in range(4, 8)
    ]
    assert current.count("from cycle 1") == 2
    origin = re.search(r'id="cycle-origin">(.*?)</div>', current, flags=re.S)
    assert origin and "Monitoring showed failures at dusk." in origin.group(1)
    assert "at stage 3, Compile data" in re.sub(r"\s+", " ", origin.group(1))
    assert 'href="?cycle=1"' in current and 'href="?cycle=2"' in current

    cycle_one = client.get(project.get_absolute_url() + "?cycle=1").content.decode()
    rows = re.findall(r'data-stage="(\d)" data-status="(\w+)"', cycle_one)
    assert rows == [(str(n), "approved") for n in range(1, 7)] + [("7", "drafting")]
    assert 'aria-current="step"' not in cycle_one
    assert "Left drafting when the team looped back" in cycle_one
    assert 'id="outcome-panel"' not in cycle_one


def test_staff_see_no_outcome_panel_on_the_iterate_stage(personas):
    advance_to(personas.project, 7, team_member=personas.alice, reviewer=personas.tina)
    text = page_text(client_for(personas, "ian").get(personas.project.get_absolute_url()))
    assert 'id="outcome-panel"' not in text


def test_deployed_is_offered_once_the_iterate_stage_is_approved(personas):
    stage = advance_to(personas.project, 7, team_member=personas.alice, reviewer=personas.tina)
    revision = fill_and_submit(stage, personas.alice)
    client = client_for(personas, "alice")
    in_review = page_text(client.get(personas.project.get_absolute_url()))
    assert 'id="outcome-panel"' not in in_review  # wait for the reviewers

    services.stage_mark_approved(stage=stage, revision=revision, actor=personas.tina)
    approved = page_text(client.get(personas.project.get_absolute_url()))
    assert 'value="deployed"' in approved
    response = client.post(
        reverse("lifecycle:project_conclude", args=[personas.project.pk]),
        {"outcome": Outcome.DEPLOYED, "reason": "Monitored for a term; it helps."},
    )
    assert response.status_code == 302
    project = Project.objects.get(pk=personas.project.pk)
    assert project.outcome == Outcome.DEPLOYED


def test_looping_back_without_a_reason_keeps_the_form_with_its_error(personas):
    advance_to(personas.project, 7, team_member=personas.alice, reviewer=personas.tina)
    response = client_for(personas, "alice").post(
        reverse("lifecycle:project_loop_back", args=[personas.project.pk]),
        {"to_order": "3", "reason": ""},
    )
    assert response.status_code == 400
    assert field_error(response, "reason")
    assert Project.objects.get(pk=personas.project.pk).cycle == 1


def test_looping_back_before_the_iterate_stage_is_refused_with_a_message(personas):
    response = client_for(personas, "alice").post(
        reverse("lifecycle:project_loop_back", args=[personas.project.pk]),
        {"to_order": "1", "reason": "Why not?"},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == personas.project.get_absolute_url()
    assert "loop back only from its Iterate stage" in page_text(response)
    assert Project.objects.get(pk=personas.project.pk).cycle == 1


def test_not_pursued_is_offered_on_stage_one_as_a_proposal_that_does_not_conclude(personas):
    client = client_for(personas, "alice")
    overview = page_text(client.get(personas.project.get_absolute_url()))
    assert "We should not build this" in overview
    assert 'value="deployed"' not in overview

    response = client.post(
        reverse("lifecycle:proposal_submit", args=[personas.project.pk]),
        {"reasons": ["explanation"], "reasoning": "A denial must be explained."},
        follow=True,
    )
    project = Project.objects.get(pk=personas.project.pk)
    assert project.status == ProjectStatus.ACTIVE
    text = page_text(response)
    assert response.redirect_chain[-1][0] == project.get_absolute_url() + "#proposal"
    assert "is in review" in text
    assert "A denial must be explained." in text
    assert 'id="proposal-form"' not in text  # one open proposal at a time


def test_not_pursued_is_offered_on_stage_three_too(personas):
    advance_to(personas.project, 3, team_member=personas.alice, reviewer=personas.tina)
    client = client_for(personas, "alice")
    overview = page_text(client.get(personas.project.get_absolute_url()))
    assert 'id="outcome-panel"' not in overview
    assert 'id="proposal-form"' in overview
    response = client.post(
        reverse("lifecycle:project_conclude", args=[personas.project.pk]),
        {"outcome": Outcome.NOT_PURSUED, "reason": "Changed our minds."},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == personas.project.get_absolute_url()
    assert "proposed to the reviewers" in page_text(response)
    assert Project.objects.get(pk=personas.project.pk).status == ProjectStatus.ACTIVE


def test_the_conclude_page_confirms_and_explains_when_nothing_can_be_concluded(personas):
    client = client_for(personas, "alice")
    url = reverse("lifecycle:project_conclude", args=[personas.project.pk])
    advance_to(personas.project, 3, team_member=personas.alice, reviewer=personas.tina)
    text = page_text(client.get(url))
    assert "once its Iterate stage is approved" in text
    assert "propose “we should not build this”" in text
    assert 'name="reason"' not in text


def test_concluding_without_a_reason_shows_the_error_on_the_confirmation_page(personas):
    iterate = advance_to(personas.project, 7, team_member=personas.alice, reviewer=personas.tina)
    revision = fill_and_submit(iterate, personas.alice)
    services.stage_mark_approved(stage=iterate, revision=revision, actor=personas.tina)
    response = client_for(personas, "alice").post(
        reverse("lifecycle:project_conclude", args=[personas.project.pk]),
        {"outcome": Outcome.DEPLOYED, "reason": ""},
    )
    assert response.status_code == 400
    assert field_error(response, "reason")
    assert Project.objects.get(pk=personas.project.pk).is_active


# --- The stakeholder register -------------------------------------------------------------


def test_members_add_edit_and_remove_stakeholders_and_each_is_audited(personas):
    client = client_for(personas, "bob")
    register = reverse("lifecycle:stakeholders", args=[personas.project.pk])
    assert 'name="name"' in page_text(client.get(register))

    added = client.post(register, {**STAKEHOLDER_POST, "consulted": "on"})
    entry = Stakeholder.objects.get(project=personas.project)
    assert added.status_code == 302
    assert added["Location"] == f"{register}#stakeholder-{entry.pk}"
    assert entry.consulted is True
    text = page_text(client.get(register))
    for value in (
        "Families of referred children",
        "Affected community",
        "Timely, fair care",
        "Under-triage of rare conditions",
        "Shorter waits",
    ):
        assert value in text

    edit = reverse("lifecycle:stakeholder_edit", args=[personas.project.pk, entry.pk])
    assert 'value="Families of referred children"' in page_text(client.get(edit))
    edited = client.post(
        edit, {**STAKEHOLDER_POST, "possible_harms": "Rare conditions missed", "consulted": ""}
    )
    assert edited.status_code == 302
    entry.refresh_from_db()
    assert entry.possible_harms == "Rare conditions missed"
    assert entry.consulted is False

    remove = reverse("lifecycle:stakeholder_remove", args=[personas.project.pk, entry.pk])
    assert f'action="{remove}"' in page_text(client.get(register))
    removed = client.post(remove)
    assert removed.status_code == 302
    assert not Stakeholder.objects.filter(pk=entry.pk).exists()

    verbs = list(
        AuditEvent.objects.filter(project=personas.project, verb__startswith="stakeholder.")
        .order_by("seq")
        .values_list("verb", flat=True)
    )
    assert verbs == ["stakeholder.add", "stakeholder.update", "stakeholder.remove"]
    update = AuditEvent.objects.get(verb="stakeholder.update")
    assert update.old == {"possible_harms": "Under-triage of rare conditions", "consulted": True}
    assert update.actor == personas.bob


def test_staff_read_the_register_without_the_forms(personas, stakeholder):
    text = page_text(
        client_for(personas, "tina").get(
            reverse("lifecycle:stakeholders", args=[personas.project.pk])
        )
    )
    assert "Triage nurses" in text and "Automation bias" in text and "Two interviews" in text
    assert 'name="name"' not in text
    assert "stakeholder_edit" not in text and "/edit/" not in text
    assert "/remove/" not in text


def test_a_stakeholder_without_a_name_shows_the_error_next_to_the_field(personas):
    response = client_for(personas, "alice").post(
        reverse("lifecycle:stakeholders", args=[personas.project.pk]),
        {**STAKEHOLDER_POST, "name": ""},
    )
    assert response.status_code == 400
    assert field_error(response, "name")
    assert not Stakeholder.objects.exists()


def test_the_register_of_a_concluded_project_is_read_only(personas, stakeholder):
    conclude_not_pursued(personas.project, personas.alice, personas.tina)
    client = client_for(personas, "alice")
    register = reverse("lifecycle:stakeholders", args=[personas.project.pk])
    assert 'name="name"' not in page_text(client.get(register))
    response = client.post(register, STAKEHOLDER_POST, follow=True)
    assert "nothing more can change" in page_text(response)
    assert Stakeholder.objects.count() == 1
    removed = client.post(
        reverse("lifecycle:stakeholder_remove", args=[personas.project.pk, stakeholder.pk]),
        follow=True,
    )
    assert removed.status_code == 200
    assert Stakeholder.objects.filter(pk=stakeholder.pk).exists()


# --- Query counts -------------------------------------------------------------------------


def _course_with_projects(n: int) -> tuple[Any, Any, Any]:
    """A course with n projects of two students each; returns (course, instructor, student
    who is on every project)."""
    course = CourseFactory()
    instructor = UserFactory()
    enrol(course, instructor, Role.INSTRUCTOR)
    regular = UserFactory()
    enrol(course, regular, Role.STUDENT)
    for i in range(n):
        partner = UserFactory()
        enrol(course, partner, Role.STUDENT)
        project = services.project_create(
            course=course, actor=regular, title=f"Project {i}", members=[partner]
        )
        if i % 2:
            services.stakeholder_add(project=project, actor=regular, name="S", kind="other")
    return course, instructor, regular


def _queries(client: Client, url: str) -> int:
    client.get(url)  # warm: the navbar's answer is cached per person
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured)


@pytest.mark.parametrize("who", ["instructor", "student"])
def test_the_home_page_makes_as_many_queries_for_ten_projects_as_for_two(db, who):
    counts = []
    for n in (2, 10):
        _course, instructor, student = _course_with_projects(n)
        client = Client()
        client.force_login(instructor if who == "instructor" else student)
        text = client.get(reverse("home")).content.decode()
        assert text.count("data-project=") == n
        counts.append(_queries(client, reverse("home")))
    assert counts[0] == counts[1], counts


def test_the_course_page_makes_as_many_queries_for_ten_projects_as_for_two(db):
    counts = []
    for n in (2, 10):
        course, instructor, _ = _course_with_projects(n)
        client = Client()
        client.force_login(instructor)
        counts.append(_queries(client, reverse("lifecycle:course_detail", args=[course.pk])))
    assert counts[0] == counts[1], counts


def test_the_project_overview_makes_as_many_queries_however_long_the_history(personas):
    client = client_for(personas, "alice")
    url = personas.project.get_absolute_url()
    first_cycle = _queries(client, url)
    advance_to(personas.project, 7, team_member=personas.alice, reviewer=personas.tina)
    services.project_loop_back(
        project=personas.project, actor=personas.alice, to_order=6, reason="Learned."
    )
    before = _queries(client, url)
    assert before <= first_cycle + 1  # a later cycle also reads why it began

    for i in range(8):
        services.stakeholder_add(
            project=personas.project, actor=personas.alice, name=f"S{i}", kind="other"
        )
    advance_to(personas.project, 7, team_member=personas.alice, reviewer=personas.tina)
    services.project_loop_back(
        project=personas.project, actor=personas.alice, to_order=2, reason="Learned more."
    )
    _course_with_projects(10)  # other projects in the database change nothing either
    after = _queries(client, url)
    assert before == after, (before, after)
    for cycle in (1, 2):
        assert _queries(client, f"{url}?cycle={cycle}") <= after


def test_the_iterate_panel_costs_a_fixed_number_of_queries(personas, settings):
    settings.FRAGMENT_CACHE_SECONDS = 0  # the page as rendered (a second look is cached)
    advance_to(personas.project, 7, team_member=personas.alice, reviewer=personas.tina)
    client = client_for(personas, "alice")
    url = personas.project.get_absolute_url()
    first = _queries(client, url)
    for i in range(5):
        services.stakeholder_add(
            project=personas.project, actor=personas.alice, name=f"S{i}", kind="other"
        )
    assert _queries(client, url) == first
    assert Project.objects.get(pk=personas.project.pk).current_stage.status == StageStatus.DRAFTING


def test_a_concluded_project_says_where_it_stopped_and_highlights_nothing(personas):
    conclude_not_pursued(personas.project, personas.bob, personas.tina)
    html = client_for(personas, "ian").get(personas.project.get_absolute_url()).content.decode()
    assert 'aria-current="step"' not in html
    assert "The project was concluded here" in html
    assert html.count('data-shown-status="not_reached"') == 6
    assert html.count('data-shown-status="closed"') == 1
