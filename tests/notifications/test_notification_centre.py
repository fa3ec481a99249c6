"""The in-app notification centre: the navbar's unread count, the list, marking read, the
staff's view of failed e-mails, and the e-mail preference on the profile page.

Personas (tests/conftest.py): Alice and Bob are the team of ``personas.project``; Carol is a
student on another team; Tina a TA, Ian the instructor; Erin an outside expert; Oscar an outsider.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from factories import CourseFactory, UserFactory, current_stage, enrol, fill_and_submit

from accounts.models import EmailFrequency, User
from lifecycle import services as lifecycle_services
from lifecycle.models import Role
from notifications.context_processors import unread_count
from notifications.models import EmailStatus, Notification, NotificationKind
from notifications.services import notification_mark_read

pytestmark = pytest.mark.django_db

LIST_URL = reverse("notifications:list")
READ_ALL_URL = reverse("notifications:read_all")


def read_url(notification: Notification) -> str:
    return reverse("notifications:read", args=[notification.pk])


def client_for(user: User | None = None, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    if user is not None:
        client.force_login(user)
    return client


def make(
    user: User,
    count: int,
    *,
    read: bool = False,
    project: Any = None,
    status: str = EmailStatus.SENT,
    start: dt.datetime | None = None,
) -> list[Notification]:
    """``count`` notifications for ``user``, one minute apart, the last the newest; links are
    absolute on a host other than the test server's, as SITE_URL makes them."""
    start = start or timezone.now() - dt.timedelta(days=1)
    tag = Notification.objects.count()
    return Notification.objects.bulk_create(
        [
            Notification(
                recipient=user,
                email=user.email,
                kind=NotificationKind.CHANGES_REQUESTED,
                project=project,
                subject=f"Update {tag + i} for {user.name}",
                body="Revise the answers and submit again.",
                link=f"https://board.example.edu/projects/{tag + i}/stages/1/?tab=review#q2",
                dedupe_key=f"test:{tag + i}:u{user.pk}",
                created_at=start + dt.timedelta(minutes=i),
                read_at=timezone.now() if read else None,
                email_status=status,
                email_attempts=5 if status == EmailStatus.FAILED else 1,
                email_error="SMTPRecipientsRefused: 550 no such user"
                if status == EmailStatus.FAILED
                else "",
            )
            for i in range(count)
        ]
    )


def unread_badge(html: str) -> str | None:
    found = re.search(r'id="unread-count">([^<]*)<', html)
    return found.group(1) if found else None


def notification_queries(captured: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if "reviews_notification" in q["sql"]]


# --- the navbar ----------------------------------------------------------------------------


def test_the_navbar_shows_the_unread_count_of_the_signed_in_person(personas):
    p = personas
    make(p.alice, 3)
    make(p.alice, 2, read=True)
    make(p.bob, 4)

    html = client_for(p.alice).get(reverse("accounts:profile")).content.decode()

    assert unread_badge(html) == "3"
    assert f'href="{LIST_URL}"' in html
    assert unread_badge(client_for(p.bob).get(reverse("home")).content.decode()) == "4"
    assert unread_badge(client_for(p.oscar).get(reverse("home")).content.decode()) is None


def test_the_navbar_count_is_one_count_query_and_none_for_anonymous_visitors(personas, client):
    make(personas.alice, 120)

    with CaptureQueriesContext(connection) as signed_in:
        html = client_for(personas.alice).get(reverse("home")).content.decode()
    with CaptureQueriesContext(connection) as anonymous:
        login_page = client.get(reverse("accounts:login")).content.decode()

    assert unread_badge(html) == "99+"
    [query] = notification_queries(signed_in)
    assert query.lstrip().upper().startswith("SELECT COUNT(")
    assert notification_queries(anonymous) == []
    assert "nav-notifications" not in login_page


def test_the_count_is_cached_per_person_and_follows_every_change_at_once(personas):
    """A second page reads the count from the cache; a notification stored, one marked read,
    all marked read and a row saved directly each show on the next page."""
    from notifications.services import notifications_mark_all_read, notify

    p = personas
    client = client_for(p.alice)
    assert unread_badge(client.get(reverse("home")).content.decode()) is None
    with CaptureQueriesContext(connection) as again:
        client.get(reverse("home"))
    assert notification_queries(again) == []

    notify(
        recipients=[p.alice, p.bob],
        kind=NotificationKind.CHANGES_REQUESTED,
        key="cache-test",
        subject="Revise",
        body="Please revise.",
        link="https://board.example.edu/",
    )
    assert unread_badge(client.get(reverse("home")).content.decode()) == "1"
    [row] = Notification.objects.filter(recipient=p.alice)
    notification_mark_read(user=p.alice, notification=row)
    assert unread_badge(client.get(reverse("home")).content.decode()) is None
    Notification.objects.filter(pk=row.pk).update(read_at=None)  # no service: not seen ...
    row.refresh_from_db()
    row.save()  # ... until the row is saved
    assert unread_badge(client.get(reverse("home")).content.decode()) == "1"
    notifications_mark_all_read(user=p.alice)
    assert unread_badge(client.get(reverse("home")).content.decode()) is None
    assert unread_count(p.bob) == 1


