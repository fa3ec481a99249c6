"""Issue 10, defect 7: sign-up is verified by e-mail before an account joins a course or
reviews, limited per client address and per join code, and join codes rotate and expire."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import time_machine
from django.core import mail
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone
from factories import CourseFactory, UserFactory, enrol

from accounts import services
from accounts.models import User
from lifecycle import services as lifecycle_services
from lifecycle.errors import IllegalTransition, NotAllowed
from lifecycle.models import AuditEvent, Membership, Role

pytestmark = pytest.mark.django_db

SIGNUP_URL = reverse("accounts:signup")
JOIN_URL = reverse("lifecycle:course_join")
PASSWORD = "a-long-and-unusual-passphrase-77"


def form_data(n: int = 0, **overrides: str) -> dict[str, str]:
    return {
        "email": f"student{n}@example.test",
        "display_name": f"Student {n}",
        "password1": PASSWORD,
        "password2": PASSWORD,
        "code": "",
        **overrides,
    }


def sign_up(client: Client, captured, **data: str):
    with captured(execute=True):
        return client.post(SIGNUP_URL, data)


def verification_link() -> str:
    [message] = [m for m in mail.outbox if "Verify your e-mail" in m.subject]
    found = re.search(r"https?://[^/\s]+(/accounts/verify/[^/\s]+/)", message.body)
    assert found, message.body
    return found.group(1)


# --- verification ---------------------------------------------------------------------------


def test_a_new_account_is_unverified_signed_in_and_sent_a_link_through_the_mail(
    client, django_capture_on_commit_callbacks
):
    response = sign_up(client, django_capture_on_commit_callbacks, **form_data())
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:verify_email_pending")
    user = User.objects.get()
    assert user.email_verified_at is None
    [message] = mail.outbox
    assert message.to == [user.email]
    assert "/accounts/verify/" in message.body
    assert "Verify my e-mail address" in message.alternatives[0][0]
    home = client.get(reverse("home")).content.decode()
    assert 'id="verify-email-banner"' in home


def test_an_unverified_account_cannot_join_a_course_by_code(
    client, django_capture_on_commit_callbacks
):
    course = CourseFactory()
    sign_up(client, django_capture_on_commit_callbacks, **form_data())
    response = client.post(JOIN_URL, {"code": course.join_code})
    assert response.status_code == 400
    assert "Verify your e-mail address before you join a course" in response.content.decode()
    assert not Membership.objects.filter(course=course).exists()
    with pytest.raises(IllegalTransition):
        lifecycle_services.course_join(user=User.objects.get(), join_code=course.join_code)


def test_following_the_link_verifies_the_address_and_then_the_code_works(
    client, django_capture_on_commit_callbacks
):
    course = CourseFactory()
    sign_up(client, django_capture_on_commit_callbacks, **form_data())
    response = client.get(verification_link())
    assert response.status_code == 302
    user = User.objects.get()
    assert user.email_verified_at is not None
    assert 'id="verify-email-banner"' not in client.get(reverse("home")).content.decode()
    assert client.post(JOIN_URL, {"code": course.join_code}).status_code == 302
    assert Membership.objects.filter(course=course, user=user, role=Role.STUDENT).exists()


def test_a_join_code_given_at_sign_up_is_used_when_the_address_is_verified(
    client, django_capture_on_commit_callbacks
):
    course = CourseFactory()
    sign_up(client, django_capture_on_commit_callbacks, **form_data(code=course.join_code))
    user = User.objects.get()
    assert not Membership.objects.filter(user=user).exists()
    response = Client().get(verification_link())  # opened in another browser: still works
    assert response.status_code == 302
    assert Membership.objects.filter(course=course, user=user).exists()


def test_a_verification_link_expires(client, django_capture_on_commit_callbacks):
    sign_up(client, django_capture_on_commit_callbacks, **form_data())
    url = verification_link()
    with time_machine.travel(timezone.now() + dt.timedelta(days=4)):
        response = client.get(url)
    assert response.status_code == 400
    assert "expired" in response.content.decode()
    assert User.objects.get().email_verified_at is None


def test_a_tampered_link_or_one_for_a_changed_address_does_not_verify(
    client, django_capture_on_commit_callbacks
):
    sign_up(client, django_capture_on_commit_callbacks, **form_data())
    url = verification_link()
    assert client.get(url[:-6] + "AAAAA/").status_code == 400
    User.objects.update(email="other@example.test")
    assert client.get(url).status_code == 400
    assert User.objects.get().email_verified_at is None


def test_another_link_is_sent_at_most_once_a_minute(client, django_capture_on_commit_callbacks):
    sign_up(client, django_capture_on_commit_callbacks, **form_data())
    mail.outbox.clear()
    url = reverse("accounts:verify_email_pending")
    assert client.get(url).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url)  # the sign-up's own e-mail went out within the minute
    assert mail.outbox == []
    with (
        time_machine.travel(timezone.now() + dt.timedelta(minutes=2)),
        django_capture_on_commit_callbacks(execute=True),
    ):
        services.email_verification_send(user=User.objects.get())
    assert len(mail.outbox) == 1


def test_factories_make_verified_accounts_and_an_unverified_one_can_be_asked_for():
    assert UserFactory().email_verified_at is not None
    assert UserFactory(email_verified_at=None).email_verified_at is None


def test_an_unverified_account_cannot_join_through_an_invitation_e_mail_link():
    course = CourseFactory()
    user = UserFactory(email_verified_at=None)
    with pytest.raises(IllegalTransition, match="Verify your e-mail"):
        lifecycle_services.course_join(user=user, join_code=course.join_code)


# --- limits ---------------------------------------------------------------------------------


@override_settings(SIGNUP_LIMIT_PER_ADDRESS=3)
def test_sign_up_is_limited_per_client_address(django_capture_on_commit_callbacks):
    for n in range(3):
        response = sign_up(
            Client(REMOTE_ADDR="203.0.113.7"), django_capture_on_commit_callbacks, **form_data(n)
        )
        assert response.status_code == 302
    refused = sign_up(
        Client(REMOTE_ADDR="203.0.113.7"), django_capture_on_commit_callbacks, **form_data(3)
    )
    assert refused.status_code == 400
    assert "Too many accounts were created from your network" in refused.content.decode()
    assert User.objects.count() == 3
    other = sign_up(
        Client(REMOTE_ADDR="198.51.100.2"), django_capture_on_commit_callbacks, **form_data(4)
    )
    assert other.status_code == 302


@override_settings(SIGNUP_LIMIT_PER_CODE=2)
def test_sign_up_is_limited_per_join_code(django_capture_on_commit_callbacks):
    course = CourseFactory()
    for n in range(2):
        client = Client(REMOTE_ADDR=f"203.0.113.{n + 1}")
        response = sign_up(
            client, django_capture_on_commit_callbacks, **form_data(n, code=course.join_code)
        )
        assert response.status_code == 302
    refused = sign_up(
        Client(REMOTE_ADDR="203.0.113.9"),
        django_capture_on_commit_callbacks,
        **form_data(9, code=course.join_code),
    )
    assert refused.status_code == 400
    assert "Too many accounts were created with this join code" in refused.content.decode()
    assert User.objects.count() == 2


def test_the_limit_counts_in_the_shared_cache_with_atomic_increments():
    from django.core.cache import cache

    with override_settings(SIGNUP_LIMIT_PER_ADDRESS=1):
        services.sign_up_take_place(ip="192.0.2.1")
        assert cache.get("signup:ip:192.0.2.1") == 1
        with pytest.raises(services.SignUpLimited):
            services.sign_up_take_place(ip="192.0.2.1")


# --- join codes: expiry, rotation, recent joins -------------------------------------------


def test_an_expired_join_code_is_a_clear_form_error(client, django_capture_on_commit_callbacks):
    course = CourseFactory(join_code_expires_on=timezone.localdate() - dt.timedelta(days=1))
    student = UserFactory()
    client.force_login(student)
    response = client.post(JOIN_URL, {"code": course.join_code})
    assert response.status_code == 400
    assert "This join code expired on" in response.content.decode()
    signup = sign_up(
        Client(), django_capture_on_commit_callbacks, **form_data(code=course.join_code)
    )
    assert signup.status_code == 400
    assert "This join code expired on" in signup.content.decode()
    assert not User.objects.filter(email="student0@example.test").exists()


def test_a_join_code_works_through_its_last_day():
    course = CourseFactory(join_code_expires_on=timezone.localdate())
    lifecycle_services.course_join(user=UserFactory(), join_code=course.join_code)


def test_the_instructor_sets_the_expiry_on_the_settings_page():
    course = CourseFactory()
    ian = UserFactory()
    enrol(course, ian, Role.INSTRUCTOR)
    client = Client()
    client.force_login(ian)
    response = client.post(
        reverse("reviews:course_settings", args=[course.pk]),
        {
            "allows_experts": "on",
            "expert_invitations": "allowed",
            "team_experts_need_confirmation": "on",
            "invitation_expiry_days": 14,
            "reminder_interval_days": 3,
            "reminder_limit": 2,
            "join_code_expires_on": "2027-01-15",
        },
    )
    assert response.status_code == 302
    course.refresh_from_db()
    assert course.join_code_expires_on == dt.date(2027, 1, 15)


def test_staff_rotate_the_join_code_and_the_old_one_stops_working():
    course = CourseFactory()
    tina, alice, newcomer = UserFactory(), UserFactory(), UserFactory()
    enrol(course, tina, Role.TA)
    enrol(course, alice, Role.STUDENT)
    old = course.join_code
    url = reverse("lifecycle:join_code_rotate", args=[course.pk])
    student = Client()
    student.force_login(alice)
    assert student.post(url).status_code == 404
    staff = Client()
    staff.force_login(tina)
    assert staff.get(url).status_code == 405
    assert staff.post(url).status_code == 302
    course.refresh_from_db()
    assert course.join_code != old
    with pytest.raises(IllegalTransition, match="No course has that join code"):
        lifecycle_services.course_join(user=newcomer, join_code=old)
    lifecycle_services.course_join(user=newcomer, join_code=course.join_code)
    event = AuditEvent.objects.get(verb="course.join_code_rotate")
    assert event.old == {"join_code": old} and course.join_code not in str(event.new)
    with pytest.raises(NotAllowed):
        lifecycle_services.course_rotate_join_code(course=course, actor=alice)


def test_the_settings_page_lists_recent_joins_with_time_and_address():
    course = CourseFactory()
    ian = UserFactory()
    enrol(course, ian, Role.INSTRUCTOR)
    for n in range(3):
        lifecycle_services.course_join(
            user=UserFactory(email=f"joiner{n}@example.test"), join_code=course.join_code
        )
    client = Client()
    client.force_login(ian)
    html = client.get(reverse("reviews:course_settings", args=[course.pk])).content.decode()
    rows = re.findall(r'<tr class="recent-join"><td>([^<]+)</td><td>([^<]+)</td>', html)
    assert [email for _, email in rows] == [f"joiner{n}@example.test" for n in (2, 1, 0)]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", when) for when, _ in rows)
