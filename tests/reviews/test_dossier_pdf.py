"""The dossier PDF off the request path: asking returns a "preparing…" page at once, a Celery
task renders it (here eagerly, on commit), the page then offers the download; a web request
never lays out a PDF."""

from __future__ import annotations

import datetime as dt
import io
import os
import threading
from typing import Any
from unittest import mock

import pytest
from concurrency import race
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from factories import current_stage, fill_and_submit
from test_dossier import invite_expert, review_one_stage

from lifecycle import freshness
from lifecycle.models import StageRevision
from reviews import dossier_pdf, services
from reviews.dossier import dossier_content_hash, dossier_sources
from reviews.models import DossierRender, DossierRenderStatus
from reviews.tasks import render_dossier_pdf

pytestmark = pytest.mark.django_db


@pytest.fixture
def reviewed(personas):
    """As in test_dossier: stage 1 reviewed over two revisions, stage 2 approved by override."""
    p = personas
    invite_expert(p, p.project)
    review_one_stage(p, p.project, p.alice)
    stage = current_stage(p.project)
    fill_and_submit(stage, p.bob)
    services.stage_override(
        stage=stage, actor=p.ian, justification="The expert is ill; the clinic signed off."
    )
    return p


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def pdf_url(project: Any) -> str:
    return reverse("reviews:project_dossier_pdf", args=[project.pk])


def download_url(render: DossierRender) -> str:
    return reverse("reviews:project_dossier_pdf_download", args=[render.project_id, render.pk])


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def status_of(response: Any) -> str:
    html = response.content.decode()
    for status in ("ready", "failed", "preparing"):
        if f'data-status="{status}"' in html:
            return status
    raise AssertionError(f"no status on the page:\n{html[:2000]}")


def test_asking_for_the_pdf_prepares_it_and_then_the_page_offers_the_download(
    reviewed, django_capture_on_commit_callbacks
):
    p = reviewed
    client = client_for(p.alice)
    with django_capture_on_commit_callbacks(execute=True):  # the task runs eagerly on commit
        first = client.get(pdf_url(p.project))
    assert first.status_code == 200
    assert "Preparing your PDF" in first.content.decode()
    assert 'http-equiv="refresh"' in first.content.decode()  # inside <noscript>
    assert 'hx-trigger="every 2s"' in first.content.decode()

    ready = client.get(pdf_url(p.project))
    assert status_of(ready) == "ready"
    render = DossierRender.objects.get(project=p.project, requested_by=p.alice)
    assert render.render_seconds is not None
    assert download_url(render) in ready.content.decode()
    assert 'http-equiv="refresh"' not in ready.content.decode()  # polling stops

    download = client.get(download_url(render))
    assert download.status_code == 200
    assert download["Content-Type"] == "application/pdf"
    assert download["Content-Disposition"] == (
        'attachment; filename="dossier-triage-assistant.pdf"'
    )
    pdf = b"".join(download.streaming_content)
    assert pdf.startswith(b"%PDF")
    try:
        from pypdf import PdfReader
    except ImportError:  # pragma: no cover - pypdf is optional
        return
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert "Triage assistant" in text
    assert "Approved by instructor override" in text
    assert "Printed" in text and "by Alice" in text


@pytest.fixture
def broker_without_worker():
    """Eager execution off, and a broker nobody consumes from (kombu's in-memory transport):
    the web side as in production."""
    from config.celery_app import app

    saved = {
        "broker_url": app.conf.broker_url,
        "broker_transport_options": app.conf.broker_transport_options,
        "task_always_eager": app.conf.task_always_eager,
    }

    def forget_connections() -> None:
        # The connection pool and the producer pool made from it both remember the transport.
        app._pool = None
        app.amqp._producer_pool = None

    forget_connections()
    app.conf.update(broker_url="memory://", broker_transport_options={}, task_always_eager=False)
    yield app
    forget_connections()
    app.conf.update(**saved)


def test_a_web_request_never_renders_the_pdf(
    reviewed, broker_without_worker, django_capture_on_commit_callbacks
):
    """Eager execution off, as in production: the request queues the render (on commit) and
    returns the preparing page; WeasyPrint, made to fail here, is never called."""
    p = reviewed
    with (
        mock.patch("weasyprint.HTML", side_effect=AssertionError("WeasyPrint in a web request")),
        mock.patch.object(dossier_pdf, "render_pdf", side_effect=AssertionError("rendered")),
        mock.patch.object(render_dossier_pdf, "delay", wraps=render_dossier_pdf.delay) as delay,
        django_capture_on_commit_callbacks(execute=True) as callbacks,
    ):
        response = client_for(p.alice).get(pdf_url(p.project))
    assert response.status_code == 200 and status_of(response) == "preparing"
    assert len(freshness.other_callbacks(callbacks)) == 1  # touch() adds its own
    render = DossierRender.objects.get()
    delay.assert_called_once_with(render.pk)
    assert render.status == DossierRenderStatus.PREPARING and not render.file


