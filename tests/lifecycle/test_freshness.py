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


@pytest.mark.parametrize("seconds", [0, -1])
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


def _pending() -> set[str]:
    """The tokens the open transaction will replace when it commits."""
    replacement = freshness._replacement(transaction.get_connection())
    return replacement.keys if replacement is not None else set()


def _base(versions: str) -> str:
    return versions.split("+", 1)[0]  # without what the open transaction adds


def test_touches_of_one_transaction_replace_the_tokens_once_after_the_commit(personas):
    from django.core.cache import cache

    ids = {"project_ids": [personas.project.pk]}
    course = {"course_ids": [personas.course.pk]}
    before, course_before = freshness.tokens(**ids), freshness.tokens(**course)
    keys = [f"lrbv:p:{personas.project.pk}", f"lrbv:c:{personas.course.pk}"]
    connection = transaction.get_connection()
    writes = []
    set_many = cache.set_many

    def counted(*args, **kwargs):
        writes.append(args[0])
        return set_many(*args, **kwargs)

    cache.set_many = counted
    try:
        with transaction.atomic():
            freshness.touch(**ids)
            inside = freshness.tokens(**ids)
            assert inside != before  # the transaction's own reads have tokens of their own
            assert freshness.tokens(**ids) == inside
            freshness.touch(**ids, **course)
            assert freshness.tokens(**ids) != inside  # and every touch moves them on
            assert not writes  # nothing until the commit
            assert set(keys) <= _pending() and "lrbv:p:0" not in _pending()
            replacements = [
                func
                for _, func, _ in connection.run_on_commit
                if isinstance(func, freshness._Replacement)
            ]
            assert len(replacements) == 1 and set(keys) <= replacements[0].keys
            replacements[0]()  # what the commit runs
    finally:
        del cache.set_many
    assert len(writes) == 1 and set(keys) <= set(writes[0])
    assert _base(freshness.tokens(**ids)) != _base(before)
    assert _base(freshness.tokens(**course)) != _base(course_before)


def test_a_rolled_back_savepoint_takes_its_touches_with_it(db):
    key = "lrbv:p:1000000000"
    with transaction.atomic():
        try:
            with transaction.atomic():
                freshness.touch(project_ids=[1000000000])
                assert key in _pending()
                raise RuntimeError
        except RuntimeError:
            pass
        assert key not in _pending()


def test_the_commit_replaces_the_tokens(db, django_capture_on_commit_callbacks):
    ids = {"project_ids": [1000000000]}
    before = freshness.tokens(**ids)
    with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
        freshness.touch(**ids)
        freshness.touch(**ids, course_ids=[1000000000])
    assert len(callbacks) == 1 and not freshness.other_callbacks(callbacks)
    assert _base(freshness.tokens(**ids)) != _base(before)


def test_outside_a_transaction_touch_replaces_at_once(personas, monkeypatch):
    monkeypatch.setattr(transaction.get_connection(), "in_atomic_block", False)
    ids = {"project_ids": [personas.project.pk]}
    before = freshness.tokens(**ids)
    freshness.touch(**ids)
    assert freshness.tokens(**ids) != before


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


# --- the mechanism, case by case ----------------------------------------------------------------


def _fragment(request: Any, **ids: Any) -> tuple[str, list[int]]:
    """cached_fragment() twice for the same request; each render returns a new text."""
    renders: list[int] = []

    def render() -> str:
        renders.append(len(renders))
        return f"render {len(renders)}"

    freshness.cached_fragment(request, "test", render, **ids)
    return str(freshness.cached_fragment(request, "test", render, **ids)), renders


def _request(user: Any, method: str = "get", secret: str | None = "s" * 32) -> Any:
    from django.test import RequestFactory

    request = getattr(RequestFactory(), method)("/somewhere/")
    request.user = user
    if secret is not None:
        request.META["CSRF_COOKIE"] = secret
    return request


@pytest.mark.parametrize("seconds", [1, 120])
def test_a_get_with_a_csrf_secret_is_cached(personas, settings, seconds):
    settings.FRAGMENT_CACHE_SECONDS = seconds
    text, renders = _fragment(_request(personas.alice), project_ids=[personas.project.pk])
    assert text == "render 1" and len(renders) == 1


@pytest.mark.parametrize(
    "how",
    ["post", "head", "delete", "options", "no secret", "anonymous", "turned off", "negative"],
)
def test_what_is_never_cached(personas, settings, how):
    from django.contrib.auth.models import AnonymousUser

    user = AnonymousUser() if how == "anonymous" else personas.alice
    method = how if how in ("post", "head", "delete", "options") else "get"
    request = _request(user, method, secret=None if how == "no secret" else "s" * 32)
    settings.FRAGMENT_CACHE_SECONDS = {"turned off": 0, "negative": -1}.get(how, 120)
    text, renders = _fragment(request, project_ids=[personas.project.pk])
    assert text == "render 2" and len(renders) == 2


