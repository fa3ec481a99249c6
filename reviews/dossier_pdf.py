"""The dossier PDF, rendered by a Celery worker and never by a web worker.

A request computes the dossier's content hash for its reader (a few queries, no diffs, no
Markdown, no layout) and finds or creates the :class:`DossierRender` row for that hash. Only
the request that creates the row queues the task, on commit; everyone else — a second tab, a
double click, the page polling — reads the row's state: preparing, ready (download), or failed.
The unique constraint on (project, reader, hash) makes two simultaneous requests share one
render. When the project changes, the hash changes and the next request renders anew.

WeasyPrint lays out a print stylesheet of its own (static/css/dossier-print.css), not
Bootstrap. Its URL fetcher answers /static/ URLs from the static files on disk and refuses
everything else, so printing never reaches the network and a Markdown answer cannot make the
worker fetch a URL.
"""

from __future__ import annotations

import datetime as dt
import logging
import mimetypes
import time
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import staticfiles_storage
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.text import slugify

from lifecycle import limits
from lifecycle.models import Project

from .dossier import dossier_content_hash, dossier_sources, project_dossier
from .models import DossierRender, DossierRenderStatus

log = logging.getLogger(__name__)

PRINT_TEMPLATE = "reviews/dossier_print.html"
# A person may have this many dossiers (of any projects) preparing at once.
RENDERS_AT_ONCE = 2


def lease() -> dt.timedelta:
    """How long a render may stay claimed (or unclaimed) before it counts as abandoned: longer
    than the task's hard time limit, so a slow render is never taken over while it runs."""
    return dt.timedelta(seconds=getattr(settings, "DOSSIER_RENDER_LEASE_SECONDS", 300))


# --- static files for WeasyPrint --------------------------------------------------------------


def static_file_path(name: str) -> Path | None:
    """The file on disk behind a static name, or None (never outside the static folders)."""
    parts = PurePosixPath(name).parts
    if not name or name.startswith("/") or ".." in parts:
        return None
    found = finders.find(name)
    if isinstance(found, list):
        found = found[0] if found else None
    if found:
        return Path(found)
    # Production's manifest storage names files by hash (app.3f2a….css): only the collected
    # copy under STATIC_ROOT has that name.
    try:
        if staticfiles_storage.exists(name):
            return Path(staticfiles_storage.path(name))
    except NotImplementedError:
        return None
    return None


def url_fetcher() -> Any:
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    static_prefix = "/" + urlsplit(settings.STATIC_URL).path.lstrip("/")

    class StaticFilesFetcher(URLFetcher):
        def fetch(self, url: str, headers: Any = None) -> URLFetcherResponse:
            if url.startswith("data:"):
                return super().fetch(url, headers)  # inline bytes: nothing is fetched
            path = urlsplit(url).path
            found = None
            if path.startswith(static_prefix):
                found = static_file_path(unquote(path[len(static_prefix) :]))
            if found is None:
                raise ValueError(f"The dossier loads only local static files, not {url}")
            content_type = mimetypes.guess_type(found.name)[0] or "application/octet-stream"
            return URLFetcherResponse(url, found.read_bytes(), {"Content-Type": content_type})

    return StaticFilesFetcher()


def render_pdf(html: str) -> bytes:
    import weasyprint

    base_url = settings.SITE_URL.rstrip("/") + "/"
    return weasyprint.HTML(string=html, base_url=base_url, url_fetcher=url_fetcher()).write_pdf()


def print_html(*, project: Project, viewer: Any) -> str:
    dossier = project_dossier(project=project, viewer=viewer)
    return render_to_string(PRINT_TEMPLATE, {"dossier": dossier, "user": viewer})


def download_name(project: Project) -> str:
    return f"dossier-{slugify(project.title) or project.pk}.pdf"


# --- asking for a PDF (web request) -----------------------------------------------------------


def _abandoned(now: dt.datetime) -> Q:
    """A preparing render no worker finished within the lease: the broker lost it, or the
    worker died. It may be asked for again."""
    cutoff = now - lease()
    return Q(status=DossierRenderStatus.PREPARING) & (
        Q(claimed_at__lt=cutoff) | Q(claimed_at__isnull=True, requested_at__lt=cutoff)
    )


def _file_exists(render: DossierRender) -> bool:
    return bool(render.file.name) and render.file.storage.exists(render.file.name or "")


