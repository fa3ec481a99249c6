"""Login initiation and launches against the simulated platform: real RS256 JWTs, the
platform's JWKS fetched over HTTP, no mocked validation."""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from factories import CourseFactory, UserFactory, enrol
from platform_sim import INSTRUCTOR, LEARNER, MENTOR, TEACHING_ASSISTANT, RsaKey

from lifecycle.models import AuditEvent, Membership, Role
from lti.models import LtiContext, LtiProblem, LtiUser

pytestmark = pytest.mark.django_db


@pytest.fixture
def linked_course(platform):
    course = CourseFactory()
    LtiContext.objects.create(platform=platform, context_id="ctx-1", course=course)
    return course


def test_login_initiation_redirects_to_the_platform_with_a_state_cookie_and_a_nonce(
    client, sim, platform
):
    response = client.get("/lti/login/", sim.login_params())
    assert response.status_code == 302
    query = sim.authorize(response["Location"])
    assert query["redirect_uri"] == "http://testserver/lti/launch/"
    assert query["login_hint"] == "hint-1"
    assert client.cookies[f"lti1p3-{query['state']}"].value == query["state"]


def test_login_initiation_also_answers_a_post(client, sim, platform):
    response = client.post("/lti/login/", sim.login_params())
    assert response.status_code == 302
    sim.authorize(response["Location"])


def test_login_initiation_from_an_unknown_platform_is_refused_and_logged(client, sim, platform):
    response = client.get("/lti/login/", sim.login_params(iss="https://elsewhere.example"))
    assert response.status_code == 400
    assert b"not registered" in response.content
    assert LtiProblem.objects.get().kind == "unknown_issuer"


def test_login_initiation_answers_no_other_method(client, platform):
    assert client.put("/lti/login/").status_code == 405


def test_a_learner_launch_signs_in_and_lands_in_the_linked_course(launcher, linked_course):
    launch = launcher.launch(sub="s-1", roles=[LEARNER], email="Lena@Uni.example", name="Lena")
    assert launch.response.status_code == 302
    assert launch.response["Location"] == f"/courses/{linked_course.pk}/"
    lti_user = LtiUser.objects.select_related("user").get(sub="s-1")
    assert lti_user.user.email == "lena@uni.example"
    assert lti_user.user.is_email_verified
    assert Membership.objects.get(course=linked_course, user=lti_user.user).role == Role.STUDENT
    page = launcher.client.get(launch.response["Location"])
    assert page.status_code == 200
    # The tool fetched the platform's key set over HTTP to verify the signature.
    assert any(r.path == "/jwks" for r in launcher.sim.state.requests)
    verbs = set(AuditEvent.objects.filter(course=linked_course).values_list("verb", flat=True))
    assert {"membership.add", "lti.launch"} <= verbs


def test_an_instructor_launch_makes_an_instructor(launcher, linked_course):
    launcher.launch(sub="i-1", roles=[INSTRUCTOR], email="ivy@uni.example")
    user = LtiUser.objects.get(sub="i-1").user
    assert Membership.objects.get(course=linked_course, user=user).role == Role.INSTRUCTOR


def test_a_teaching_assistant_launch_makes_a_ta_not_an_instructor(launcher, linked_course):
    launcher.launch(sub="t-1", roles=[TEACHING_ASSISTANT, INSTRUCTOR], email="ta@uni.example")
    user = LtiUser.objects.get(sub="t-1").user
    assert Membership.objects.get(course=linked_course, user=user).role == Role.TA


def test_a_launch_without_an_email_gets_a_placeholder_address_and_the_same_account_next_time(
    launcher, linked_course
):
    launcher.launch(sub="anon-7", roles=[LEARNER])
    user = LtiUser.objects.get(sub="anon-7").user
    assert user.email.endswith("@lti.invalid")
    assert not user.has_usable_password()
    launcher.client.logout()
    launcher.launch(sub="anon-7", roles=[LEARNER])
    assert LtiUser.objects.filter(sub="anon-7").count() == 1


def test_a_launch_with_the_email_of_an_existing_account_signs_that_account_in(
    launcher, linked_course
):
    existing = UserFactory(email="known@uni.example")
    launcher.launch(sub="k-1", roles=[LEARNER], email="known@uni.example")
    assert LtiUser.objects.get(sub="k-1").user == existing
    assert launcher.client.get("/").wsgi_request.user == existing


