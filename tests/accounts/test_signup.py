"""Signing up: a new account, signed in at once; with a join code, in the course once the
e-mailed link has verified the address."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.db import IntegrityError
from django.test import Client
from django.urls import reverse
from factories import CourseFactory

from accounts import services
from accounts.models import User
from lifecycle.models import AuditEvent, Membership, Role

pytestmark = pytest.mark.django_db

SIGNUP_URL = reverse("accounts:signup")
PASSWORD = "a-long-and-unusual-passphrase-77"


def form_data(**overrides: str) -> dict[str, str]:
    return {
        "email": "Nia.Okoye@Example.test",
        "display_name": "Nia Okoye",
        "password1": PASSWORD,
        "password2": PASSWORD,
        "code": "",
        **overrides,
    }


def field_error(response, field: str) -> str:
    found = re.search(
        rf'id="error_\d+_id_{field}"[^>]*>\s*<strong>(.*?)</strong>',
        response.content.decode(),
        flags=re.S,
    )
    return found.group(1) if found else ""


def signed_in_user(client: Client) -> User | None:
    pk = client.session.get("_auth_user_id")
    return User.objects.get(pk=pk) if pk else None


def test_the_sign_up_page_asks_for_email_name_and_the_password_twice(client):
    html = client.get(SIGNUP_URL).content.decode()
    for field, label in [
        ("email", "E-mail"),
        ("display_name", "Display name"),
        ("password1", "Password"),
        ("password2", "Password again"),
        ("code", "Course join code"),
    ]:
        assert re.search(rf'<label[^>]*for="id_{field}"[^>]*>\s*{label}', html), field
    assert 'autocomplete="new-password"' in html


def test_signing_up_creates_the_account_in_lower_case_and_signs_in(client):
    response = client.post(SIGNUP_URL, form_data())
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:verify_email_pending")
    user = User.objects.get()
    assert user.email == "nia.okoye@example.test"
    assert user.display_name == "Nia Okoye"
    assert user.check_password(PASSWORD)
    assert user.email_verified_at is None
    assert signed_in_user(client) == user
    assert "Welcome, Nia Okoye" in client.get(response["Location"]).content.decode()


def test_an_address_taken_in_any_case_is_an_error_next_to_the_email(client):
    User.objects.create_user(email="nia.okoye@example.test", password=PASSWORD)
    response = client.post(SIGNUP_URL, form_data(email="NIA.OKOYE@example.test"))
    assert response.status_code == 400
    assert "exists already" in field_error(response, "email")
    assert User.objects.count() == 1
    assert signed_in_user(client) is None


def test_two_sign_ups_racing_for_one_address_end_in_a_form_error_not_a_500(client, monkeypatch):
    # The form's check passes for both; the unique index refuses the second.
    def create_user_raced(*args, **kwargs):
        raise IntegrityError("duplicate key value violates unique constraint")

    monkeypatch.setattr(User.objects, "create_user", create_user_raced)
    response = client.post(SIGNUP_URL, form_data())
    assert response.status_code == 400
    assert "exists already" in field_error(response, "email")


def test_the_service_refuses_a_second_account_differing_only_in_case():
    services.user_sign_up(email="Kim@Example.test", password=PASSWORD, display_name="Kim")
    with pytest.raises(services.EmailTaken):
        services.user_sign_up(email="kim@example.TEST", password=PASSWORD, display_name="K")
    assert User.objects.get().email == "kim@example.test"


def test_the_passwords_must_match(client):
    response = client.post(SIGNUP_URL, form_data(password2=PASSWORD + "x"))
    assert response.status_code == 400
    assert "differ" in field_error(response, "password2")
    assert not User.objects.exists()


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short1", "too short"),
        ("password123", "too common"),
        ("83749201847362", "entirely numeric"),
        ("nia.okoye@example", "too similar"),
    ],
)
def test_djangos_password_validation_applies(client, password, message):
    response = client.post(SIGNUP_URL, form_data(password1=password, password2=password))
    assert response.status_code == 400
    assert message in field_error(response, "password2")
    assert not User.objects.exists()


def test_signing_up_with_a_join_code_joins_the_course_once_the_address_is_verified(
    client, django_capture_on_commit_callbacks
):
    course = CourseFactory(join_code="JOINME23")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(SIGNUP_URL, form_data(code=" joinme23 "))
    user = User.objects.get()
    assert response.status_code == 302
    assert not Membership.objects.filter(user=user).exists()
    [letter] = mail.outbox
    link = re.search(r"https?://[^/\s]+(/accounts/verify/[^/\s]+/)", letter.body).group(1)
    response = client.get(link)
    assert response["Location"] == reverse("lifecycle:course_detail", args=[course.pk])
    assert Membership.objects.get(course=course, user=user).role == Role.STUDENT
    assert AuditEvent.objects.filter(verb="membership.join", actor=user).exists()
    page = client.get(response["Location"])
    assert page.status_code == 200
    assert f"you have joined {course.title}" in page.content.decode()


def test_a_wrong_join_code_creates_no_account_and_says_so_next_to_the_code(client):
    CourseFactory(join_code="JOINME23")
    response = client.post(SIGNUP_URL, form_data(code="WRONG000"))
    assert response.status_code == 400
    assert "No course has that join code" in field_error(response, "code")
    assert not User.objects.exists()
    assert signed_in_user(client) is None


def test_the_code_from_the_link_is_filled_in(client):
    html = client.get(SIGNUP_URL + "?code=joinme23").content.decode()
    assert re.search(r'name="code"[^>]*value="JOINME23"', html)
    # "Sign in instead" keeps the way into the course.
    assert "next=%2Fcourses%2Fjoin%2F%3Fcode%3DJOINME23" in html


def test_sign_up_returns_to_a_safe_next_page_only(client):
    response = client.post(SIGNUP_URL + "?next=/accounts/profile/", form_data())
    assert response["Location"] == "/accounts/profile/"
    other = Client()
    response = other.post(
        SIGNUP_URL + "?next=https://evil.example/", form_data(email="b@example.test")
    )
    assert response["Location"] == reverse("accounts:verify_email_pending")


def test_the_sign_in_page_offers_sign_up(client):
    html = client.get(reverse("accounts:login")).content.decode()
    assert "New here?" in html
    assert f'href="{SIGNUP_URL}"' in html


def test_the_sign_in_page_reached_from_a_join_link_offers_sign_up_with_the_code(client):
    next_url = reverse("lifecycle:course_join") + "?code=JOINME23"
    html = client.get(reverse("accounts:login"), {"next": next_url}).content.decode()
    assert f'href="{SIGNUP_URL}?code=JOINME23"' in html


def test_a_signed_in_person_is_not_shown_the_sign_up_form(client):
    user = User.objects.create_user(email="a@example.test", password=PASSWORD)
    client.force_login(user)
    assert client.get(SIGNUP_URL)["Location"] == reverse("home")
    response = client.get(SIGNUP_URL + "?code=JOINME23")
    assert response["Location"] == reverse("lifecycle:course_join") + "?code=JOINME23"


def test_sign_up_needs_a_csrf_token(db):
    client = Client(enforce_csrf_checks=True)
    assert client.post(SIGNUP_URL, form_data()).status_code == 403
    assert not User.objects.exists()
    client.get(SIGNUP_URL)
    token = client.cookies["csrftoken"].value
    response = client.post(SIGNUP_URL, {**form_data(), "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert User.objects.count() == 1


def test_sign_up_refuses_other_methods(client):
    assert client.put(SIGNUP_URL).status_code == 405
    assert client.delete(SIGNUP_URL).status_code == 405
