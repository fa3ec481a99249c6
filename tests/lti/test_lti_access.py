"""The course's LTI pages for every persona: course staff only, a 404 for everyone else, the
sign-in page for anonymous visitors; the platform endpoints are open to anyone (they are
protected by the OIDC state, the nonce and signatures instead)."""

from __future__ import annotations

import pytest
from django.test import Client

from lti.models import LtiContext, LtiPlatform, LtiScore, LtiUser, ScoreState

pytestmark = pytest.mark.django_db

PERSONAS = ["alice", "carol", "tina", "ian", "erin", "oscar", "anonymous"]
STAFF = {"tina", "ian"}


@pytest.fixture
def world(personas):
    platform = LtiPlatform.objects.create(
        name="LMS",
        issuer="https://lms.example",
        client_id="c",
        auth_login_url="https://lms.example/auth",
        auth_token_url="https://lms.example/token",
        key_set_url="https://lms.example/jwks",
        deployment_ids=["1"],
    )
    # No roster service offered: a sync by staff is refused with a message (302), not queued.
    context = LtiContext.objects.create(platform=platform, context_id="ctx", course=personas.course)
    lti_user = LtiUser.objects.create(platform=platform, sub="a", user=personas.alice)
    score = LtiScore.objects.create(
        context=context,
        user=personas.alice,
        lti_user=lti_user,
        stage_key="problem",
        score_given=1,
        score_maximum=2,
        state=ScoreState.SENT,  # not failed: staff get a message, nothing is sent
    )
    return personas, score


def _client(personas, who):
    client = Client()
    if who != "anonymous":
        client.force_login(getattr(personas, who))
    return client


def _expect(who, staff_status):
    if who == "anonymous":
        return 302
    return staff_status if who in STAFF else 404


@pytest.mark.parametrize("who", PERSONAS)
def test_the_lti_page_is_for_course_staff_only(world, who):
    personas, _ = world
    response = _client(personas, who).get(f"/lti/courses/{personas.course.pk}/")
    assert response.status_code == _expect(who, 200)


@pytest.mark.parametrize("who", PERSONAS)
def test_syncing_the_roster_is_for_course_staff_only(world, who):
    personas, _ = world
    response = _client(personas, who).post(f"/lti/courses/{personas.course.pk}/sync/")
    assert response.status_code == _expect(who, 302)
    if who in STAFF:
        assert response["Location"] == f"/lti/courses/{personas.course.pk}/"


@pytest.mark.parametrize("who", PERSONAS)
def test_retrying_a_passback_is_for_course_staff_only(world, who):
    personas, score = world
    url = f"/lti/courses/{personas.course.pk}/scores/{score.pk}/retry/"
    response = _client(personas, who).post(url)
    assert response.status_code == _expect(who, 302)
    score.refresh_from_db()
    assert score.state == ScoreState.SENT


@pytest.mark.parametrize("who", PERSONAS)
def test_the_tool_jwks_is_public(world, who):
    personas, _ = world
    response = _client(personas, who).get("/lti/jwks/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