def test_an_instructor_launch_of_an_unlinked_context_asks_which_board_to_link(launcher):
    ian = UserFactory(email="ian@uni.example")
    course = CourseFactory()
    enrol(course, ian, Role.INSTRUCTOR)
    launch = launcher.launch(sub="i-9", roles=[INSTRUCTOR], email="ian@uni.example")
    context = LtiContext.objects.get(context_id="ctx-1")
    assert launch.response["Location"] == f"/lti/link/{context.pk}/"
    page = launcher.client.get(launch.response["Location"])
    assert page.status_code == 200
    assert course.title.encode() in page.content
    response = launcher.client.post(launch.response["Location"], {"course": str(course.pk)})
    assert response["Location"] == f"/courses/{course.pk}/"
    context.refresh_from_db()
    assert context.course == course
    assert AuditEvent.objects.filter(course=course, verb="lti.context_link").exists()


def test_an_instructor_can_make_a_new_board_for_an_unlinked_context(launcher):
    launch = launcher.launch(sub="i-10", roles=[INSTRUCTOR], email="new@uni.example")
    response = launcher.client.post(
        launch.response["Location"], {"course": "new", "title": "Deep Learning, spring"}
    )
    context = LtiContext.objects.select_related("course").get(context_id="ctx-1")
    assert context.course.title == "Deep Learning, spring"
    assert response["Location"] == f"/courses/{context.course.pk}/"
    user = LtiUser.objects.get(sub="i-10").user
    assert Membership.objects.get(course=context.course, user=user).role == Role.INSTRUCTOR


def test_the_link_page_is_a_404_for_someone_whose_launch_did_not_bring_the_context(
    launcher, client
):
    launcher.launch(sub="i-11", roles=[INSTRUCTOR], email="i11@uni.example")
    context = LtiContext.objects.get(context_id="ctx-1")
    other = UserFactory(email="oscar@uni.example")
    from django.test import Client

    outsider = Client()
    outsider.force_login(other)
    assert outsider.get(f"/lti/link/{context.pk}/").status_code == 404
    assert outsider.post(f"/lti/link/{context.pk}/", {"course": "new"}).status_code == 404


def test_the_link_page_answers_no_other_method(launcher):
    launch = launcher.launch(sub="i-12", roles=[INSTRUCTOR], email="i12@uni.example")
    assert launcher.client.put(launch.response["Location"]).status_code == 405


def test_a_student_launch_of_an_unlinked_context_gets_a_clear_page(launcher):
    launch = launcher.launch(sub="s-2", roles=[LEARNER], email="s2@uni.example")
    assert launch.response.status_code == 200
    assert b"not linked to a Lifecycle Review Board course yet" in launch.response.content


# --- bad input ----------------------------------------------------------------------------


def _refused(launch, kind: str, status: int = 400) -> None:
    assert launch.response.status_code == status, launch.response.content[:400]
    assert f'data-reason="{kind}"'.encode() in launch.response.content
    assert LtiProblem.objects.filter(kind=kind).exists()
    assert "_auth_user_id" not in launch.response.wsgi_request.session


def test_a_launch_signed_by_another_key_under_the_platforms_kid_is_refused(launcher):
    forger = RsaKey()
    launch = launcher.launch(
        sub="s-1", roles=[LEARNER], sign=lambda c: launcher.sim.id_token(c, key=forger)
    )
    _refused(launch, "bad_signature")


def test_a_launch_signed_with_a_key_the_platform_does_not_publish_is_refused(launcher):
    forger = RsaKey()
    launch = launcher.launch(
        sub="s-1",
        roles=[LEARNER],
        sign=lambda c: launcher.sim.id_token(c, key=forger, kid=forger.kid),
    )
    _refused(launch, "bad_signature")


def test_a_launch_for_another_audience_is_refused(launcher):
    launch = launcher.launch(
        sub="s-1", roles=[LEARNER], tamper=lambda c: c.update(aud="some-other-tool")
    )
    _refused(launch, "wrong_audience")


def test_an_expired_launch_is_refused(launcher):
    past = int(time.time()) - 3600
    launch = launcher.launch(
        sub="s-1", roles=[LEARNER], tamper=lambda c: c.update(iat=past - 60, exp=past)
    )
    _refused(launch, "expired")


def test_a_replayed_launch_is_refused(launcher, linked_course):
    first = launcher.launch(sub="s-1", roles=[LEARNER], email="s1@uni.example")
    assert first.response.status_code == 302
    launcher.client.logout()
    replay = launcher.post(first.id_token, first.state)
    assert replay.status_code == 400
    assert b'data-reason="replayed_nonce"' in replay.content
    problem = LtiProblem.objects.get(kind="replayed_nonce")
    assert problem.sub == "s-1"


