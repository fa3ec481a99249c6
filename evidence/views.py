"""Evidence pages: upload and remove a draft's files (the team), and serve files to whoever may
see them. Served files never run as active content on the board's origin: everything carries
``X-Content-Type-Options: nosniff`` and a CSP ``sandbox`` (no script, an opaque origin), except
PDFs shown inline (the browser's PDF viewer refuses a sandbox), which get a CSP allowing
nothing; downloads are ``Content-Disposition: attachment``."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_GET, require_POST

from lifecycle import permissions as lifecycle_permissions
from lifecycle.errors import DomainError
from lifecycle.models import ProjectStage
from lifecycle.selectors import projects_for_user

from . import services
from .checks import max_bytes
from .forms import UploadForm
from .models import EvidenceBlob, FileType
from .selectors import get_draft_file_for_user, get_revision_file_for_user
from .storage import StorageUnavailable, open_object

SANDBOX_CSP = (
    "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
)
PDF_CSP = "default-src 'none'; frame-ancestors 'self'; base-uri 'none'; form-action 'none'"


def _team_stage(user: Any, stage_pk: int) -> ProjectStage:
    stage = get_object_or_404(
        ProjectStage.objects.select_related("definition", "project__course", "project__template"),
        pk=stage_pk,
        project__in=projects_for_user(user),
    )
    if not lifecycle_permissions.is_project_member(user, stage.project):
        raise Http404("Only the team attaches evidence.")
    return stage


@login_required
@require_POST
def upload(request: HttpRequest, stage_pk: int, question_key: str) -> HttpResponse:
    stage = _team_stage(request.user, stage_pk)
    form = UploadForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, "Choose a file to attach.")
        return redirect(stage.get_absolute_url())
    uploaded = form.cleaned_data["file"]
    if uploaded.size is not None and uploaded.size > max_bytes():
        # Refused before the bytes are read into memory.
        messages.error(
            request,
            f"Not attached: {uploaded.name} is larger than {max_bytes() // (1024 * 1024)} MB.",
        )
        return redirect(stage.get_absolute_url())
    data = uploaded.read()
    try:
        attached = services.evidence_attach(
            stage=stage,
            actor=request.user,
            question_key=question_key,
            name=uploaded.name or "",
            data=data,
        )
    except DomainError as error:
        messages.error(request, f"Not attached: {error.message}")
        return redirect(stage.get_absolute_url(), permanent=False)
    messages.success(request, f"Attached {attached.name}.")
    return redirect(stage.get_absolute_url())


@login_required
@require_POST
def remove(request: HttpRequest, pk: int) -> HttpResponse:
    attachment = get_draft_file_for_user(request.user, pk)
    stage = attachment.stage
    if not lifecycle_permissions.is_project_member(request.user, stage.project):
        raise Http404("Only the team removes evidence.")
    try:
        services.evidence_remove(attachment=attachment, actor=request.user)
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Removed {attachment.name}.")
    return redirect(stage.get_absolute_url())


def serve_blob(blob: EvidenceBlob, name: str, variant: str) -> HttpResponseBase:
    if variant not in ("view", "download"):
        raise Http404("No such view of the file.")
    inline = variant == "view" and blob.file_type in (
        FileType.IMAGE,
        FileType.SVG,
        FileType.PDF,
        FileType.NOTEBOOK,
        FileType.TEXT,
    )
    storage_name, content_type = blob.storage_name, blob.content_type
    if inline and blob.file_type == FileType.NOTEBOOK:
        storage_name, content_type = blob.rendered_name, "text/html; charset=utf-8"
    try:
        handle = open_object(storage_name)
    except StorageUnavailable:
        return HttpResponse(
            "The file store is not answering; try again in a few minutes.",
            status=503,
            content_type="text/plain; charset=utf-8",
        )
    except FileNotFoundError:
        raise Http404("The file is missing from storage.") from None
    response = FileResponse(
        handle, as_attachment=not inline, filename=name, content_type=content_type
    )
    response["X-Content-Type-Options"] = "nosniff"
    is_pdf_inline = inline and blob.file_type == FileType.PDF
    response["Content-Security-Policy"] = PDF_CSP if is_pdf_inline else SANDBOX_CSP
    # The review page frames notebooks and PDFs; nothing else may.
    response["X-Frame-Options"] = "SAMEORIGIN"
    response["Cache-Control"] = "private, max-age=3600"
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    return response


@login_required
@require_GET
def draft_file(request: HttpRequest, pk: int, variant: str) -> HttpResponseBase:
    attachment = get_draft_file_for_user(request.user, pk)
    return serve_blob(attachment.blob, attachment.name, variant)


@login_required
@require_GET
def revision_file(request: HttpRequest, pk: int, variant: str) -> HttpResponseBase:
    frozen = get_revision_file_for_user(request.user, pk)
    return serve_blob(frozen.blob, frozen.name, variant)


# --- artefacts --------------------------------------------------------------------------------


@login_required
@require_GET
def artefacts(request: HttpRequest, pk: int) -> HttpResponse:
    from django.shortcuts import render

    from lifecycle.selectors import get_project_for_user

    from .artefacts import ARTEFACT_FILES, approved_content

    project = get_project_for_user(request.user, pk)
    approved = approved_content(project)
    documents = [
        {"filename": filename, "text": render_document(approved)}
        for filename, (_, render_document) in ARTEFACT_FILES.items()
    ]
    return render(
        request,
        "evidence/artefacts.html",
        {"project": project, "approved": approved, "documents": documents},
    )


@login_required
@require_GET
def artefact_download(request: HttpRequest, pk: int, filename: str) -> HttpResponse:
    from lifecycle.selectors import get_project_for_user

    from .artefacts import ARTEFACT_FILES, approved_content

    project = get_project_for_user(request.user, pk)
    if filename not in ARTEFACT_FILES:
        raise Http404("No such document.")
    content_type, render_document = ARTEFACT_FILES[filename]
    response = HttpResponse(render_document(approved_content(project)), content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="project-{project.pk}-{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


@login_required
@require_POST
def link_risk(request: HttpRequest, pk: int) -> HttpResponse:
    from lifecycle.models import Risk

    attachment = get_draft_file_for_user(request.user, pk)
    stage = attachment.stage
    if not lifecycle_permissions.is_project_member(request.user, stage.project):
        raise Http404("Only the team links evidence to risks.")
    risk = Risk.objects.filter(project=stage.project, pk=request.POST.get("risk") or 0).first()
    if risk is None:
        messages.error(request, "Choose one of this project's risks.")
        return redirect(stage.get_absolute_url())
    linked = request.POST.get("unlink") != "1"
    try:
        services.evidence_link_risk(
            attachment=attachment, risk=risk, actor=request.user, linked=linked
        )
    except DomainError as error:
        messages.error(request, error.message)
    else:
        verb = "now backs" if linked else "no longer backs"
        messages.success(request, f"{attachment.name} {verb} the risk “{risk.title}”.")
    return redirect(stage.get_absolute_url())
