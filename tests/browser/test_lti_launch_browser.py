"""An LTI launch in a real browser: the platform (tests/lti/platform_sim.py) starts the login,
its authorisation page posts the signed launch, and the student lands in the course."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from factories import CourseFactory

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lti"))

from platform_sim import INSTRUCTOR, LEARNER, Simulator

from lifecycle.models import Membership, Role
from lti.models import LtiContext, LtiPlatform

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def lms():
    sim = Simulator(url_host="localhost")
    yield sim
    sim.close()


def _register(lms) -> LtiPlatform:
    return LtiPlatform.objects.create(
        name="Simulated LMS",
        issuer=lms.state.issuer,
        client_id=lms.state.client_id,
        auth_login_url=lms.auth_login_url,
        auth_token_url=lms.auth_token_url,
        key_set_url=lms.key_set_url,
        deployment_ids=[lms.state.deployment_id],
    )


def _launch(session, lms, hint: str):
    query = "&".join(f"{k}={v}" for k, v in lms.login_params(login_hint=hint).items())
    return session.go(f"/lti/login/?{query}")


def test_a_student_launched_from_the_lms_lands_in_the_course(open_session, lms, artifacts):
    platform = _register(lms)
    course = CourseFactory(title="Deep Learning, autumn")
    LtiContext.objects.create(platform=platform, context_id="ctx-1", course=course)
    lms.prepare_browser_launch(
        "hint-lena", sub="lena-1", roles=[LEARNER], email="lena@uni.example", name="Lena Park"
    )
    student = open_session()
    page = _launch(student, lms, "hint-lena")
    page.wait_for_url(f"{student.base_url}/courses/{course.pk}/")
    page.wait_for_load_state()
    assert "Deep Learning, autumn" in page.content()
    assert "Lena Park" in page.content()
    page.screenshot(path=str(artifacts / "lti-launch-student.png"), full_page=True)
    membership = Membership.objects.get(course=course, user__email="lena@uni.example")
    assert membership.role == Role.STUDENT


def test_an_instructor_links_the_lms_course_to_a_new_board_and_sees_its_lti_page(open_session, lms):
    _register(lms)
    lms.prepare_browser_launch(
        "hint-ivo", sub="ivo-1", roles=[INSTRUCTOR], email="ivo@uni.example", name="Ivo Stein"
    )
    instructor = open_session()
    page = _launch(instructor, lms, "hint-ivo")
    page.wait_for_url(re.compile(r".*/lti/link/\d+/$"))
    page.get_by_label("A new board for this course").check()
    page.get_by_label("Title of the new board").fill("Deep Learning, spring")
    page.get_by_role("button", name="Link").click()
    page.wait_for_load_state()
    context = LtiContext.objects.select_related("course").get(context_id="ctx-1")
    assert context.course.title == "Deep Learning, spring"
    assert page.url.endswith(f"/courses/{context.course.pk}/")
    page = instructor.go(f"/lti/courses/{context.course.pk}/")
    assert "Grade passback" in page.content()
