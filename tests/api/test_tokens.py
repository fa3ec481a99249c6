"""Personal access tokens: shown once, stored as a hash, scoped, expiring, revocable by the
owner and by the owner's course staff; never a way into the pages, and the API's session path
keeps CSRF."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from reauth import confirm_password

from api import services
from api.models import PersonalAccessToken
from lifecycle.errors import InvalidAnswers, NotAllowed
from lifecycle.models import AuditEvent

pytestmark = pytest.mark.django_db

ME = "/api/v1/me/"


def test_the_secret_is_shown_once_and_only_its_hash_is_stored(personas):
    client = Client()
    client.force_login(personas.alice)
    response = client.post(
        reverse("api_pages:tokens"),
        {"name": "training notebook", "scopes": ["read", "draft"], "days": 30},
    )
    assert response.status_code == 200
    secret = response.context["secret"]
    assert secret.startswith("lrb_") and secret in response.content.decode()
    assert response["Cache-Control"] == "no-store"
    token = PersonalAccessToken.objects.get(user=personas.alice)
    assert token.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(PersonalAccessToken.objects.filter(pk=token.pk).values().get())
    assert token.scopes == ["draft", "read"]
    assert abs(token.expires_at - token.created_at - dt.timedelta(days=30)) < dt.timedelta(
        seconds=5
    )
    # Shown once: the page's next view lists the token by its prefix only.
    again = client.get(reverse("api_pages:tokens")).content.decode()
    assert secret not in again and token.prefix in again
    assert AuditEvent.objects.filter(verb="token.create", actor=personas.alice).count() == 1


def test_bad_token_forms_are_refused_next_to_their_field(personas):
    client = Client()
    client.force_login(personas.alice)
    response = client.post(reverse("api_pages:tokens"), {"name": "", "scopes": [], "days": 400})
    assert response.status_code == 400
    form = response.context["form"]
    assert set(form.errors) == {"name", "scopes", "days"}
    assert not PersonalAccessToken.objects.exists()
    with pytest.raises(InvalidAnswers) as raised:
        services.token_create(user=personas.alice, name="x", scopes=["admin"])
    assert "scopes" in raised.value.errors
    with pytest.raises(InvalidAnswers):
        services.token_create(user=personas.alice, name="x", scopes=["read"], days=366)


def test_default_expiry_is_90_days_and_an_expired_token_is_refused(personas):
    token, secret = services.token_create(user=personas.alice, name="nb", scopes=["read"])
    assert (token.expires_at - token.created_at).days == 90
    api = Client()
    ok = api.get(ME, HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert ok.status_code == 200 and ok.json()["email"] == "alice@example.test"
    with time_machine.travel(token.expires_at + dt.timedelta(seconds=1)):
        expired = api.get(ME, HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert expired.status_code == 401
    assert expired["Content-Type"] == "application/problem+json"
    assert "expired" in expired.json()["detail"]


def test_last_use_is_recorded_without_a_write_per_request(personas, django_assert_max_num_queries):
    token, secret = services.token_create(user=personas.alice, name="nb", scopes=["read"])
    api = Client()
    assert token.last_used_at is None
    api.get(ME, HTTP_AUTHORIZATION=f"Bearer {secret}")
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None
    api.get(ME, HTTP_AUTHORIZATION=f"Bearer {secret}")
    token.refresh_from_db()
    assert token.last_used_at == first  # within the minute: no second write


def test_unknown_malformed_and_revoked_tokens_get_401(personas):
    token, secret = services.token_create(user=personas.alice, name="nb", scopes=["read"])
    api = Client()
    assert api.get(ME, HTTP_AUTHORIZATION="Bearer lrb_nope").status_code == 401
    assert api.get(ME, HTTP_AUTHORIZATION="Bearer a b c").status_code == 401
    services.token_revoke(token=token, actor=personas.alice)
    response = api.get(ME, HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 401 and "revoked" in response.json()["detail"]
    assert AuditEvent.objects.filter(verb="token.revoke").count() == 1


def test_a_token_never_opens_the_pages(personas):
    _, secret = services.token_create(user=personas.alice, name="nb", scopes=["read", "draft"])
    page = Client().get(reverse("home"), HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert page.status_code == 302 and "/accounts/login/" in page["Location"]
    project = Client().get(
        personas.project.get_absolute_url(), HTTP_AUTHORIZATION=f"Bearer {secret}"
    )
    assert project.status_code == 302


def test_the_session_on_the_api_needs_csrf_for_writes(personas):
    client = Client(enforce_csrf_checks=True)
    client.force_login(personas.alice)
    assert client.get(ME).status_code == 200  # reads need no token
    stage = personas.project.current_stage
    response = client.put(
        f"/api/v1/stages/{stage.pk}/draft/",
        {"base_version": 0, "answers": {}},
        content_type="application/json",
    )
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


def test_anonymous_api_requests_get_401_problem_details():
    response = Client().get(ME)
    assert response.status_code == 401
    body = response.json()
    assert response["Content-Type"] == "application/problem+json"
    assert body["status"] == 401 and body["title"] and body["type"].startswith("/api/v1/problems/")


def test_staff_list_and_revoke_their_members_tokens_after_reauth(personas):
    token, secret = services.token_create(user=personas.alice, name="leaky", scopes=["read"])
    services.token_create(user=personas.oscar, name="not in the course", scopes=["read"])
    ian = Client()
    ian.force_login(personas.ian)
    url = reverse("api_pages:course_tokens", args=[personas.course.pk])
    assert ian.get(url).status_code == 302  # asks for the password first
    confirm_password(ian)
    page = ian.get(url)
    assert page.status_code == 200
    text = page.content.decode()
    assert "leaky" in text and "not in the course" not in text
    ian.post(reverse("api_pages:token_revoke", args=[token.pk]), {"course": personas.course.pk})
    token.refresh_from_db()
    assert token.revoked_by == personas.ian
    assert Client().get(ME, HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 401


@pytest.mark.parametrize("who", ["alice", "carol", "erin", "oscar"])
def test_non_staff_cannot_see_a_course_s_tokens(personas, who):
    client = Client()
    client.force_login(getattr(personas, who))
    confirm_password(client)
    assert (
        client.get(reverse("api_pages:course_tokens", args=[personas.course.pk])).status_code == 404
    )


@pytest.mark.parametrize("who", ["bob", "carol", "erin", "oscar"])
def test_nobody_else_revokes_a_students_token(personas, who):
    token, _ = services.token_create(user=personas.alice, name="mine", scopes=["read"])
    client = Client()
    client.force_login(getattr(personas, who))
    assert client.post(reverse("api_pages:token_revoke", args=[token.pk])).status_code == 404
    with pytest.raises(NotAllowed):
        services.token_revoke(token=token, actor=getattr(personas, who))
    token.refresh_from_db()
    assert token.revoked_at is None


def test_a_read_token_cannot_write(personas):
    _, secret = services.token_create(user=personas.alice, name="ro", scopes=["read"])
    stage = personas.project.current_stage
    response = Client().put(
        f"/api/v1/stages/{stage.pk}/draft/",
        {"base_version": 0, "answers": {}},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )
    assert response.status_code == 403
    assert "draft" in response.json()["detail"]
