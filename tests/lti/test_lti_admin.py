"""Site admins keep the LTI registrations in the Django admin."""

from __future__ import annotations

import pytest
from factories import UserFactory

from lti.models import LtiPlatform, LtiProblem, LtiToolKey

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


@pytest.mark.parametrize(
    "model",
    ["ltiplatform", "ltitoolkey", "lticontext", "ltiuser", "ltilineitem", "ltiscore", "ltiproblem"],
)
def test_every_lti_list_opens_in_the_admin(admin_client, model):
    assert admin_client.get(f"/admin/lti/{model}/").status_code == 200


def test_a_site_admin_registers_a_platform(admin_client):
    response = admin_client.post(
        "/admin/lti/ltiplatform/add/",
        {
            "name": "Canvas",
            "issuer": "https://canvas.example",
            "client_id": "10000000000001",
            "auth_login_url": "https://canvas.example/api/lti/authorize_redirect",
            "auth_token_url": "https://canvas.example/login/oauth2/token",
            "auth_audience": "",
            "key_set_url": "https://canvas.example/api/lti/security/jwks",
            "deployment_ids": '["1:abc"]',
            "is_active": "on",
            "created_at_0": "2026-11-30",
            "created_at_1": "12:00:00",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    assert LtiPlatform.objects.get().deployment_ids == ["1:abc"]


def test_a_site_admin_generates_a_new_tool_key_and_both_are_published(admin_client, client):
    first = client.get("/lti/jwks/").json()["keys"][0]["kid"]
    response = admin_client.post(
        "/admin/lti/ltitoolkey/",
        {"action": "generate_key", "_selected_action": [str(LtiToolKey.objects.get().pk)]},
    )
    assert response.status_code == 302
    kids = [k["kid"] for k in client.get("/lti/jwks/").json()["keys"]]
    assert len(kids) == 2 and first in kids


def test_problems_are_read_only(admin_client):
    problem = LtiProblem.objects.create(kind="expired", message="The launch token has expired.")
    assert admin_client.get(f"/admin/lti/ltiproblem/{problem.pk}/change/").status_code == 200
    assert admin_client.get("/admin/lti/ltiproblem/add/").status_code == 403
