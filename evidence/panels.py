"""The evidence panel on lifecycle's stage page: each question that takes files, its draft
files, and (for the team, while the draft is editable) an upload form."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.template.loader import render_to_string

from lifecycle import permissions as lifecycle_permissions
from lifecycle.models import StageStatus

from .selectors import draft_files_by_question
from .slots import slots_for_stage


def evidence_panel(request: HttpRequest, stage: Any) -> str:
    # The stage page's alone: the project overview shows the current stage's gate, not its files.
    match = getattr(request, "resolver_match", None)
    if match is None or match.view_name != "lifecycle:stage_detail":
        return ""
    if stage.status == StageStatus.LOCKED:
        return ""
    project = stage.project
    slots = slots_for_stage(project.template, stage.definition.key)
    if not slots:
        return ""
    files = draft_files_by_question(stage)
    questions = {q.key: q for q in stage.definition.questions.all()}
    editable = (
        lifecycle_permissions.is_project_member(request.user, project)
        and project.is_active
        and stage.is_editable
    )
    rows = [
        {
            "question": questions[key],
            "slot": slot,
            "files": files.get(key, []),
            "full": len(files.get(key, [])) >= slot.max_files,
        }
        for key, slot in slots.items()
        if key in questions
    ]
    rows.sort(key=lambda row: row["question"].order)
    risks = list(project.risks.only("pk", "title", "evidence")) if editable else []
    for row in rows:
        for f in row["files"]:
            f.risks = [r for r in risks if {"name": f.name, "sha256": f.sha256} in r.evidence]
    return render_to_string(
        "evidence/partials/panel.html",
        {"stage": stage, "rows": rows, "editable": editable, "risks": risks},
        request=request,
    )
