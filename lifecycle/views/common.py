from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from lifecycle import permissions
from lifecycle.errors import DomainError, NotAllowed
from lifecycle.models import Project, ProjectStage
from lifecycle.selectors import PROJECT_RELATED, get_project_for_user

STAGE_RELATED = ("definition", "current_revision", "draft_updated_by", "prefilled_from")


def get_stage_for_user(
    user: Any, project_pk: int, cycle: int, key: str, *, light: bool = False
) -> tuple[Project, ProjectStage]:
    """The project and its stage, or 404. ``light``: the rows alone (and the stage's
    definition), for a page whose content is cached and reads the rest only to render it."""
    project = get_project_for_user(user, project_pk, related=() if light else PROJECT_RELATED)
    stage = get_object_or_404(
        ProjectStage.objects.select_related(*(("definition",) if light else STAGE_RELATED)),
        project=project,
        cycle=cycle,
        definition__key=key,
    )
    stage.project = project
    return project, stage


def require_member(user: Any, project: Project) -> None:
    """Pages that change a project: course staff may look, but only the team writes; others
    never learned the project exists (get_project_for_user already gave them a 404)."""
    if not permissions.is_project_member(user, project):
        raise Http404("Only the team can change this project.")


def domain_error_page(
    request: HttpRequest, error: DomainError, *, title: str = "", back_url: str = ""
) -> HttpResponse:
    status = 404 if isinstance(error, NotAllowed) else error.status_code
    return render(
        request,
        "lifecycle/domain_error.html",
        {"error": error, "title": title or "That cannot be done right now", "back_url": back_url},
        status=status,
    )
