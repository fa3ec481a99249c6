"""Signing in and out, the sign-in throttle, passwords, the profile, error pages and the admin.

Alice is a student with an account; Sam is a site admin. The throttle is django-axes, counting
in the database (accounts/throttle.py); tests/services/test_sign_in_throttle.py runs it across
two server processes.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
import time_machine
from axes.models import AccessAttempt, AccessFailureLog
from django.conf import settings
from django.core import mail
from django.db import transaction
from django.shortcuts import resolve_url
from django.template.loader import get_template
from django.test import Client, RequestFactory
from django.urls import reverse
from django.views.defaults import server_error

from accounts.models import User
from lifecycle.audit import audit_record
from lifecycle.models import AuditEvent

PASSWORD = "correct-horse-battery-staple"
NEW_PASSWORD = "a-brand-new-passphrase-42"
LOGIN_URL = reverse("accounts:login")
LOCKED_TEXT = "Too many failed sign-in attempts"
WRONG_TEXT = "That e-mail address and password do not match an account"


@pytest.fixture
def alice(db) -> User:
    return User.objects.create_user(
        email="alice@example.test", password=PASSWORD, display_name="Alice"
    )


@pytest.fixture
def sam(db) -> User:
    return User.objects.create_superuser(email="sam@example.test", password=PASSWORD)


def sign_in(client: Client, email: str, password: str, **extra):
    # Lands on the profile, so that only the test of the default landing page needs 'home'.
    return client.post(
        f"{LOGIN_URL}?next={reverse('accounts:profile')}",
        {"username": email, "password": password},
        **extra,
    )


def is_signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


# --- Signing in and out -------------------------------------------------------------------


def test_the_sign_in_page_asks_for_an_email_and_a_password(client, db):
    response = client.get(LOGIN_URL)

    assert response.status_code == 200
    html = response.content.decode()
    assert "Lifecycle Review Board" in html
    assert re.search(r"<label[^>]*for=\"id_username\"[^>]*>\s*E-mail", html)
    assert 'type="email"' in html
    assert 'type="password"' in html
    assert "vendor/bootstrap/css/bootstrap.min.css" in html
    assert "vendor/htmx/htmx.min.js" in html
    assert 'hx-headers=\'{"X-CSRFToken": "' in html


def test_signing_in_with_the_email_in_any_case_redirects_to_the_home_page(client, alice):
    response = client.post(LOGIN_URL, {"username": "  ALICE@Example.TEST ", "password": PASSWORD})

    assert response.status_code == 302
    assert response.url == resolve_url(settings.LOGIN_REDIRECT_URL)
    assert client.session["_auth_user_id"] == str(alice.pk)


def test_signing_in_returns_to_the_page_that_asked_for_it(client, alice):
    profile_url = reverse("accounts:profile")

    response = client.post(
        f"{LOGIN_URL}?next={profile_url}", {"username": alice.email, "password": PASSWORD}
    )

    assert response.status_code == 302
    assert response.url == profile_url


def test_signing_in_refuses_to_redirect_to_another_site(client, alice):
    response = client.post(
        f"{LOGIN_URL}?next=https://evil.example/", {"username": alice.email, "password": PASSWORD}
    )

    assert response.status_code == 302
    assert "evil.example" not in response.url
    assert response.url == resolve_url(settings.LOGIN_REDIRECT_URL)


def test_a_wrong_password_shows_the_error_on_the_form(client, alice):
    response = sign_in(client, alice.email, "not-the-password")

    assert response.status_code == 200
    html = response.content.decode()
    assert WRONG_TEXT in html
    assert 'name="username"' in html  # the form is shown again, next to the error
    assert 'value="alice@example.test"' in html
    assert not is_signed_in(client)


def test_an_unknown_address_gets_the_same_error_as_a_wrong_password(client, db):
    response = sign_in(client, "nobody@example.test", "whatever-it-is")

    assert response.status_code == 200
    assert WRONG_TEXT in response.content.decode()


def test_signing_out_needs_a_post(client, alice):
    client.force_login(alice)

    response = client.get(reverse("accounts:logout"))

    assert response.status_code == 405
    assert is_signed_in(client)


def test_signing_out_by_post_signs_out_and_says_so(client, alice):
    client.force_login(alice)

    response = client.post(reverse("accounts:logout"), follow=True)

    assert response.status_code == 200
    assert not is_signed_in(client)
    assert "You have signed out." in response.content.decode()


def test_the_navbar_names_the_signed_in_person_and_offers_sign_out(client, alice):
    client.force_login(alice)

    html = client.get(reverse("accounts:profile")).content.decode()

    assert f'href="{reverse("accounts:profile")}"' in html
    assert ">Alice</a>" in html
    assert f'action="{reverse("accounts:logout")}"' in html
    assert "Sign out" in html


# --- The sign-in throttle -----------------------------------------------------------------


def test_five_failures_lock_the_account_from_that_address_and_even_the_right_password(
    client, alice
):
    for _ in range(4):
        assert WRONG_TEXT in sign_in(client, alice.email, "guess").content.decode()
    fifth = sign_in(client, alice.email, "guess")
    assert fifth.status_code == 429
    assert LOCKED_TEXT in fifth.content.decode()

    sixth = sign_in(client, alice.email, PASSWORD)

    assert sixth.status_code == 429
    html = sixth.content.decode()
    assert LOCKED_TEXT in html
    assert "15 minutes" in html
    assert not is_signed_in(client)


def test_the_owner_still_signs_in_from_another_address_while_a_guesser_is_locked(client, alice):
    for _ in range(5):
        sign_in(client, alice.email, "guess", REMOTE_ADDR="198.51.100.1")
    assert sign_in(client, alice.email, PASSWORD, REMOTE_ADDR="198.51.100.1").status_code == 429

    response = sign_in(client, alice.email, PASSWORD, REMOTE_ADDR="203.0.113.9")

    assert response.status_code == 302
    assert is_signed_in(client)


def test_guesses_from_many_addresses_each_stop_below_their_own_limit(client, alice):
    for n in range(12):
        sign_in(client, alice.email, "guess", REMOTE_ADDR=f"198.51.100.{n + 1}")

    response = sign_in(client, alice.email, PASSWORD, REMOTE_ADDR="203.0.113.9")

    assert response.status_code == 302


def test_the_address_in_another_letter_case_is_the_same_count(client, alice):
    for n in range(5):
        sign_in(client, alice.email.upper() if n % 2 else alice.email, "guess")

    response = sign_in(client, "Alice@Example.Test", PASSWORD)

    assert response.status_code == 429


def test_one_address_trying_twenty_accounts_is_locked_for_that_address_only(client, alice):
    for n in range(settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS):
        sign_in(client, f"someone{n}@example.test", "guess", REMOTE_ADDR="192.0.2.7")

    refused = sign_in(client, alice.email, PASSWORD, REMOTE_ADDR="192.0.2.7")
    assert refused.status_code == 429
    assert LOCKED_TEXT in refused.content.decode()
    assert not is_signed_in(client)

    elsewhere = sign_in(client, alice.email, PASSWORD, REMOTE_ADDR="192.0.2.8")
    assert elsewhere.status_code == 302


def test_a_few_typos_from_one_classroom_address_lock_nobody_else(client, alice):
    for n in range(settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS - 1):
        sign_in(client, f"student{n}@example.test", "typo", REMOTE_ADDR="192.0.2.7")

    assert sign_in(client, alice.email, PASSWORD, REMOTE_ADDR="192.0.2.7").status_code == 302


def test_x_forwarded_for_is_not_believed_without_a_trusted_proxy(client, alice):
    for n in range(5):
        sign_in(
            client,
            alice.email,
            "guess",
            REMOTE_ADDR="192.0.2.7",
            HTTP_X_FORWARDED_FOR=f"198.51.100.{n + 1}",
        )

    assert sign_in(client, alice.email, PASSWORD, REMOTE_ADDR="192.0.2.7").status_code == 429


def test_a_successful_sign_in_clears_the_owners_failures_from_that_address(client, alice):
    for _ in range(4):
        sign_in(client, alice.email, "guess")
    assert sign_in(client, alice.email, PASSWORD).status_code == 302
    client.post(reverse("accounts:logout"))

    for _ in range(4):
        sign_in(client, alice.email, "guess")

    assert sign_in(client, alice.email, PASSWORD).status_code == 302


def test_signing_in_to_ones_own_account_does_not_wipe_the_counts_of_others(client, alice, sam):
    for _ in range(4):
        sign_in(client, sam.email, "guess", REMOTE_ADDR="192.0.2.7")
    assert sign_in(client, alice.email, PASSWORD, REMOTE_ADDR="192.0.2.7").status_code == 302
    client.post(reverse("accounts:logout"))

    fifth = sign_in(client, sam.email, "guess", REMOTE_ADDR="192.0.2.7")

    assert fifth.status_code == 429


def test_the_lock_lifts_after_fifteen_minutes(client, alice):
    with time_machine.travel(dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC), tick=False) as clock:
        for _ in range(5):
            sign_in(client, alice.email, "guess")
        clock.shift(dt.timedelta(minutes=14))
        assert LOCKED_TEXT in sign_in(client, alice.email, PASSWORD).content.decode()

        clock.shift(dt.timedelta(minutes=16))
        assert sign_in(client, alice.email, PASSWORD).status_code == 302


def test_failures_spread_over_more_than_fifteen_minutes_do_not_lock(client, alice):
    with time_machine.travel(dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC), tick=False) as clock:
        for _ in range(4):
            sign_in(client, alice.email, "guess")
        clock.shift(dt.timedelta(minutes=16))
        sign_in(client, alice.email, "guess")

        assert sign_in(client, alice.email, PASSWORD).status_code == 302


def test_the_admin_sign_in_is_throttled_too(client, sam):
    admin_login = reverse("admin:login")
    for _ in range(5):
        client.post(admin_login, {"username": sam.email, "password": "guess"})

    response = client.post(admin_login, {"username": sam.email, "password": PASSWORD})

    assert response.status_code == 429
    assert LOCKED_TEXT in response.content.decode()
    assert not is_signed_in(client)


def test_a_right_password_refused_by_the_admin_is_not_counted_as_a_guess(client, alice):
    admin_login = reverse("admin:login")
    for _ in range(6):
        client.post(admin_login, {"username": alice.email, "password": PASSWORD})

    assert sign_in(client, alice.email, PASSWORD).status_code == 302


def test_wrong_old_passwords_on_the_change_form_count_towards_the_lock(client, alice):
    client.force_login(alice)
    change_url = reverse("accounts:password_change")
    for _ in range(5):
        client.post(
            change_url,
            {"old_password": "guess", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        )

    response = client.post(
        change_url,
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    assert response.status_code == 429
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)


def test_failed_sign_ins_are_logged_without_the_password(client, alice):
    sign_in(client, alice.email, "guess-that-must-not-be-kept", REMOTE_ADDR="192.0.2.7")

    failure = AccessFailureLog.objects.get()
    assert failure.username == alice.email
    assert failure.ip_address == "192.0.2.7"
    attempt = AccessAttempt.objects.get()
    assert "guess-that-must-not-be-kept" not in attempt.post_data


# --- Passwords ----------------------------------------------------------------------------


def test_changing_the_password_keeps_you_signed_in_and_the_old_one_stops_working(client, alice):
    client.force_login(alice)
    change_url = reverse("accounts:password_change")
    assert client.get(change_url).status_code == 200

    response = client.post(
        change_url,
        {
            "old_password": PASSWORD,
            "new_password1": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
        },
    )

    assert response.status_code == 302
    assert response.url == reverse("accounts:password_change_done")
    assert client.get(response.url).status_code == 200
    assert is_signed_in(client)
    client.post(reverse("accounts:logout"))
    assert WRONG_TEXT in sign_in(client, alice.email, PASSWORD).content.decode()
    assert sign_in(client, alice.email, NEW_PASSWORD).status_code == 302


def test_changing_the_password_needs_the_old_one(client, alice):
    client.force_login(alice)

    response = client.post(
        reverse("accounts:password_change"),
        {"old_password": "wrong", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    assert response.status_code == 200
    assert "old password was entered incorrectly" in response.content.decode()


def test_the_password_change_page_needs_sign_in(client, db):
    response = client.get(reverse("accounts:password_change"))

    assert response.status_code == 302
    assert response.url.startswith(LOGIN_URL)


def _reset_link(body: str) -> str:
    match = re.search(r"https?://[^/\s]+(/accounts/password/reset/[^\s]+/)", body)
    assert match, body
    return match.group(1)


def test_a_password_reset_emails_a_link_that_sets_a_new_password(client, alice):
    response = client.post(reverse("accounts:password_reset"), {"email": "Alice@Example.test"})

    assert response.status_code == 302
    assert response.url == reverse("accounts:password_reset_done")
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [alice.email]
    assert "Lifecycle Review Board" in message.subject
    assert "\n" not in message.subject

    form_page = client.get(_reset_link(message.body), follow=True)
    assert form_page.status_code == 200
    assert "Choose a new password" in form_page.content.decode()
    set_url = form_page.redirect_chain[-1][0]

    done = client.post(set_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert done.status_code == 302
    assert done.url == reverse("accounts:password_reset_complete")

    assert sign_in(client, alice.email, NEW_PASSWORD).status_code == 302


def test_a_reset_link_works_only_once(client, alice):
    client.post(reverse("accounts:password_reset"), {"email": alice.email})
    link = _reset_link(mail.outbox[0].body)
    set_url = client.get(link, follow=True).redirect_chain[-1][0]
    client.post(set_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})

    again = client.get(link, follow=True)

    assert "This link no longer works" in again.content.decode()


def test_a_password_reset_for_an_unknown_address_sends_nothing_and_says_the_same(client, db):
    response = client.post(reverse("accounts:password_reset"), {"email": "nobody@example.test"})

    assert response.status_code == 302
    assert response.url == reverse("accounts:password_reset_done")
    assert mail.outbox == []


def test_a_completed_password_reset_lifts_the_lock_on_that_account(client, alice):
    for _ in range(5):
        sign_in(client, alice.email, "guess", REMOTE_ADDR="198.51.100.1")
    client.post(reverse("accounts:password_reset"), {"email": alice.email})
    set_url = client.get(_reset_link(mail.outbox[0].body), follow=True).redirect_chain[-1][0]
    client.post(set_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})

    response = sign_in(client, alice.email, NEW_PASSWORD, REMOTE_ADDR="198.51.100.1")

    assert response.status_code == 302


# --- Profile ------------------------------------------------------------------------------


def test_the_profile_needs_sign_in(client, db):
    profile_url = reverse("accounts:profile")

    response = client.get(profile_url)

    assert response.status_code == 302
    assert response.url == f"{LOGIN_URL}?next={profile_url}"


def test_the_profile_shows_what_the_person_said_about_themselves(client, alice):
    alice.affiliation = "Brown University"
    alice.save()
    client.force_login(alice)

    response = client.get(reverse("accounts:profile"))

    assert response.status_code == 200
    html = response.content.decode()
    assert "alice@example.test" in html
    assert 'value="Brown University"' in html


def test_saving_the_profile_stores_it_and_says_so(client, alice):
    client.force_login(alice)

    response = client.post(
        reverse("accounts:profile"),
        {
            "display_name": "  Dr Alice Liddell ",
            "affiliation": "Brown University",
            "expertise": "Paediatric oncology",
        },
        follow=True,
    )

    assert response.redirect_chain == [(reverse("accounts:profile"), 302)]
    assert "Your profile has been saved." in response.content.decode()
    alice.refresh_from_db()
    assert alice.display_name == "Dr Alice Liddell"
    assert alice.affiliation == "Brown University"
    assert alice.expertise == "Paediatric oncology"


def test_an_invalid_profile_is_not_saved_and_the_navbar_keeps_the_old_name(client, alice):
    client.force_login(alice)

    response = client.post(
        reverse("accounts:profile"),
        {"display_name": "x" * 151, "affiliation": "", "expertise": ""},
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert "Ensure this value has at most 150 characters" in html
    assert ">Alice</a>" in html
    alice.refresh_from_db()
    assert alice.display_name == "Alice"


def test_the_profile_refuses_other_http_methods(client, alice):
    client.force_login(alice)

    assert client.put(reverse("accounts:profile")).status_code == 405
    assert client.delete(reverse("accounts:profile")).status_code == 405


# --- CSRF and error pages -----------------------------------------------------------------


def test_signing_in_without_a_csrf_token_is_refused_with_a_friendly_page(alice):
    csrf_client = Client(enforce_csrf_checks=True)

    response = sign_in(csrf_client, alice.email, PASSWORD)

    assert response.status_code == 403
    html = response.content.decode()
    assert "That form had expired" in html
    assert "Lifecycle Review Board" in html
    assert not is_signed_in(csrf_client)


def test_signing_in_with_the_csrf_token_of_the_form_works(alice):
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.get(LOGIN_URL)
    token = csrf_client.cookies[settings.CSRF_COOKIE_NAME].value

    response = csrf_client.post(
        f"{LOGIN_URL}?next=/accounts/profile/",
        {"username": alice.email, "password": PASSWORD, "csrfmiddlewaretoken": token},
    )

    assert response.status_code == 302


def test_a_missing_page_is_a_404_in_the_site_style(client, db):
    assert settings.DEBUG is False

    response = client.get("/no-such-page/")

    assert response.status_code == 404
    html = response.content.decode()
    assert "Page not found" in html
    assert "Lifecycle Review Board" in html
    assert "vendor/bootstrap/css/bootstrap.min.css" in html


def test_the_500_page_renders_without_any_context():
    html = get_template("500.html").render()
    assert "Something went wrong" in html

    response = server_error(RequestFactory().get("/"))
    assert response.status_code == 500
    assert b"Lifecycle Review Board" in response.content


def test_healthz_answers_ok_in_plain_text(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.content == b"ok"
    assert response["Content-Type"].startswith("text/plain")
    assert client.post("/healthz").status_code == 405


# --- Admin --------------------------------------------------------------------------------


@pytest.fixture
def audit_event(alice) -> AuditEvent:
    with transaction.atomic():
        return audit_record(actor=alice, verb="user.profile_seen", obj=alice, new={"a": 1})


def test_the_audit_log_is_listed_in_the_admin(client, sam, audit_event):
    client.force_login(sam)

    response = client.get(reverse("admin:lifecycle_auditevent_changelist"))

    assert response.status_code == 200
    html = response.content.decode()
    assert "user.profile_seen" in html
    assert 'name="action"' not in html  # no bulk actions, not even delete_selected


def test_the_audit_log_cannot_be_added_changed_or_deleted_in_the_admin(client, sam, audit_event):
    client.force_login(sam)
    change_url = reverse("admin:lifecycle_auditevent_change", args=[audit_event.pk])

    assert client.get(reverse("admin:lifecycle_auditevent_add")).status_code == 403
    change_page = client.get(change_url)
    assert change_page.status_code == 200
    assert 'name="_save"' not in change_page.content.decode()
    assert client.post(change_url, {"verb": "tampered"}).status_code == 403
    delete_url = reverse("admin:lifecycle_auditevent_delete", args=[audit_event.pk])
    assert client.get(delete_url).status_code == 403
    assert client.post(delete_url, {"post": "yes"}).status_code == 403
    audit_event.refresh_from_db()
    assert audit_event.verb == "user.profile_seen"


def test_the_admin_shows_every_lifecycle_model_and_writes_only_the_editable_ones(
    client, sam, personas
):
    client.force_login(sam)
    view_only = ["project", "projectstage", "stagerevision", "stakeholder", "auditevent"]
    editable = ["course", "membership", "lifecycletemplate", "stagedefinition", "question"]

    for model in view_only + editable:
        assert client.get(reverse(f"admin:lifecycle_{model}_changelist")).status_code == 200
    for model in view_only:
        assert client.get(reverse(f"admin:lifecycle_{model}_add")).status_code == 403, model
    for model in ("course", "membership"):
        assert client.get(reverse(f"admin:lifecycle_{model}_add")).status_code == 200, model

    project_page = client.get(reverse("admin:lifecycle_project_change", args=[personas.project.pk]))
    assert project_page.status_code == 200
    assert 'name="_save"' not in project_page.content.decode()


def test_a_template_version_that_projects_use_is_read_only_in_the_admin(client, sam, personas):
    client.force_login(sam)
    template = personas.project.template

    page = client.get(reverse("admin:lifecycle_lifecycletemplate_change", args=[template.pk]))

    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert "read-only" in page.content.decode()


def test_the_admin_refuses_non_staff(client, alice):
    client.force_login(alice)

    response = client.get(reverse("admin:lifecycle_auditevent_changelist"))

    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


def test_adding_a_user_in_the_admin_stores_the_address_in_lower_case(client, sam, alice):
    client.force_login(sam)
    add_url = reverse("admin:accounts_user_add")
    data = {"usable_password": "true", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}

    duplicate = client.post(add_url, {**data, "email": "ALICE@example.test"})
    assert duplicate.status_code == 200
    assert "already exists" in duplicate.content.decode()

    created = client.post(add_url, {**data, "email": "Erin.Chen@Example.TEST"})
    assert created.status_code == 302
    assert User.objects.filter(email="erin.chen@example.test").exists()


def test_users_are_searchable_in_the_admin(client, sam, alice):
    client.force_login(sam)

    response = client.get(reverse("admin:accounts_user_changelist"), {"q": "Alice"})

    assert response.status_code == 200
    assert "alice@example.test" in response.content.decode()
