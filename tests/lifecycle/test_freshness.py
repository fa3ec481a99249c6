"""Pages' content cached by what it shows (lifecycle/freshness.py): a second look costs a few
queries, and whatever changes what a page shows, through any path that saves, deletes, records
an audit event or changes a team, shows at once; a person never sees another's fragment."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from factories import current_stage, fill_and_submit

from lifecycle import freshness, services
from lifecycle.models import Question, Stakeholder
from reviews import services as review_services

pytestmark = pytest.mark.django_db


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _get(client: Client, url: str) -> tuple[str, int]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode(), len(captured)


def _stage_url(personas: Any) -> str:
    return current_stage(personas.project).get_absolute_url()


def test_a_second_look_at_the_stage_page_is_read_from_the_cache(personas):
    client = _client(personas.alice)
    url = _stage_url(personas)
    client.get(url)  # sets the CSRF cookie: fragments are cached only once it is there
    _, first = _get(client, url)
    _, second = _get(client, url)
    _, third = _get(client, url)
    assert second == third
    # session, user, project, stage (the unread count is cached); the panels, threads,
    # register, revisions and questions are not read again
    assert second <= 4 < first


def test_the_overview_second_look_is_read_from_the_cache(personas):
    client = _client(personas.alice)
    url = personas.project.get_absolute_url()
    client.get(url)
    _, first = _get(client, url)
    _, second = _get(client, url)
    assert second <= 3 < first


@pytest.mark.parametrize("seconds", [0])
def test_turned_off_every_look_reads_everything(personas, settings, seconds):
    settings.FRAGMENT_CACHE_SECONDS = seconds
    client = _client(personas.alice)
    url = _stage_url(personas)
    client.get(url)
    _, first = _get(client, url)
    _, second = _get(client, url)
    assert first == second > 5


def test_a_new_stakeholder_shows_on_the_stage_page_at_once(personas):
    client = _client(personas.alice)
    url = _stage_url(personas)
    client.get(url)
    before, _ = _get(client, url)
    assert "Night-shift nurses" not in before
    services.stakeholder_add(
        project=personas.project,
        actor=personas.bob,
        name="Night-shift nurses",
        kind="direct_user",
        interests="Fewer pages",
        possible_harms="Missed referrals",
    )
    after, _ = _get(client, url)
    assert "Night-shift nurses" in after


def test_a_row_saved_without_a_service_shows_too(personas):
    """The signal path: a row saved directly (an admin, a shell) replaces the project's token."""
    client = _client(personas.alice)
    url = personas.project.get_absolute_url()
    client.get(url)
    before, _ = _get(client, url)
    assert '<span id="stakeholder-count">0</span>' in before
    Stakeholder.objects.create(project=personas.project, name="Porters", kind="direct_user")
    after, _ = _get(client, url)
    assert '<span id="stakeholder-count">1</span>' in after


def test_a_reviewers_comment_shows_on_the_teams_stage_page(personas):
    stage = current_stage(personas.project)
    revision = fill_and_submit(stage, personas.alice)
    client = _client(personas.alice)
    url = stage.get_absolute_url()
    client.get(url)
    before, _ = _get(client, url)
    review_services.comment_add(
        revision=revision, author=personas.tina, body="Which referrals are urgent?"
    )
    after, _ = _get(client, url)
    assert "Which referrals are urgent?" not in before
    assert "Which referrals are urgent?" in after


def test_a_new_teammate_shows_on_the_overview(personas):
    client = _client(personas.alice)
    url = personas.project.get_absolute_url()
    client.get(url)
    before, _ = _get(client, url)
    assert "Carol" not in before
    personas.project.members.add(personas.carol)
    after, _ = _get(client, url)
    assert "Carol" in after


def test_a_question_reworded_in_the_template_shows_everywhere(personas):
    client = _client(personas.alice)
    url = _stage_url(personas)
    client.get(url)
    _get(client, url)
    question = Question.objects.filter(stage=current_stage(personas.project).definition).first()
    question.prompt = "Who exactly is harmed when the triage is wrong?"
    question.save()
    after, _ = _get(client, url)
    assert "Who exactly is harmed when the triage is wrong?" in after


def test_each_person_sees_their_own_page(personas):
    """The team member's page has the form's buttons; the TA's the same URL without them."""
    url = _stage_url(personas)
    alice, tina = _client(personas.alice), _client(personas.tina)
    for client in (alice, tina):
        client.get(url)
    mine, _ = _get(alice, url)
    theirs, _ = _get(tina, url)
    assert "Save draft" in mine
    assert "Save draft" not in theirs
    mine_again, _ = _get(alice, url)
    assert "Save draft" in mine_again


