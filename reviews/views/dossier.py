"""The project dossier as a printable page and as a PDF, for the team and course staff.

The page is laid out in the request, within bounds (one at a time per person, a cap on the text
it lays out, a budget of word diffs). The PDF never is: asking for it returns at once with a
"preparing…" page that polls, and a Celery worker renders it (reviews/dossier_pdf.py).
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from lifecycle import limits
from lifecycle.selectors import get_project_for_user

from .. import dossier_pdf
from ..dossier import DOSSIER_PAGE_MAX_CHARS, dossier_text_size, project_dossier
from ..models import DossierRender, DossierRenderStatus
from .common import signed_in

TEMPLATE = "reviews/dossier.html"


@login_required
@require_GET
def project_dossier_page(request: HttpRequest, pk: int) -> HttpResponse:
    user = signed_in(request)
    project = get_project_for_user(user, pk)
    size = dossier_text_size(project)
    if size > DOSSIER_PAGE_MAX_CHARS:
        context = {"project": project, "size": size, "limit": DOSSIER_PAGE_MAX_CHARS}
        return render(request, "reviews/dossier_too_large.html", context)
    try:
        with limits.concurrency_slot(
            "dossier-page",
            user,
            expires=60,
            message="Already preparing a dossier page for you; wait for it to load.",
        ):
            dossier = project_dossier(project=project, viewer=user)
            return render(request, TEMPLATE, {"dossier": dossier})
    except limits.Busy as busy:
        return limits.busy_response(request, busy)


@login_required
@require_GET
def project_dossier_pdf(request: HttpRequest, pk: int) -> HttpResponse:
    """Asks for the PDF of the dossier as it is now; shows whether it is preparing (the page
    polls), ready (a download link) or failed (try again). Never renders it here."""
    user = signed_in(request)
    project = get_project_for_user(user, pk)
    try:
        dossier_render, started = dossier_pdf.dossier_pdf_request(
            project=project, user=user, retry=request.GET.get("again") == "1"
        )
    except limits.Busy as busy:
        return limits.busy_response(request, busy)
    context = {
        "project": project,
        "render": dossier_render,
        "started": started,
        "preparing": dossier_render.status == DossierRenderStatus.PREPARING,
        "filename": dossier_pdf.download_name(project),
    }
    return render(request, "reviews/dossier_pdf.html", context)


@login_required
@require_GET
def project_dossier_pdf_download(request: HttpRequest, pk: int, render_pk: int) -> FileResponse:
    """A finished PDF, for the reader it was rendered for (it shows what they may see)."""
    user = signed_in(request)
    project = get_project_for_user(user, pk)
    dossier_render = DossierRender.objects.filter(
        pk=render_pk, project=project, requested_by=user, status=DossierRenderStatus.READY
    ).first()
    if dossier_render is None or not dossier_render.file:
        raise Http404("No such PDF.")
    try:
        handle = dossier_render.file.open("rb")
    except FileNotFoundError:
        raise Http404("No such PDF.") from None
    response = FileResponse(
        handle,
        as_attachment=True,
        filename=dossier_pdf.download_name(project),
        content_type="application/pdf",
    )
    response["X-Content-Type-Options"] = "nosniff"
    return response