def test_a_token_another_process_made_meanwhile_is_the_one_used(personas, monkeypatch):
    """Two readers find no token: the second's add() fails and it takes the first's."""
    from django.core.cache import cache

    key = f"lrbv:p:{personas.project.pk}"
    cache.delete(key)
    get_many = cache.get_many

    def missing_then_made(keys, *args, **kwargs):
        found = get_many(keys, *args, **kwargs)
        found.pop(key, None)  # this reader saw no token...
        cache.set(key, "theirs", 60)  # ...and another process made one before its add()
        return found

    monkeypatch.setattr(cache, "get_many", missing_then_made)
    assert freshness.tokens(project_ids=[personas.project.pk]).startswith("theirs.")


def test_other_callbacks_are_the_ones_touch_did_not_add(db):
    def mail() -> None:
        pass

    replacement = freshness._Replacement()
    assert freshness.other_callbacks([mail, replacement]) == [mail]


def test_a_cache_that_fails_after_the_commit_does_not_fail_the_write(
    transactional_db, monkeypatch, caplog
):
    from django.core.cache import cache

    def broken(*args, **kwargs):
        raise ConnectionError("the cache is down")

    monkeypatch.setattr(cache, "set_many", broken)
    with transaction.atomic():
        freshness.touch(project_ids=[1000000000])
    assert "the cache is down" in caplog.text  # logged by Django's robust on_commit


def test_rows_of_other_apps_and_raw_saves_touch_nothing(personas, monkeypatch):
    touched = []
    monkeypatch.setattr(freshness, "touch", lambda **ids: touched.append(ids))
    freshness.row_changed(type(personas.alice), personas.alice)  # accounts: not on any page
    freshness.row_changed(type(personas.project), personas.project, raw=True)  # loaddata
    assert touched == []
    freshness.row_changed(type(personas.project), personas.project)
    assert touched == [{"project_ids": [personas.project.pk], "course_ids": [personas.course.pk]}]


def test_a_stage_saved_directly_replaces_its_projects_token(personas):
    """A row with a project and no course of its own (a stage) touches its project."""
    stage = current_stage(personas.project)
    before = freshness.tokens(project_ids=[personas.project.pk])
    stage.save(update_fields=["draft_answers"])
    assert freshness.tokens(project_ids=[personas.project.pk]) != before


@pytest.mark.parametrize("side", ["project", "user"])
def test_a_team_changed_without_a_service_replaces_the_projects_token(personas, side):
    before = freshness.tokens(project_ids=[personas.project.pk])
    if side == "project":
        personas.project.members.add(personas.oscar)
    else:
        personas.oscar.projects.add(personas.project)  # the reverse side: pk_set holds it
    assert freshness.tokens(project_ids=[personas.project.pk]) != before


def test_a_teams_pre_change_signal_touches_nothing(personas, monkeypatch):
    touched = []
    monkeypatch.setattr(freshness, "touch", lambda **ids: touched.append(ids))
    for action in ("pre_add", "pre_remove", "pre_clear"):
        freshness.team_changed(
            sender=None, instance=personas.project, action=action, reverse=False, pk_set={1}
        )
    assert touched == []


def test_owners_of_a_score_four_rows_away(personas):
    """A rubric score: its decision, revision and stage lead to the project."""
    from grading.models import CriterionScore
    from reviews.models import Decision

    revision = fill_and_submit(current_stage(personas.project), personas.alice)
    decision = Decision.objects.create(
        revision=revision, reviewer=personas.tina, role="staff", outcome="approve"
    )
    score = CriterionScore(decision=decision, criterion_key="data")
    assert freshness.owners(score) == (personas.project.pk, None)


def test_owners_skip_a_parent_that_is_not_set_and_follow_the_next(personas):
    from grading.models import StageGrade

    revision = fill_and_submit(current_stage(personas.project), personas.alice)
    grade = StageGrade(stage_id=None, revision=revision)
    assert freshness.owners(grade) == (personas.project.pk, None)


def test_owners_of_a_row_whose_parent_is_gone_are_none(personas):
    from reviews.models import Comment

    assert freshness.owners(Comment(revision_id=1000000000)) == (None, None)


def test_owners_of_a_row_of_a_course(personas):
    """A row with a course and no project (a membership, the grading settings) is the course's."""
    from grading.models import GradingSettings
    from lifecycle.models import Membership

    membership = Membership.objects.get(course=personas.course, user=personas.alice)
    assert freshness.owners(membership) == (None, personas.course.pk)
    settings_row = GradingSettings(course=personas.course)
    assert freshness.owners(settings_row) == (None, personas.course.pk)