def test_a_launch_with_a_nonce_the_board_never_issued_is_refused(launcher):
    launch = launcher.launch(
        sub="s-1", roles=[LEARNER], tamper=lambda c: c.update(nonce="made-up-nonce")
    )
    _refused(launch, "bad_nonce")


def test_a_launch_from_an_unknown_deployment_is_refused(launcher):
    launch = launcher.launch(
        sub="s-1",
        roles=[LEARNER],
        tamper=lambda c: c.update(
            {"https://purl.imsglobal.org/spec/lti/claim/deployment_id": "rogue-deployment"}
        ),
    )
    _refused(launch, "unknown_deployment")
    assert LtiProblem.objects.get().deployment_id == "rogue-deployment"


def test_a_launch_from_an_unknown_issuer_is_refused(launcher):
    launch = launcher.launch(
        sub="s-1", roles=[LEARNER], tamper=lambda c: c.update(iss="https://unknown.example")
    )
    _refused(launch, "unknown_issuer")


def test_a_launch_without_the_login_state_is_refused(launcher):
    auth = launcher.login()
    token = launcher.sim.id_token(
        launcher.sim.launch_claims(sub="s-1", roles=[LEARNER], nonce=auth["nonce"])
    )
    response = launcher.post(token, "state-not-ours")
    assert response.status_code == 400
    assert b'data-reason="bad_state"' in response.content


def test_a_launch_that_is_not_a_jwt_is_refused(launcher):
    auth = launcher.login()
    response = launcher.post("not-a-jwt", auth["state"])
    assert response.status_code == 400
    assert b'data-reason="bad_token"' in response.content


def test_a_role_the_course_does_not_have_is_refused_and_audited_in_the_course(
    launcher, linked_course
):
    launch = launcher.launch(sub="m-1", roles=[MENTOR], email="mentor@uni.example")
    _refused(launch, "unknown_role", status=403)
    event = AuditEvent.objects.get(course=linked_course, verb="lti.launch_refused")
    assert event.new["reason"] == "unknown_role"
    assert not Membership.objects.filter(course=linked_course, user__email="mentor@uni.example")


def test_the_launch_endpoint_answers_no_get(client, platform):
    assert client.get("/lti/launch/").status_code == 405


def test_the_tool_jwks_publishes_the_signing_key(client, db):
    keys = client.get("/lti/jwks/").json()["keys"]
    assert len(keys) == 1
    assert keys[0]["kty"] == "RSA" and keys[0]["alg"] == "RS256" and keys[0]["kid"]
    assert "d" not in keys[0]


def test_login_state_matches_the_launch_redirect_uri(client, sim, platform):
    response = client.get("/lti/login/", sim.login_params())
    location = urlsplit(response["Location"])
    assert parse_qs(location.query)["redirect_uri"] == ["http://testserver/lti/launch/"]


# --- launches inside the platform's iframe --------------------------------------------------


def _framed_launch(launcher, **claim_args):
    auth = launcher.login()
    claims = launcher.sim.launch_claims(nonce=auth["nonce"], **claim_args)
    return launcher.client.post(
        "/lti/launch/",
        {"id_token": launcher.sim.id_token(claims), "state": auth["state"]},
        headers={"Sec-Fetch-Dest": "iframe"},
    )


def test_a_framed_launch_offers_the_board_in_a_new_window_framable_by_the_platform_only(
    launcher, linked_course
):
    response = _framed_launch(launcher, sub="s-1", roles=[LEARNER], email="s1@uni.example")
    assert response.status_code == 200
    assert "X-Frame-Options" not in response
    csp = response["Content-Security-Policy"]
    assert f"frame-ancestors {launcher.sim.base_url}" in csp
    match = re.search(rb'href="(/lti/enter/[^"]+)" target="_blank"', response.content)
    assert match
    enter_url = match.group(1).decode()
    window = Client()
    landed = window.get(enter_url)
    assert landed.status_code == 302
    assert landed["Location"] == f"/courses/{linked_course.pk}/"
    assert window.get(landed["Location"]).status_code == 200
    again = Client().get(enter_url)
    assert again.status_code == 400
    assert b'data-reason="bad_handoff"' in again.content