def test_the_count_for_an_anonymous_visitor_runs_no_query(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert unread_count(AnonymousUser()) == 0


# --- the list ------------------------------------------------------------------------------


def test_the_list_shows_only_ones_own_notifications_newest_first_unread_highlighted(personas):
    p = personas
    older_read = make(p.alice, 2, read=True, start=timezone.now() - dt.timedelta(days=2))
    newer_unread = make(p.alice, 2)
    bobs = make(p.bob, 1)

    response = client_for(p.alice).get(LIST_URL)

    assert response.status_code == 200
    html = response.content.decode()
    shown = [int(pk) for pk in re.findall(r'data-notification="(\d+)"', html)]
    assert shown == [n.pk for n in [*reversed(newer_unread), *reversed(older_read)]]
    assert bobs[0].subject not in html
    unread_items = re.findall(
        r'<li class="[^"]*notification-unread[^"]*" data-notification="(\d+)"', html
    )
    assert [int(pk) for pk in unread_items] == [n.pk for n in reversed(newer_unread)]
    assert 'id="read-all-form"' in html
    # Nobody here is course staff: no failed e-mails section.
    assert "E-mails that could not be sent" not in html


def test_the_list_is_paginated_by_fifty(personas):
    notifications = make(personas.alice, 55)
    client = client_for(personas.alice)

    first = client.get(LIST_URL).content.decode()
    second = client.get(LIST_URL, {"page": 2}).content.decode()

    assert len(re.findall(r'data-notification="\d+"', first)) == 50
    assert f'data-notification="{notifications[-1].pk}"' in first
    assert len(re.findall(r'data-notification="\d+"', second)) == 5
    assert f'data-notification="{notifications[0].pk}"' in second
    assert "Page 2 of 2" in second


def test_each_notification_links_to_the_path_of_its_stored_link_on_any_host(personas):
    [read] = make(personas.alice, 1, read=True)
    [unread] = make(personas.alice, 1)

    html = client_for(personas.alice).get(LIST_URL).content.decode()

    # Stored as https://board.example.edu/projects/…; shown as the path, query and fragment.
    assert f'href="{read.link.removeprefix("https://board.example.edu")}"' in html
    assert "board.example.edu" not in html
    # An unread one opens through "mark read", which redirects to the same path.
    assert f'action="{read_url(unread)}"' in html
    assert f'data-href="{unread.link.removeprefix("https://board.example.edu")}"' in html


def test_an_outsider_sees_an_empty_list(personas):
    make(personas.alice, 3)

    response = client_for(personas.oscar).get(LIST_URL)

    assert response.status_code == 200
    assert 'id="no-notifications"' in response.content.decode()
    assert "data-notification=" not in response.content.decode()


# --- marking read --------------------------------------------------------------------------


def test_opening_a_notification_marks_it_read_and_goes_to_its_page(personas):
    [notification, other] = make(personas.alice, 2)

    response = client_for(personas.alice).post(read_url(notification))

    assert response.status_code == 302
    assert response.url == notification.link.removeprefix("https://board.example.edu")
    assert response.url.endswith("/stages/1/?tab=review#q2")
    notification.refresh_from_db()
    assert notification.read_at is not None
    assert Notification.objects.get(pk=other.pk).read_at is None


def test_opening_a_notification_again_keeps_the_first_reading_time(personas):
    [notification] = make(personas.alice, 1)
    client = client_for(personas.alice)
    client.post(read_url(notification))
    notification.refresh_from_db()
    first = notification.read_at

    assert client.post(read_url(notification)).status_code == 302

    notification.refresh_from_db()
    assert notification.read_at == first


def test_a_link_that_is_not_a_local_path_sends_the_reader_to_the_list(personas):
    [notification] = make(personas.alice, 1)
    Notification.objects.filter(pk=notification.pk).update(
        link="https://board.example.edu//evil.test/x"
    )

    response = client_for(personas.alice).post(read_url(notification))

    assert response.url == LIST_URL


@pytest.mark.parametrize("who", ["bob", "carol", "tina", "ian", "erin", "oscar"])
def test_someone_elses_notification_is_a_404_and_stays_unread(personas, who):
    [alices] = make(personas.alice, 1)

    response = client_for(getattr(personas, who)).post(read_url(alices))

    assert response.status_code == 404
    alices.refresh_from_db()
    assert alices.read_at is None


def test_the_mark_read_service_never_touches_someone_elses_notification(personas):
    [alices] = make(personas.alice, 1)

    assert notification_mark_read(user=personas.bob, notification=alices) is False
    assert notification_mark_read(user=personas.alice, notification=alices) is True

    alices.refresh_from_db()
    assert alices.read_at is not None


def test_marking_all_read_marks_only_ones_own(personas):
    make(personas.alice, 3)
    make(personas.bob, 2)

    response = client_for(personas.alice).post(READ_ALL_URL, follow=True)

    assert response.redirect_chain == [(LIST_URL, 302)]
    assert "Marked 3 notifications as read." in response.content.decode()
    assert not Notification.objects.filter(recipient=personas.alice, read_at__isnull=True).exists()
    assert Notification.objects.filter(recipient=personas.bob, read_at__isnull=True).count() == 2
    assert unread_badge(response.content.decode()) is None


def test_anonymous_visitors_are_sent_to_sign_in_and_change_nothing(personas, client):
    [notification] = make(personas.alice, 1)
    login = reverse("accounts:login")

    for response in (
        client.get(LIST_URL),
        client.post(read_url(notification)),
        client.post(READ_ALL_URL),
    ):
        assert response.status_code == 302
        assert response.url.startswith(f"{login}?next=")
    notification.refresh_from_db()
    assert notification.read_at is None


def test_the_wrong_http_method_is_refused(personas):
    [notification] = make(personas.alice, 1)
    client = client_for(personas.alice)

    assert client.get(read_url(notification)).status_code == 405
    assert client.get(READ_ALL_URL).status_code == 405
    assert client.post(LIST_URL).status_code == 405
    notification.refresh_from_db()
    assert notification.read_at is None


def test_marking_read_needs_the_csrf_token(personas):
    [notification] = make(personas.alice, 1)
    client = client_for(personas.alice, csrf=True)

    assert client.post(read_url(notification)).status_code == 403
    assert client.post(READ_ALL_URL).status_code == 403
    notification.refresh_from_db()
    assert notification.read_at is None

    html = client.get(LIST_URL).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    assert client.post(read_url(notification), {"csrfmiddlewaretoken": token}).status_code == 302
    assert client.post(READ_ALL_URL, {"csrfmiddlewaretoken": token}).status_code == 302
    notification.refresh_from_db()
    assert notification.read_at is not None


# --- failed e-mails for course staff -------------------------------------------------------


def test_course_staff_see_the_failed_e_mails_of_their_courses_projects_only(personas):
    p = personas
    [failed] = make(p.alice, 1, project=p.project, status=EmailStatus.FAILED)
    elsewhere = CourseFactory()
    stranger = UserFactory(display_name="Stranger")
    enrol(elsewhere, stranger, Role.STUDENT)
    far_project = lifecycle_services.project_create(
        course=elsewhere, actor=stranger, title="Elsewhere"
    )
    [far] = make(stranger, 1, project=far_project, status=EmailStatus.FAILED)
    make(p.bob, 1, project=p.project, status=EmailStatus.SENT)

    for staff in (p.tina, p.ian):
        html = client_for(staff).get(LIST_URL).content.decode()
        section = html.split('id="failed-emails"')[1]
        assert "E-mails that could not be sent" in html
        assert f'class="failed-email" data-notification="{failed.pk}"' in section
        assert "alice@example.test" in section
        assert failed.subject in section
        assert "SMTPRecipientsRefused: 550 no such user" in section
        assert f'data-notification="{far.pk}"' not in section
        assert section.count('class="failed-email"') == 1
    for student in (p.alice, p.carol, p.erin, p.oscar):
        html = client_for(student).get(LIST_URL).content.decode()
        assert 'id="failed-emails"' not in html


def test_course_staff_with_nothing_failed_are_told_so(personas):
    html = client_for(personas.tina).get(LIST_URL).content.decode()

    assert 'id="no-failed-emails"' in html


# --- query counts --------------------------------------------------------------------------


def list_queries(user: User) -> int:
    client = client_for(user)
    client.get(LIST_URL)  # the session is warm
    with CaptureQueriesContext(connection) as captured:
        assert client.get(LIST_URL).status_code == 200
    return len(captured)


def test_the_list_page_costs_the_same_queries_at_5_and_50_notifications(personas):
    make(personas.alice, 5, project=personas.project)
    make(personas.bob, 50, project=personas.project)

    assert list_queries(personas.alice) == list_queries(personas.bob)


def test_the_staff_list_page_costs_the_same_queries_at_5_and_50_failed_e_mails(personas):
    p = personas
    make(p.tina, 5, project=p.project)
    make(p.alice, 5, project=p.project, status=EmailStatus.FAILED)
    few = list_queries(p.tina)

    make(p.tina, 45, project=p.project)
    make(p.bob, 45, project=p.project, status=EmailStatus.FAILED)

    assert list_queries(p.tina) == few


# --- the e-mail preference -----------------------------------------------------------------


def test_the_profile_page_offers_immediate_e_mail_or_a_daily_digest(personas):
    html = client_for(personas.alice).get(reverse("accounts:profile")).content.decode()

    assert 'id="notification-preferences"' in html
    assert 'name="email_frequency" value="immediate"' in html
    assert re.search(r'value="immediate"[^>]*checked', html)
    assert 'name="email_frequency" value="daily"' in html
    assert "In-app notifications are always immediate" in html


def test_choosing_the_daily_digest_on_the_profile_page_holds_the_e_mails_for_it(personas):
    p = personas
    client = client_for(p.alice, csrf=True)
    page = client.get(reverse("accounts:profile")).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)

    response = client.post(
        reverse("accounts:profile"),
        {
            "csrfmiddlewaretoken": token,
            "display_name": "Alice",
            "affiliation": "",
            "expertise": "",
            "email_frequency": EmailFrequency.DAILY_DIGEST,
        },
    )

    assert response.status_code == 302
    p.alice.refresh_from_db()
    assert p.alice.email_frequency == EmailFrequency.DAILY_DIGEST
    assert re.search(
        r'value="daily"[^>]*checked',
        client.get(reverse("accounts:profile")).content.decode(),
    )
    revision = fill_and_submit(current_stage(p.project), p.alice)
    from reviews import services

    services.decision_record(
        revision=revision, reviewer=p.tina, outcome="request_changes", comment="More."
    )
    statuses = dict(
        Notification.objects.filter(kind=NotificationKind.CHANGES_REQUESTED).values_list(
            "recipient__email", "email_status"
        )
    )
    assert statuses == {p.alice.email: EmailStatus.DIGEST, p.bob.email: EmailStatus.PENDING}


