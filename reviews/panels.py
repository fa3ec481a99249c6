"""The gate panel shown on lifecycle's project and stage pages."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.template.loader import render_to_string

from lifecycle.models import StageStatus

from .selectors import gate_panel_context


def gate_panel(request: HttpRequest, stage: Any) -> str:
    if stage.status == StageStatus.LOCKED:
        return ""
    return render_to_string(
        "reviews/partials/gate_panel.html", gate_panel_context(stage), request=request
    )
