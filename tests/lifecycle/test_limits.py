"""No web request does unbounded work: per-user concurrency and rate limits (lifecycle/limits.py)
on every expensive endpoint, and size bounds that answer with a message, never a 500."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
from django.core.signals import request_finished
from django.db import close_old_connections
from django.test import Client
from django.urls import reverse
from factories import current_stage, fill_and_submit
from reauth import confirm_password

from lifecycle import diffs, limits
from lifecycle.models import QuestionKind
from lifecycle.views import stages as stage_views
from reviews.views import dossier as dossier_views

pytestmark = pytest.mark.django_db


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    # As after signing in: a whole course's audit trail asks for the password again.
    return confirm_password(client)


def while_the_first_is_inside(
    target: str, first: Callable[[], Any], second: Callable[[], Any]
) -> tuple[Any, Any]:
    """Run ``first`` in a thread until it is inside ``target`` (patched to wait there), then
    ``second`` in this thread; let the first finish. Returns both results."""
    inside, release = threading.Event(), threading.Event()
    module, name = target.rsplit(".", 1)
    original = getattr(__import__(module, fromlist=[name]), name)

    def waiting(*args: Any, **kwargs: Any) -> Any:
        inside.set()
        release.wait(timeout=60)
        return original(*args, **kwargs)

    results: dict[str, Any] = {}

    def run_first() -> None:
        from django.db import connection

        try:
            results["first"] = first()
        except Exception as exc:  # reported below
            results["first"] = exc
        finally:
            connection.close()

    with mock.patch(target, side_effect=waiting):
        thread = threading.Thread(target=run_first)
        thread.start()
        try:
            assert inside.wait(timeout=60), "the first request never got inside"
            second_result = second()
        finally:
            release.set()
            thread.join(timeout=60)
    assert not thread.is_alive()
    return results["first"], second_result


# --- the limiter ------------------------------------------------------------------------------


class Someone:
    pk = 4242


def test_a_slot_is_refused_while_held_and_free_again_once_released():
    slot = limits.acquire("thing", Someone(), message="busy")
    with pytest.raises(limits.Busy, match="busy"):
        limits.acquire("thing", Someone(), message="busy")
    limits.acquire("other-thing", Someone(), message="busy").release()  # kinds are separate
    slot.release()
    slot.release()  # idempotent
    limits.acquire("thing", Someone(), message="busy").release()


def test_a_limit_of_two_lets_two_in():
    first = limits.acquire("thing", Someone(), limit=2, message="busy")
    second = limits.acquire("thing", Someone(), limit=2, message="busy")
    with pytest.raises(limits.Busy):
        limits.acquire("thing", Someone(), limit=2, message="busy")
    first.release()
    second.release()


def test_a_slot_a_crashed_worker_never_released_expires():
    limits.acquire("thing", Someone(), expires=60, message="busy")  # never released
    with pytest.raises(limits.Busy):
        limits.acquire("thing", Someone(), message="busy")
    later = time.time() + 61
    with mock.patch("django.core.cache.backends.locmem.time.time", return_value=later):
        limits.acquire("thing", Someone(), message="busy").release()


def test_a_rate_refuses_above_the_count_per_minute():
    with mock.patch("lifecycle.limits._clock", return_value=600_000.0):
        for _ in range(3):
            limits.check_rate("thing", Someone(), per_minute=3, message="slow down")
        with pytest.raises(limits.Busy, match="slow down"):
            limits.check_rate("thing", Someone(), per_minute=3, message="slow down")
    with mock.patch("lifecycle.limits._clock", return_value=600_060.0):  # the next minute
        limits.check_rate("thing", Someone(), per_minute=3, message="slow down")


@pytest.mark.django_db(transaction=True)
def test_of_many_simultaneous_takers_exactly_one_gets_the_slot():
    from concurrency import race

    def take(_: int) -> bool:
        try:
            limits.acquire("race", Someone(), message="busy")
        except limits.Busy:
            return False
        return True

    results = race(8, take)
    assert sorted(value for _, value in results) == [False] * 7 + [True]


# --- Markdown preview -------------------------------------------------------------------------


def preview(client: Client, text: str) -> Any:
    return client.post(reverse("lifecycle:markdown_preview"), {"text": text})


def test_a_preview_longer_than_an_answer_may_be_is_refused_with_a_message(personas):
    response = preview(client_for(personas.alice), "x" * (stage_views.MAX_PREVIEW_CHARS + 1))
    assert response.status_code == 413
    assert "Too long to preview: 50,001 characters" in response.content.decode()
    assert preview(client_for(personas.alice), "**fine**").content.decode().strip() == (
        "<p><strong>fine</strong></p>"
    )


@mock.patch("lifecycle.limits._clock", return_value=600_000.0)  # all within one minute
def test_more_previews_a_minute_than_the_rate_are_refused(_clock, personas):
    client = client_for(personas.alice)
    for _ in range(stage_views.PREVIEWS_PER_MINUTE):
        assert preview(client, "hello").status_code == 200
    refused = preview(client, "hello")
    assert refused.status_code == 429
    assert "Too many previews in a minute" in refused.content.decode()
    assert refused["Retry-After"]
    # Someone else is not slowed down by Alice.
    assert preview(client_for(personas.bob), "hello").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_a_second_simultaneous_preview_is_told_one_is_already_preparing(personas):
    p = personas
    first, second = while_the_first_is_inside(
        "lifecycle.views.stages.render_markdown",
        lambda: preview(client_for(p.alice), "first"),
        lambda: preview(client_for(p.alice), "second"),
    )
    assert first.status_code == 200 and "first" in first.content.decode()
    assert second.status_code == 429
    assert "Already preparing a preview for you" in second.content.decode()


# --- audit export -----------------------------------------------------------------------------


def export_url(course: Any) -> str:
    return reverse("lifecycle:audit_export", args=[course.pk]) + "?format=csv&download=1"


def test_a_second_export_while_one_is_still_downloading_is_refused(personas):
    client = client_for(personas.ian)
    first = client.get(export_url(personas.course))
    assert first.status_code == 200 and first.streaming  # not read yet: still downloading
    second = client.get(export_url(personas.course))
    assert second.status_code == 429
    assert "An export of yours is still downloading" in second.content.decode()
    # Another member of staff exports meanwhile.
    other = client_for(personas.tina).get(export_url(personas.course))
    assert other.status_code == 200
    b"".join(other.streaming_content)
    # Once the first download is done, the next one goes through.
    b"".join(first.streaming_content)
    third = client.get(export_url(personas.course))
    assert third.status_code == 200
    b"".join(third.streaming_content)


def test_a_download_the_client_abandons_frees_its_slot(personas):
    client = client_for(personas.ian)
    first = client.get(export_url(personas.course))
    # The server closes the response when the client goes away. (As Django's test client
    # does, keep request_finished from closing the test's database connection meanwhile.)
    request_finished.disconnect(close_old_connections)
    try:
        first.close()
    finally:
        request_finished.connect(close_old_connections)
    third = client.get(export_url(personas.course))
    assert third.status_code == 200
    b"".join(third.streaming_content)


@pytest.mark.django_db(transaction=True)
def test_two_simultaneous_exports_by_one_person_stream_one(personas):
    p = personas

    def download() -> Any:
        response = client_for(p.ian).get(export_url(p.course))
        if response.streaming:
            response.content_bytes = b"".join(response.streaming_content)
        return response

    first, second = while_the_first_is_inside(
        "lifecycle.views.exports.stream_export", download, download
    )
    assert first.status_code == 200 and first.content_bytes
    assert second.status_code == 429
    assert "still downloading" in second.content.decode()


# --- word diffs of large answers --------------------------------------------------------------


def test_answers_too_large_to_diff_word_by_word_are_shown_whole_with_a_note():
    old = " ".join(f"word{n}" for n in range(1500))
    new = " ".join(f"word{n}" for n in range(1, 1501))
    chunks = diffs.word_diff(old, new)
    assert [c.op for c in chunks] == ["note", "del", "ins"]
    assert chunks[0].text.startswith("Too large to diff word by word")
    assert (chunks[1].text, chunks[2].text) == (old, new)
    small = diffs.word_diff("a b c", "a x c")
    assert [c.op for c in small] == ["same", "del", "ins", "same"]


def test_a_diff_budget_shows_the_changes_after_it_is_spent_whole():
    budget = diffs.DiffBudget(work=100)
    assert [c.op for c in diffs.word_diff("a b c", "a x c", budget)] == [
        "same",
        "del",
        "ins",
        "same",
    ]
    long = " ".join("w" * 3 for _ in range(20))
    assert diffs.word_diff(long, long + " more", budget)[0].op == "note"


def _long_key(stage: Any) -> str:
    return next(q.key for q in stage.definition.questions.all() if q.kind == QuestionKind.LONG_TEXT)


def large_revisions(p: Any) -> Any:
    """Two revisions whose long answers are far too large to diff word by word."""
    stage = current_stage(p.project)
    key = _long_key(stage)
    fill_and_submit(stage, p.alice, **{key: " ".join(f"first{n}" for n in range(4000))})
    from reviews import services as review_services

    review_services.decision_record(
        revision=stage.revisions.get(number=1),
        reviewer=p.tina,
        outcome="request_changes",
        comment="More.",
    )
    fill_and_submit(stage, p.alice, **{key: " ".join(f"second{n}" for n in range(4000))})
    return stage


def test_the_revision_comparison_of_large_answers_says_it_is_too_large(personas):
    stage = large_revisions(personas)
    url = reverse(
        "lifecycle:stage_revisions",
        args=[stage.project_id, stage.cycle, stage.definition.key],
    )
    response = client_for(personas.alice).get(url, {"a": 1, "b": 2})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Too large to diff word by word" in html
    assert "first3999" in html and "second3999" in html


def test_the_review_page_of_large_answers_says_it_is_too_large(personas):
    stage = large_revisions(personas)
    response = client_for(personas.tina).get(reverse("reviews:review_stage", args=[stage.pk]))
    assert response.status_code == 200
    assert "Too large to diff word by word" in response.content.decode()


# --- the dossier page -------------------------------------------------------------------------


def test_a_dossier_too_large_for_a_page_offers_the_pdf_instead(personas, monkeypatch):
    large_revisions(personas)
    monkeypatch.setattr(dossier_views, "DOSSIER_PAGE_MAX_CHARS", 10_000)
    response = client_for(personas.alice).get(
        reverse("reviews:project_dossier", args=[personas.project.pk])
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "too large to show as one page" in html
    assert reverse("reviews:project_dossier_pdf", args=[personas.project.pk]) in html
    assert "first3999" not in html


def test_the_dossier_of_large_answers_shows_them_whole(personas):
    large_revisions(personas)
    response = client_for(personas.alice).get(
        reverse("reviews:project_dossier", args=[personas.project.pk])
    )
    assert response.status_code == 200
    assert "Too large to diff word by word" in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_second_simultaneous_dossier_page_is_refused_with_a_message(personas):
    p = personas
    url = reverse("reviews:project_dossier", args=[p.project.pk])
    first, second = while_the_first_is_inside(
        "reviews.views.dossier.project_dossier",
        lambda: client_for(p.alice).get(url),
        lambda: client_for(p.alice).get(url),
    )
    assert first.status_code == 200
    assert second.status_code == 429
    assert "Already preparing a dossier page for you" in second.content.decode()
    assert client_for(p.alice).get(url).status_code == 200  # and free again afterwards
