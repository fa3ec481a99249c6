"""The gate panel shown on lifecycle's project and stage pages."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.template.loader import render_to_string

from lifecycle.models import StageStatus

from .anonymity import names_for
from .selectors import gate_panel_context, hides_other_reviews


def gate_panel(request: HttpRequest, stage: Any) -> str:
    if stage.status == StageStatus.LOCKED:
        return ""
    # Anonymous reviewers: the team reads "Reviewer A, domain expert" here too.
    context = gate_panel_context(stage, names_for(request.user, stage.project))
    # Independent review: course staff read the stage page too, and the panel names who
    # decided what, so it keeps quiet until they have decided themselves.
    context["hide_votes"] = hides_other_reviews(
        request.user, stage, decided_by=context["current_decided_by"]
    )
    return render_to_string("reviews/partials/gate_panel.html", context, request=request)
