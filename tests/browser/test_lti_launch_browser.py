"""An LTI launch in a real browser: the platform (tests/lti/platform_sim.py) starts the login,
its authorisation page posts the signed launch, and the student lands in the course."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from factories import CourseFactory

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lti"))

from platform_sim import LEARNER, Simulator

from lifecycle.models import Membership, Role
from lti.models import LtiContext, LtiPlatform

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def lms():
    sim = Simulator(url_host="localhost")
    yield sim
    sim.close()


def test_a_student_launched_from_the_lms_lands_in_the_course(open_session, lms, artifacts):
    platform = LtiPlatform.objects.create(
        name="Simulated LMS",
        issuer=lms.state.issuer,
        client_id=lms.state.client_id,
        auth_login_url=lms.auth_login_url,
        auth_token_url=lms.auth_token_url,
        key_set_url=lms.key_set_url,
        deployment_ids=[lms.state.deployment_id],
    )
    course = CourseFactory(title="Deep Learning, autumn")
    LtiContext.objects.create(platform=platform, context_id="ctx-1", course=course)
    lms.prepare_browser_launch(
        "hint-lena", sub="lena-1", roles=[LEARNER], email="lena@uni.example", name="Lena Park"
    )
    student = open_session()
    page = student.page
    page.goto(lms.base_url + "/jwks")  # warm the platform's address in this browser
    query = "&".join(f"{k}={v}" for k, v in lms.login_params(login_hint="hint-lena").items())
    page = student.go(f"/lti/login/?{query}")
    page.wait_for_url(f"{student.base_url}/courses/{course.pk}/")
    page.wait_for_load_state()
    assert "Deep Learning, autumn" in page.content()
    assert "Lena Park" in page.content()
    page.screenshot(path=str(artifacts / "lti-launch-student.png"), full_page=True)
    membership = Membership.objects.get(course=course, user__email="lena@uni.example")
    assert membership.role == Role.STUDENT
