"""Deep linking: the instructor picks a board and the tool answers with a signed
LtiDeepLinkingResponse, which the simulated platform verifies with the tool's JWKS."""

from __future__ import annotations

import re

import pytest
from factories import CourseFactory, UserFactory, enrol
from platform_sim import INSTRUCTOR, LEARNER

from lifecycle.models import Role
from lti.models import LtiContext

pytestmark = pytest.mark.django_db

DEEP_LINKING = "LtiDeepLinkingRequest"


def _jwt_in(page: bytes) -> str:
    match = re.search(rb'name="JWT" value="([^"]+)"', page)
    assert match, page[:1000]
    return match.group(1).decode()


def test_an_instructor_deep_links_a_board_and_the_platform_verifies_the_response(launcher):
    ian = UserFactory(email="ian@uni.example")
    course = CourseFactory(title="Deep Learning board")
    enrol(course, ian, Role.INSTRUCTOR)
    launch = launcher.launch(
        sub="i-1", roles=[INSTRUCTOR], email="ian@uni.example", message_type=DEEP_LINKING
    )
    assert launch.response["Location"] == "/lti/deep-link/"
    page = launcher.client.get("/lti/deep-link/")
    assert page.status_code == 200
    assert b"Deep Learning board" in page.content
    response = launcher.client.post("/lti/deep-link/", {"course": str(course.pk)})
    assert response.status_code == 200
    content = response.content
    assert f'action="{launcher.sim.deep_link_return_url()}"'.encode() in content
    assert b"js/lti-autosubmit" in content and b"<script>" not in content
    assert (
        launcher.sim.deep_link_return_url().split("/deep")[0] in response["Content-Security-Policy"]
    )
    claims = launcher.sim.verify_deep_link_response(_jwt_in(content))
    claim = "https://purl.imsglobal.org/spec/lti/claim/"
    assert claims[claim + "message_type"] == "LtiDeepLinkingResponse"
    assert claims[claim + "deployment_id"] == launcher.sim.state.deployment_id
    assert claims["https://purl.imsglobal.org/spec/lti-dl/claim/data"] == "platform-opaque-data"
    (item,) = claims["https://purl.imsglobal.org/spec/lti-dl/claim/content_items"]
    assert item["type"] == "ltiResourceLink"
    assert item["url"] == "http://testserver/lti/launch/"
    assert item["custom"] == {"lrb_course": str(course.pk)}
    assert LtiContext.objects.get(context_id="ctx-1").course == course
    # The request is spent: the page is gone.
    assert launcher.client.get("/lti/deep-link/").status_code == 404


def test_a_deep_link_response_signed_by_another_key_fails_the_platforms_check(launcher):
    ian = UserFactory(email="ian@uni.example")
    course = CourseFactory()
    enrol(course, ian, Role.INSTRUCTOR)
    launcher.launch(
        sub="i-1", roles=[INSTRUCTOR], email="ian@uni.example", message_type=DEEP_LINKING
    )
    token = _jwt_in(launcher.client.post("/lti/deep-link/", {"course": str(course.pk)}).content)
    launcher.sim.trust_tool_jwks({"keys": []})
    import jwt

    with pytest.raises(jwt.InvalidKeyError):
        launcher.sim.verify_deep_link_response(token)


def test_a_learner_cannot_deep_link(launcher):
    launch = launcher.launch(
        sub="s-1", roles=[LEARNER], email="s@uni.example", message_type=DEEP_LINKING
    )
    assert launch.response.status_code == 403
    assert b'data-reason="deep_link_not_instructor"' in launch.response.content


def test_the_deep_link_page_is_a_404_without_a_waiting_request(client):
    client.force_login(UserFactory())
    assert client.get("/lti/deep-link/").status_code == 404
    assert client.post("/lti/deep-link/", {"course": "1"}).status_code == 404


def test_the_deep_link_page_answers_no_other_method(client):
    client.force_login(UserFactory())
    assert client.put("/lti/deep-link/").status_code == 405


def test_an_instructor_cannot_deep_link_a_course_they_do_not_teach(launcher):
    other = CourseFactory()
    launcher.launch(
        sub="i-2", roles=[INSTRUCTOR], email="i2@uni.example", message_type=DEEP_LINKING
    )
    response = launcher.client.post("/lti/deep-link/", {"course": str(other.pk)})
    assert response.status_code == 200
    assert b"JWT" not in response.content
    assert LtiContext.objects.get(context_id="ctx-1").course is None


def test_a_framed_deep_linking_request_is_answered_from_the_new_window(launcher):
    from django.test import Client

    ian = UserFactory(email="ian@uni.example")
    course = CourseFactory()
    enrol(course, ian, Role.INSTRUCTOR)
    auth = launcher.login()
    claims = launcher.sim.launch_claims(
        sub="i-1",
        roles=[INSTRUCTOR],
        nonce=auth["nonce"],
        email="ian@uni.example",
        message_type=DEEP_LINKING,
    )
    framed = launcher.client.post(
        "/lti/launch/",
        {"id_token": launcher.sim.id_token(claims), "state": auth["state"]},
        headers={"Sec-Fetch-Dest": "iframe"},
    )
    enter_url = re.search(rb'href="(/lti/enter/[^"]+)"', framed.content).group(1).decode()
    window = Client()
    assert window.get(enter_url)["Location"] == "/lti/deep-link/"
    response = window.post("/lti/deep-link/", {"course": str(course.pk)})
    claims = launcher.sim.verify_deep_link_response(_jwt_in(response.content))
    (item,) = claims["https://purl.imsglobal.org/spec/lti-dl/claim/content_items"]
    assert item["custom"] == {"lrb_course": str(course.pk)}