def test_a_framed_instructor_launch_carries_the_link_page_to_the_new_window(launcher):
    response = _framed_launch(launcher, sub="i-1", roles=[INSTRUCTOR], email="i1@uni.example")
    enter_url = re.search(rb'href="(/lti/enter/[^"]+)"', response.content).group(1).decode()
    window = Client()
    landed = window.get(enter_url)
    context = LtiContext.objects.get(context_id="ctx-1")
    assert landed["Location"] == f"/lti/link/{context.pk}/"
    assert window.get(landed["Location"]).status_code == 200


def test_a_forged_handoff_link_is_refused(client, db):
    response = client.get("/lti/enter/not-a-signed-token/")
    assert response.status_code == 400
    assert "_auth_user_id" not in client.session


def test_the_handoff_link_answers_no_post(client, db):
    assert client.post("/lti/enter/anything/").status_code == 405


def test_launch_and_login_need_no_csrf_token_because_the_platform_posts_them(sim, platform):
    strict = Client(enforce_csrf_checks=True)
    response = strict.post("/lti/login/", sim.login_params())
    assert response.status_code == 302
    auth = sim.authorize(response["Location"])
    token = sim.id_token(sim.launch_claims(sub="s-1", roles=[LEARNER], nonce=auth["nonce"]))
    launched = strict.post("/lti/launch/", {"id_token": token, "state": auth["state"]})
    assert launched.status_code == 200  # the student's not-linked page, not a CSRF 403


# --- HTTPS: the cookies a cross-site launch needs -------------------------------------------


def test_over_https_only_the_lti_cookies_are_samesite_none_and_the_launch_works(
    sim, platform, linked_course
):
    browser = Client()
    response = browser.get("/lti/login/", sim.login_params(), secure=True)
    auth = sim.authorize(response["Location"])
    lti_cookies = {k: v for k, v in response.cookies.items() if k.startswith("lti1p3-")}
    assert set(lti_cookies) == {f"lti1p3-{auth['state']}", "lti1p3-session-id"}
    for cookie in lti_cookies.values():
        assert cookie["samesite"] == "None" and cookie["secure"] and cookie["httponly"]
    token = sim.id_token(
        sim.launch_claims(sub="s-1", roles=[LEARNER], nonce=auth["nonce"], email="s@uni.example")
    )
    launched = browser.post(
        "/lti/launch/", {"id_token": token, "state": auth["state"]}, secure=True
    )
    assert launched.status_code == 302
    assert launched["Location"] == f"/courses/{linked_course.pk}/"
    assert launched.cookies["sessionid"]["samesite"] == "Lax"


def test_over_https_a_launch_without_the_lti_session_cookie_is_refused_not_a_500(sim, platform):
    browser = Client()
    response = browser.get("/lti/login/", sim.login_params(), secure=True)
    auth = sim.authorize(response["Location"])
    del browser.cookies["lti1p3-session-id"]
    token = sim.id_token(sim.launch_claims(sub="s-1", roles=[LEARNER], nonce=auth["nonce"]))
    launched = browser.post(
        "/lti/launch/", {"id_token": token, "state": auth["state"]}, secure=True
    )
    assert launched.status_code == 400
    assert b'data-reason="bad_state"' in launched.content


def test_used_nonces_are_forgotten_after_the_retention(launcher, linked_course):
    from datetime import timedelta

    from django.utils import timezone

    from lti.models import LtiUsedNonce
    from lti.services import used_nonces_purge

    launcher.launch(sub="s-1", roles=[LEARNER], email="s1@uni.example")
    assert used_nonces_purge() == 0
    LtiUsedNonce.objects.update(used_at=timezone.now() - timedelta(days=8))
    assert used_nonces_purge() == 1


def test_a_launch_never_opens_a_site_administrators_account(launcher, linked_course):
    admin = UserFactory(email="root@uni.example", is_staff=True)
    launch = launcher.launch(sub="r-1", roles=[INSTRUCTOR], email="root@uni.example")
    _refused(launch, "privileged_account", status=403)
    assert not LtiUser.objects.filter(user=admin).exists()
    assert not Membership.objects.filter(user=admin).exists()
    assert AuditEvent.objects.filter(course=linked_course, verb="lti.launch_refused").exists()


def test_a_launch_into_a_closed_account_is_refused(launcher, linked_course):
    UserFactory(email="gone@uni.example", is_active=False)
    launch = launcher.launch(sub="g-1", roles=[LEARNER], email="gone@uni.example")
    _refused(launch, "inactive_user", status=403)