def dossier_pdf_request(
    *, project: Project, user: Any, retry: bool = False
) -> tuple[DossierRender, bool]:
    """The render of this project's current dossier for this reader, and whether this call
    started it. Raises limits.Busy when the reader already has RENDERS_AT_ONCE renders of
    other dossiers preparing."""
    content_hash = dossier_content_hash(
        project=project, viewer=user, sources=dossier_sources(project)
    )
    existing = DossierRender.objects.filter(
        project=project, requested_by=user, content_hash=content_hash
    ).first()
    now = timezone.now()
    if existing is not None:
        # A failed render (when asked to retry) and an abandoned one start again, claimed by a
        # conditional UPDATE so that two requests do not both queue it.
        redo = _abandoned(now)
        if retry:
            redo |= Q(status=DossierRenderStatus.FAILED)
        if existing.status == DossierRenderStatus.READY and not _file_exists(existing):
            redo |= Q(status=DossierRenderStatus.READY)  # its file was lost: render it again
        again = DossierRender.objects.filter(pk=existing.pk).filter(redo)
        if again.update(
            status=DossierRenderStatus.PREPARING,
            requested_at=now,
            claimed_at=None,
            finished_at=None,
            error="",
            file="",
        ):
            existing.refresh_from_db()
            transaction.on_commit(lambda: enqueue_render(existing.pk))
            return existing, True
        return existing, False
    preparing = DossierRender.objects.filter(
        requested_by=user, status=DossierRenderStatus.PREPARING
    ).exclude(_abandoned(now))
    if preparing.count() >= RENDERS_AT_ONCE:
        raise limits.Busy(
            f"You already have {RENDERS_AT_ONCE} dossier PDFs being prepared. "
            "Wait for one of them to be ready, then ask again.",
            retry_after=10,
        )
    try:
        with transaction.atomic():
            render = DossierRender.objects.create(
                project=project, requested_by=user, content_hash=content_hash
            )
    except IntegrityError:
        # Another request for the same dossier created it a moment ago: already preparing.
        return (
            DossierRender.objects.get(
                project=project, requested_by=user, content_hash=content_hash
            ),
            False,
        )
    transaction.on_commit(lambda: enqueue_render(render.pk))
    return render, True


def enqueue_render(render_id: int) -> None:
    """Called on commit. With the broker down the render is marked failed at once, so the page
    says so (and offers to try again) instead of polling until the lease runs out."""
    from .tasks import render_dossier_pdf

    try:
        render_dossier_pdf.delay(render_id)
    except Exception as exc:
        log.warning("broker unreachable, dossier render %s not queued: %s", render_id, exc)
        DossierRender.objects.filter(pk=render_id, status=DossierRenderStatus.PREPARING).update(
            status=DossierRenderStatus.FAILED,
            error="The background worker could not be reached. Try again in a few minutes.",
            finished_at=timezone.now(),
        )


# --- rendering (Celery worker) ----------------------------------------------------------------


def claim(render_id: int) -> bool:
    now = timezone.now()
    return bool(
        DossierRender.objects.filter(pk=render_id, status=DossierRenderStatus.PREPARING)
        .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - lease()))
        .update(claimed_at=now)
    )


def dossier_pdf_render(render_id: int) -> str:
    """Render a claimed dossier to a file. Safe to run twice: a second run finds the render
    claimed or ready and does nothing. Renders what the project shows now; if it changed since
    the request, the next request's hash differs and asks for a new render anyway."""
    if not claim(render_id):
        return "not-claimed"
    render = DossierRender.objects.select_related("project", "requested_by").get(pk=render_id)
    started = time.perf_counter()
    try:
        pdf = render_pdf(print_html(project=render.project, viewer=render.requested_by))
    except Exception as exc:  # including Celery's soft time limit
        log.exception("dossier render %s failed", render_id)
        DossierRender.objects.filter(pk=render_id, status=DossierRenderStatus.PREPARING).update(
            status=DossierRenderStatus.FAILED,
            error=f"The PDF could not be made ({type(exc).__name__}). Try again; if it fails "
            "again, print the dossier page from your browser.",
            finished_at=timezone.now(),
        )
        return "failed"
    seconds = time.perf_counter() - started
    name = render.file.storage.save(
        render.file.field.generate_filename(render, f"{render.content_hash[:16]}-{render.pk}.pdf"),
        ContentFile(pdf),
    )
    done = DossierRender.objects.filter(pk=render_id, status=DossierRenderStatus.PREPARING).update(
        status=DossierRenderStatus.READY,
        file=name,
        finished_at=timezone.now(),
        render_seconds=seconds,
    )
    if not done:
        render.file.storage.delete(name)
        return "not-claimed"
    prune_older_renders(render)
    return "ready"


def prune_older_renders(render: DossierRender) -> int:
    """Earlier finished renders of the same dossier for the same reader show an older state of
    the project; nobody can ask for them again, so their files go."""
    # Only renders asked for before this one: a render of an older state that finishes late
    # must not remove the render of the newer state.
    older = DossierRender.objects.filter(
        project_id=render.project_id,
        requested_by_id=render.requested_by_id,
        requested_at__lt=render.requested_at,
        status__in=[DossierRenderStatus.READY, DossierRenderStatus.FAILED],
    ).exclude(pk=render.pk)
    removed = 0
    for old in older:
        if old.file:
            old.file.storage.delete(old.file.name or "")
        old.delete()
        removed += 1
    return removed
