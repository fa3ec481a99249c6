"""Re-authentication: the password again, within the last ten minutes, before an instructor's
override and a whole course's audit trail (accounts/reauth.py).

Ian is the course's instructor, Tina its TA, Alice a student; every persona's password is
factories.PASSWORD. ``force_login`` types no password, so a test session starts unconfirmed
unless the test signs in through the form or calls ``confirm_password``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory
from django.urls import reverse
from factories import PASSWORD, current_stage
from reauth import confirm_password

from accounts.reauth import recent_auth_required

REAUTH_URL = reverse("accounts:reauth")
WRONG_TEXT = "That is not your password"


def override_url(personas: Any) -> str:
    return reverse("reviews:stage_override", args=[current_stage(personas.project).pk])


def course_export_url(personas: Any) -> str:
    return reverse("lifecycle:audit_export", args=[personas.course.pk]) + "?format=csv"


def signed_in_as(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def reauth_redirect_for(url: str) -> str:
    return f"{REAUTH_URL}?{urlencode({'next': url})}"


@pytest.mark.parametrize("page", [override_url, course_export_url])
def test_without_a_recent_password_the_page_asks_for_it_and_comes_back(personas, page):
    url = page(personas)
    client = signed_in_as(personas.ian)

    response = client.get(url)

    assert response.status_code == 302
    assert response.url == reauth_redirect_for(url)
    form = client.get(response.url)
    assert form.status_code == 200
    assert "Confirm your password" in form.content.decode()
    assert f'name="next" value="{url}"' in form.content.decode().replace("&amp;", "&")


def test_a_wrong_password_shows_the_error_on_the_form(personas):
    url = override_url(personas)
    client = signed_in_as(personas.ian)

    response = client.post(REAUTH_URL, {"password": "not-my-password", "next": url})

    assert response.status_code == 400
    assert WRONG_TEXT in response.content.decode()
    assert client.get(url).status_code == 302  # still unconfirmed


def test_the_right_password_goes_back_to_the_action(personas):
    url = override_url(personas)
    client = signed_in_as(personas.ian)

    response = client.post(REAUTH_URL, {"password": PASSWORD, "next": url})

    assert response.status_code == 302
    assert response.url == url
    assert client.get(url).status_code == 200


def test_after_ten_minutes_the_password_is_asked_again(personas):
    url = override_url(personas)
    client = confirm_password(signed_in_as(personas.ian), seconds_ago=9 * 60)
    assert client.get(url).status_code == 200

    confirm_password(client, seconds_ago=10 * 60 + 1)

    response = client.get(url)
    assert response.status_code == 302
    assert response.url == reauth_redirect_for(url)


def test_signing_in_with_the_password_counts_as_a_recent_confirmation(personas):
    url = override_url(personas)
    client = Client()

    signed_in = client.post(
        f"{reverse('accounts:login')}?{urlencode({'next': url})}",
        {"username": personas.ian.email, "password": PASSWORD},
    )

    assert signed_in.status_code == 302
    assert signed_in.url == url
    assert client.get(url).status_code == 200


def test_a_post_without_a_recent_password_changes_nothing_and_asks_first(personas):
    url = override_url(personas)
    client = signed_in_as(personas.ian)

    response = client.post(url, {"justification": "The expert is ill."})

    assert response.status_code == 302
    assert response.url == reauth_redirect_for(url)
    assert not current_stage(personas.project).approved_by_override


def test_only_staff_learn_that_the_override_asks_for_a_password(personas):
    url = override_url(personas)

    for who in (personas.alice, personas.tina, personas.oscar):
        assert signed_in_as(who).get(url).status_code == 404


def test_one_project_s_export_needs_no_second_password(personas):
    url = (
        reverse("lifecycle:audit_export", args=[personas.course.pk])
        + f"?format=csv&project={personas.project.pk}"
    )

    response = signed_in_as(personas.tina).get(url)

    assert response.status_code == 200


def test_the_confirmation_page_needs_sign_in_and_refuses_other_sites(personas, client):
    assert client.get(REAUTH_URL).url.startswith(reverse("accounts:login"))

    ian = signed_in_as(personas.ian)
    response = ian.post(REAUTH_URL, {"password": PASSWORD, "next": "https://evil.example/"})

    assert response.status_code == 302
    assert response.url == reverse("home")


def test_the_confirmation_page_refuses_other_methods(personas):
    assert signed_in_as(personas.ian).put(REAUTH_URL).status_code == 405


def test_wrong_passwords_on_the_confirmation_page_count_towards_the_sign_in_lock(personas):
    client = signed_in_as(personas.ian)
    for _ in range(5):
        client.post(REAUTH_URL, {"password": "guess", "next": "/"})

    response = client.post(REAUTH_URL, {"password": PASSWORD, "next": "/"})

    assert response.status_code == 429


def test_the_decorator_guards_any_view(personas, rf: RequestFactory):
    @recent_auth_required
    def token_create(request: HttpRequest) -> HttpResponse:
        return HttpResponse("token")

    client = signed_in_as(personas.ian)
    request = rf.get("/tokens/new/?scope=read")
    request.user = personas.ian
    request.session = client.session

    refused = token_create(request)
    assert refused.status_code == 302
    assert refused.url == reauth_redirect_for("/tokens/new/?scope=read")

    request.session = confirm_password(client).session
    assert token_create(request).content == b"token"