def test_a_profile_form_without_the_preference_keeps_it(personas):
    p = personas
    User.objects.filter(pk=p.alice.pk).update(email_frequency=EmailFrequency.DAILY_DIGEST)

    client_for(p.alice).post(
        reverse("accounts:profile"), {"display_name": "Alice L", "affiliation": "", "expertise": ""}
    )

    p.alice.refresh_from_db()
    assert p.alice.display_name == "Alice L"
    assert p.alice.email_frequency == EmailFrequency.DAILY_DIGEST


def test_an_unknown_preference_is_refused(personas):
    response = client_for(personas.alice).post(
        reverse("accounts:profile"),
        {"display_name": "Alice", "affiliation": "", "expertise": "", "email_frequency": "hourly"},
    )

    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    personas.alice.refresh_from_db()
    assert personas.alice.email_frequency == EmailFrequency.IMMEDIATE


def test_notify_returns_the_pending_rows_of_its_keys_new_or_replayed(personas):
    """The ids to e-mail now: the new rows waiting for an e-mail (not the digest's), and on a
    replay the rows of the event's keys still waiting, however they were inserted."""
    from notifications.services import notify

    p = personas
    p.bob.email_frequency = EmailFrequency.DAILY_DIGEST
    p.bob.save(update_fields=["email_frequency"])

    def send(*recipients: User) -> list[int]:
        return notify(
            recipients=recipients,
            kind=NotificationKind.CHANGES_REQUESTED,
            key="ids-test",
            subject="Revise",
            body="Please revise.",
            link="https://board.example.edu/",
        )

    def alice_row() -> Notification:
        return Notification.objects.get(recipient=p.alice, dedupe_key__startswith="ids")

    assert send(p.alice, p.bob) == [alice_row().pk]
    assert Notification.objects.filter(dedupe_key__startswith="ids-test").count() == 2
    # A replay with one more person: Alice's row still waits, Carol's is new.
    ids = send(p.alice, p.bob, p.carol)
    carol = Notification.objects.get(recipient=p.carol, dedupe_key__startswith="ids")
    assert sorted(ids) == sorted([alice_row().pk, carol.pk])
    Notification.objects.filter(pk=alice_row().pk).update(email_status=EmailStatus.SENT)
    assert send(p.alice) == []
    assert Notification.objects.filter(dedupe_key__startswith="ids-test").count() == 3