def test_a_second_request_while_one_is_preparing_answers_already_preparing(
    reviewed, django_capture_on_commit_callbacks
):
    p = reviewed
    client = client_for(p.alice)
    with django_capture_on_commit_callbacks(execute=False) as first_hooks:
        first = client.get(pdf_url(p.project))
    with django_capture_on_commit_callbacks(execute=False) as second_hooks:
        second = client.get(pdf_url(p.project))
    assert "Preparing your PDF" in first.content.decode()
    assert "Already preparing your PDF" in second.content.decode()
    queued = (freshness.other_callbacks(first_hooks), freshness.other_callbacks(second_hooks))
    assert tuple(map(len, queued)) == (1, 0)  # one render queued, not two
    assert DossierRender.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_simultaneous_requests_start_one_render(personas):
    p = personas
    queued: list[int] = []
    lock = threading.Lock()

    def record(render_id: int) -> None:
        with lock:
            queued.append(render_id)

    def ask(_: int) -> str:
        return client_for(p.alice).get(pdf_url(p.project)).content.decode()

    with mock.patch.object(dossier_pdf, "enqueue_render", side_effect=record):
        results = race(2, ask)
    pages = [value for status, value in results if status == "ok"]
    assert len(pages) == 2, results
    assert sum("Preparing your PDF" in page for page in pages) == 1
    assert sum("Already preparing your PDF" in page for page in pages) == 1
    assert DossierRender.objects.count() == 1
    assert queued == [DossierRender.objects.get().pk]


def test_a_change_to_the_project_makes_a_new_render_and_retires_the_old_one(
    reviewed, django_capture_on_commit_callbacks
):
    p = reviewed
    client = client_for(p.alice)
    with django_capture_on_commit_callbacks(execute=True):
        client.get(pdf_url(p.project))
    old = DossierRender.objects.get(status=DossierRenderStatus.READY)
    old_file = old.file.path

    stage = current_stage(p.project)
    revision = fill_and_submit(stage, p.alice)
    services.comment_add(revision=revision, author=p.tina, body="A new question.")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.get(pdf_url(p.project))
    assert "Preparing your PDF" in response.content.decode()
    new = DossierRender.objects.get()  # the older render and its file are gone
    assert new.pk != old.pk and new.content_hash != old.content_hash
    assert new.status == DossierRenderStatus.READY
    assert not os.path.exists(old_file)


def test_the_hash_ignores_what_only_dates_the_print(reviewed):
    p = reviewed
    before = dossier_content_hash(
        project=p.project, viewer=p.alice, sources=dossier_sources(p.project)
    )
    client_for(p.alice)  # a sign-in changes last_login
    fill_and_submit(current_stage(p.other_project), p.carol)  # another project's events
    p.alice.refresh_from_db()
    after = dossier_content_hash(
        project=p.project, viewer=p.alice, sources=dossier_sources(p.project)
    )
    assert before == after
    # Another reader sees the same rows, but the dossier names who printed it.
    assert after != dossier_content_hash(
        project=p.project, viewer=p.tina, sources=dossier_sources(p.project)
    )


@pytest.mark.parametrize("persona", ["carol", "erin", "oscar"])
def test_outsiders_get_404_for_the_pdf_and_its_download(reviewed, persona):
    p = reviewed
    render = DossierRender.objects.create(
        project=p.project, requested_by=p.alice, content_hash="a" * 64, status="ready"
    )
    client = client_for(getattr(p, persona))
    assert client.get(pdf_url(p.project)).status_code == 404
    assert client.get(download_url(render)).status_code == 404
    assert DossierRender.objects.count() == 1  # asking started nothing


def test_a_readers_pdf_is_not_anyone_elses_to_download(reviewed):
    p = reviewed
    render = DossierRender.objects.create(
        project=p.project, requested_by=p.alice, content_hash="a" * 64, status="ready"
    )
    assert client_for(p.tina).get(download_url(render)).status_code == 404
    # And one that is not ready yet, or whose file is missing, is no download either.
    assert client_for(p.alice).get(download_url(render)).status_code == 404


