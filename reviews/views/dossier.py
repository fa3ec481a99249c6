"""The project dossier as a printable page and as a PDF, for the team and course staff.

The PDF is WeasyPrint rendering the very page the browser prints. Its stylesheets come from the
static files on disk: the URL fetcher below answers /static/ URLs from the staticfiles finders
(or the collected files) and refuses everything else, so printing never reaches the network and
a Markdown answer cannot make the server fetch a URL.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import staticfiles_storage
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils.text import slugify
from django.views.decorators.http import require_GET

from lifecycle.selectors import get_project_for_user

from ..dossier import project_dossier
from .common import signed_in

TEMPLATE = "reviews/dossier.html"


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


def _url_fetcher() -> Any:
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


def render_pdf(html: str, *, base_url: str) -> bytes:
    import weasyprint

    return weasyprint.HTML(string=html, base_url=base_url, url_fetcher=_url_fetcher()).write_pdf()


def _context(request: HttpRequest, pk: int, *, for_pdf: bool) -> dict[str, Any]:
    user = signed_in(request)
    project = get_project_for_user(user, pk)
    return {"dossier": project_dossier(project=project, viewer=user), "for_pdf": for_pdf}


@login_required
@require_GET
def project_dossier_page(request: HttpRequest, pk: int) -> HttpResponse:
    return render(request, TEMPLATE, _context(request, pk, for_pdf=False))


@login_required
@require_GET
def project_dossier_pdf(request: HttpRequest, pk: int) -> HttpResponse:
    context = _context(request, pk, for_pdf=True)
    html = render_to_string(TEMPLATE, context, request=request)
    pdf = render_pdf(html, base_url=request.build_absolute_uri("/"))
    project = context["dossier"].project
    filename = f"dossier-{slugify(project.title) or project.pk}.pdf"
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