def test_a_first_visit_is_not_cached_and_gets_its_csrf_cookie(personas):
    """Without a CSRF cookie yet, the page is rendered (its form's token is for the cookie this
    response sets) and nothing is stored for the next first visit."""
    url = _stage_url(personas)
    first = _client(personas.alice)
    response = first.get(url)
    assert "csrftoken" in response.cookies
    second = _client(personas.alice)
    response = second.get(url)
    assert "csrftoken" in response.cookies


def test_the_csrf_secret_is_part_of_the_key(personas):
    """After a new sign-in (a new CSRF secret) the form's token is one the new cookie accepts."""
    url = _stage_url(personas)
    client = Client(enforce_csrf_checks=True)
    client.force_login(personas.alice)
    client.get(url)
    _get(client, url)
    client.cookies.pop("csrftoken")
    client.get(url)  # a new secret
    page, _ = _get(client, url)
    token = page.split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]
    stage = current_stage(personas.project)
    response = client.post(
        url, {"csrfmiddlewaretoken": token, "draft_version": stage.draft_version, "save": "1"}
    )
    assert response.status_code != 403


def test_touch_replaces_the_token_now_and_after_the_commit(
    personas, django_capture_on_commit_callbacks
):
    ids = {"project_ids": [personas.project.pk]}
    before = freshness.tokens(**ids)
    assert freshness.tokens(**ids) == before
    with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
        freshness.touch(**ids)
        inside = freshness.tokens(**ids)
        assert inside != before
    assert callbacks
    assert freshness.tokens(**ids) not in (before, inside)


def test_an_evicted_token_is_made_anew(personas):
    from django.core.cache import cache

    ids = {"course_ids": [personas.course.pk]}
    before = freshness.tokens(**ids)
    cache.delete(f"lrbv:c:{personas.course.pk}")
    assert freshness.tokens(**ids) != before


def test_owners_follow_a_comment_to_its_project(personas):
    stage = current_stage(personas.project)
    revision = fill_and_submit(stage, personas.alice)
    comment = review_services.comment_add(revision=revision, author=personas.tina, body="Why?")
    assert freshness.owners(comment) == (personas.project.pk, None)
    assert freshness.owners(personas.project) == (personas.project.pk, personas.course.pk)
    assert freshness.owners(personas.course) == (None, personas.course.pk)


# --- the home page ----------------------------------------------------------------------------


def _home(client: Client) -> tuple[str, int]:
    from django.urls import reverse

    return _get(client, reverse("home"))


def test_a_students_home_is_read_from_the_cache_on_a_second_look(personas):
    client = _client(personas.alice)
    _home(client)
    _, first = _home(client)
    _, second = _home(client)
    # session, user, their courses and projects (one query)
    assert second <= 3 < first


def test_a_thread_on_the_students_project_shows_on_their_home_at_once(personas):
    revision = fill_and_submit(current_stage(personas.project), personas.alice)
    client = _client(personas.alice)
    _home(client)
    before, _ = _home(client)
    review_services.comment_add(
        revision=revision, author=personas.tina, body="Which clinics send referrals?"
    )
    after, _ = _home(client)
    assert "Which clinics send referrals?" not in before
    assert "Which clinics send referrals?" in after


def test_a_course_joined_shows_on_the_home_at_once(personas):
    from factories import CourseFactory, enrol

    client = _client(personas.alice)
    _home(client)
    _home(client)
    other = CourseFactory(title="Robust vision")
    enrol(other, personas.alice)
    after, _ = _home(client)
    assert "Robust vision" in after


def test_course_staff_and_reviewers_get_their_home_rendered(personas):
    """Their panel lists stages of projects they are not on: never cached by their own."""
    for user in (personas.ian, personas.tina):
        client = _client(user)
        _home(client)
        _, first = _home(client)
        _, second = _home(client)
        assert first == second > 5


def test_an_audit_event_replaces_its_project_and_course_tokens(personas):
    """Every action of a service records one: whatever it changed shows at once."""
    from lifecycle.audit import audit_record

    p = personas
    project_before = freshness.tokens(project_ids=[p.project.pk])
    course_before = freshness.tokens(course_ids=[p.course.pk])
    other_before = freshness.tokens(project_ids=[p.other_project.pk])
    with transaction.atomic():
        audit_record(actor=p.ian, verb="test.touched", obj=p.project, project=p.project)
    assert freshness.tokens(project_ids=[p.project.pk]) != project_before
    assert freshness.tokens(course_ids=[p.course.pk]) != course_before
    assert freshness.tokens(project_ids=[p.other_project.pk]) == other_before