def test_a_failed_render_says_so_and_can_be_tried_again(
    reviewed, django_capture_on_commit_callbacks
):
    p = reviewed
    client = client_for(p.alice)
    with (
        mock.patch.object(dossier_pdf, "render_pdf", side_effect=RuntimeError("no fonts")),
        django_capture_on_commit_callbacks(execute=True),
    ):
        client.get(pdf_url(p.project))
    failed = client.get(pdf_url(p.project))
    assert status_of(failed) == "failed"
    assert "The PDF could not be made (RuntimeError)" in failed.content.decode()
    assert "?again=1" in failed.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        retried = client.get(pdf_url(p.project) + "?again=1")
    assert "Preparing your PDF" in retried.content.decode()
    assert status_of(client.get(pdf_url(p.project))) == "ready"


def test_an_unreachable_broker_fails_the_render_at_once(
    reviewed, django_capture_on_commit_callbacks
):
    p = reviewed
    with (
        mock.patch.object(render_dossier_pdf, "delay", side_effect=ConnectionError("down")),
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = client_for(p.alice).get(pdf_url(p.project))
    assert response.status_code == 200
    render = DossierRender.objects.get()
    assert render.status == DossierRenderStatus.FAILED
    assert "could not be reached" in render.error


def test_the_render_task_is_safe_to_run_twice(reviewed, django_capture_on_commit_callbacks):
    p = reviewed
    with django_capture_on_commit_callbacks(execute=False):
        client_for(p.alice).get(pdf_url(p.project))
    render = DossierRender.objects.get()
    assert render_dossier_pdf(render.pk) == "ready"
    assert render_dossier_pdf(render.pk) == "not-claimed"
    render.refresh_from_db()
    assert render.status == DossierRenderStatus.READY
    assert sorted(render.file.storage.listdir(f"dossiers/{p.project.pk}")[1]) == [
        render.file.name.rsplit("/", 1)[1]
    ]


def test_an_abandoned_render_is_started_again(reviewed, django_capture_on_commit_callbacks):
    p = reviewed
    with django_capture_on_commit_callbacks(execute=False):
        client_for(p.alice).get(pdf_url(p.project))
    long_ago = timezone.now() - dt.timedelta(hours=1)
    DossierRender.objects.update(requested_at=long_ago)  # the broker lost the task
    with django_capture_on_commit_callbacks(execute=False) as hooks:
        response = client_for(p.alice).get(pdf_url(p.project))
    assert "Preparing your PDF" in response.content.decode()
    assert len(hooks) == 1


def test_a_reader_with_two_pdfs_preparing_is_told_to_wait(reviewed):
    p = reviewed
    for n in range(dossier_pdf.RENDERS_AT_ONCE):
        DossierRender.objects.create(
            project=p.other_project if n else p.project, requested_by=p.ian, content_hash=str(n)
        )
    response = client_for(p.ian).get(pdf_url(p.project))
    assert response.status_code == 429
    assert "already have 2 dossier PDFs being prepared" in response.content.decode()
    assert DossierRender.objects.count() == dossier_pdf.RENDERS_AT_ONCE


def test_the_pdf_is_laid_out_with_its_own_small_stylesheet(reviewed):
    html = dossier_pdf.print_html(project=reviewed.project, viewer=reviewed.alice)
    assert "css/dossier-print.css" in html
    assert "bootstrap" not in html.lower()
    assert "<script" not in html and "style=" not in html


def test_a_render_of_an_older_state_finishing_late_keeps_the_newer_one(
    reviewed, django_capture_on_commit_callbacks
):
    p = reviewed
    client = client_for(p.alice)
    with django_capture_on_commit_callbacks(execute=False):
        client.get(pdf_url(p.project))  # its task is slow to start
    older = DossierRender.objects.get()
    revision = StageRevision.objects.filter(stage__project=p.project).order_by("pk").first()
    services.comment_add(revision=revision, author=p.tina, body="Meanwhile, a comment.")
    with django_capture_on_commit_callbacks(execute=True):
        client.get(pdf_url(p.project))
    newer = DossierRender.objects.exclude(pk=older.pk).get()
    assert newer.status == DossierRenderStatus.READY
    assert render_dossier_pdf(older.pk) == "ready"
    newer.refresh_from_db()
    assert newer.status == DossierRenderStatus.READY and newer.file.storage.exists(newer.file.name)
    page = client.get(pdf_url(p.project))
    assert download_url(newer) in page.content.decode()
