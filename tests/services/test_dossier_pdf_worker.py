"""The dossier PDF is rendered by a real Celery worker over Redis, never by the web request;
the page that asked for it then offers the download."""

from __future__ import annotations

from unittest import mock

import pytest
from celery_harness import wait_until
from django.test import Client
from django.urls import reverse
from factories import current_stage, fill_and_submit

from reviews.models import DossierRender, DossierRenderStatus

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_the_worker_renders_the_pdf_and_the_page_then_offers_the_download(
    personas, celery_services, publisher, settings, tmp_path
):
    p = personas
    media = tmp_path / "media"
    settings.MEDIA_ROOT = media  # this process reads what the worker writes
    worker = celery_services.worker(LRB_TEST_MEDIA_ROOT=str(media))
    fill_and_submit(current_stage(p.project), p.alice)
    client = Client()
    client.force_login(p.alice)
    url = reverse("reviews:project_dossier_pdf", args=[p.project.pk])

    # The web side never lays out a PDF: made to fail here, it is not called.
    with mock.patch("weasyprint.HTML", side_effect=AssertionError("WeasyPrint on the web")):
        asked = client.get(url)
        again = client.get(url)
    assert asked.status_code == 200
    assert "Preparing your PDF" in asked.content.decode()
    assert 'data-status="ready"' not in again.content.decode()

    renders = DossierRender.objects.filter(project=p.project, requested_by=p.alice)
    wait_until(
        lambda: renders.filter(status=DossierRenderStatus.READY).exists(),
        timeout=90,
        what="the worker to render the dossier",
    )
    assert renders.count() == 1
    render = renders.get()
    assert render.render_seconds is not None
    assert "reviews.render_dossier_pdf" in worker.log() and "'ready'" in worker.log()

    page = client.get(url)
    download = reverse("reviews:project_dossier_pdf_download", args=[p.project.pk, render.pk])
    assert 'data-status="ready"' in page.content.decode()
    assert download in page.content.decode()
    response = client.get(download)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert b"".join(response.streaming_content).startswith(b"%PDF")
    # An outsider learns nothing, not even that the file exists.
    outsider = Client()
    outsider.force_login(p.oscar)
    assert outsider.get(download).status_code == 404
