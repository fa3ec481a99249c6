"""The due-date panel on lifecycle's project overview and stage page: the team's due date for
the stage (its extension, with the reason, where staff granted one), the course's late rule in
words, and, once the date has passed, how late the stage is and what that costs."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils import timezone

from .late import due_status


def due_panel(request: HttpRequest, stage: Any) -> str:
    status = due_status(stage)
    if status is None:
        return ""
    context = {"stage": stage, "due": status, "tz": timezone.get_current_timezone_name()}
    return render_to_string("grading/partials/due_panel.html", context, request=request)
