"""Names and Role Provisioning: the roster read page by page (Link rel="next") from the
simulated platform, with a service token the platform grants only to the tool's signed
assertion."""

from __future__ import annotations

import pytest
from factories import CourseFactory, UserFactory, enrol
from platform_sim import INSTRUCTOR, LEARNER, MENTOR, TEACHING_ASSISTANT, member

from lifecycle.models import AuditEvent, Membership, Role
from lti import services
from lti.models import LtiContext, LtiRosterRemoval, LtiUser

pytestmark = pytest.mark.django_db


@pytest.fixture
def context(platform, sim, client):
    sim.trust_tool_jwks(client.get("/lti/jwks/").json())
    course = CourseFactory()
    return LtiContext.objects.create(
        platform=platform,
        context_id="ctx-1",
        course=course,
        nrps_url=sim.nrps_url("ctx-1"),
        ags_lineitems_url=sim.lineitems_url("ctx-1"),
    )


def roster(context):
    return dict(Membership.objects.filter(course=context.course).values_list("user__email", "role"))


def test_a_sync_reads_every_page_and_enrols_students_and_tas(sim, context):
    sim.set_members(
        "ctx-1",
        [
            member("u1", LEARNER, email="ann@uni.example", name="Ann"),
            member("u2", LEARNER, email="ben@uni.example"),
            member("u3", TEACHING_ASSISTANT, email="tia@uni.example"),
            member("u4", INSTRUCTOR, email="ivo@uni.example"),
            member("u5", MENTOR, email="meg@uni.example"),
        ],
    )
    result = services.roster_sync(context=context)
    assert result.pages == 3
    assert roster(context) == {
        "ann@uni.example": Role.STUDENT,
        "ben@uni.example": Role.STUDENT,
        "tia@uni.example": Role.TA,
    }
    assert sorted(result.added) == ["ann@uni.example", "ben@uni.example", "tia@uni.example"]
    assert result.skipped == 2
    nrps_calls = [r for r in sim.state.requests if r.path.startswith("/nrps/")]
    assert [r.path for r in nrps_calls] == [
        "/nrps/ctx-1",
        "/nrps/ctx-1?page=2",
        "/nrps/ctx-1?page=3",
    ]
    event = AuditEvent.objects.get(course=context.course, verb="lti.roster_sync")
    assert event.new["added"] == 3 and event.new["pages"] == 3
    assert not sim.state.token_refusals


def test_a_second_sync_changes_nothing(sim, context):
    sim.set_members("ctx-1", [member("u1", LEARNER, email="ann@uni.example")])
    services.roster_sync(context=context)
    result = services.roster_sync(context=context)
    assert result.added == [] and result.unchanged == 1


def test_students_no_longer_listed_lose_access_and_others_keep_theirs(sim, context):
    sim.set_members(
        "ctx-1",
        [
            member("u1", LEARNER, email="ann@uni.example"),
            member("u2", LEARNER, email="ben@uni.example"),
        ],
    )
    services.roster_sync(context=context)
    joined_by_code = UserFactory(email="walk-in@uni.example")
    enrol(context.course, joined_by_code, Role.STUDENT)
    sim.set_members(
        "ctx-1",
        [
            member("u1", LEARNER, email="ann@uni.example"),
            member("u2", LEARNER, email="ben@uni.example", status="Inactive"),
        ],
    )
    result = services.roster_sync(context=context)
    assert result.removed == ["ben@uni.example"]
    assert roster(context) == {
        "ann@uni.example": Role.STUDENT,
        "walk-in@uni.example": Role.STUDENT,
    }
    assert LtiRosterRemoval.objects.get().user.email == "ben@uni.example"
    ian = UserFactory()
    enrol(context.course, ian, Role.INSTRUCTOR)
    from django.test import Client as StaffClient

    staff = StaffClient()
    staff.force_login(ian)
    page = staff.get(f"/lti/courses/{context.course.pk}/")
    assert b"Removed by the roster" in page.content and b"ben@uni.example" in page.content
    assert AuditEvent.objects.filter(course=context.course, verb="membership.remove").count() == 1
    ben = LtiUser.objects.get(sub="u2").user
    from django.test import Client

    browser = Client()
    browser.force_login(ben)
    assert browser.get(f"/courses/{context.course.pk}/").status_code == 404


def test_a_member_without_an_email_gets_a_placeholder_account(sim, context):
    sim.set_members("ctx-1", [member("anon", LEARNER)])
    services.roster_sync(context=context)
    assert LtiUser.objects.get(sub="anon").user.email.endswith("@lti.invalid")


def test_a_platform_error_fails_the_sync_and_changes_nothing(sim, context):
    sim.set_members("ctx-1", [member("u1", LEARNER, email="ann@uni.example")])
    sim.fail_next("nrps", 500)
    with pytest.raises(services.RosterSyncFailed):
        services.roster_sync(context=context)
    assert roster(context) == {}


def test_the_platform_refuses_a_token_request_not_signed_by_the_tool(sim, context):
    sim.trust_tool_jwks({"keys": []})
    sim.set_members("ctx-1", [member("u1", LEARNER, email="ann@uni.example")])
    with pytest.raises(services.RosterSyncFailed):
        services.roster_sync(context=context)
    assert sim.state.token_refusals


def test_staff_sync_the_roster_from_the_course_page(
    sim, context, client, django_capture_on_commit_callbacks
):
    sim.set_members("ctx-1", [member("u1", LEARNER, email="ann@uni.example")])
    tina = UserFactory()
    enrol(context.course, tina, Role.TA)
    client.force_login(tina)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/lti/courses/{context.course.pk}/sync/")
    assert response.status_code == 302
    assert roster(context)["ann@uni.example"] == Role.STUDENT


@pytest.mark.parametrize("who", ["student", "outsider"])
def test_only_staff_may_sync_the_roster(context, client, who):
    person = UserFactory()
    if who == "student":
        enrol(context.course, person, Role.STUDENT)
    client.force_login(person)
    assert client.post(f"/lti/courses/{context.course.pk}/sync/").status_code == 404


def test_the_sync_button_answers_no_get(context, client):
    ian = UserFactory()
    enrol(context.course, ian, Role.INSTRUCTOR)
    client.force_login(ian)
    assert client.get(f"/lti/courses/{context.course.pk}/sync/").status_code == 405


def test_the_roster_never_enrols_a_site_administrators_account(sim, context):
    UserFactory(email="root@uni.example", is_superuser=True, is_staff=True)
    sim.set_members(
        "ctx-1",
        [member("r", LEARNER, email="root@uni.example"), member("u1", LEARNER, email="a@u.ex")],
    )
    result = services.roster_sync(context=context)
    assert result.skipped == 1
    assert roster(context) == {"a@u.ex": Role.STUDENT}
