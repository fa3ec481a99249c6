"""Extension points for layers above lifecycle: the review layer registers the gate panel here
(in its AppConfig.ready), so lifecycle pages show it without lifecycle importing reviews."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest
from django.utils.html import format_html_join
from django.utils.safestring import SafeString, mark_safe

StagePanel = Callable[[HttpRequest, Any], str]
_stage_panels: list[StagePanel] = []


def register_stage_panel(panel: StagePanel) -> StagePanel:
    if panel not in _stage_panels:
        _stage_panels.append(panel)
    return panel


def render_stage_panels(request: HttpRequest, stage: Any) -> SafeString:
    """Each panel returns HTML it rendered through a template (so already escaped)."""
    parts = [panel(request, stage) for panel in _stage_panels]
    return format_html_join("", "{}", ((mark_safe(p),) for p in parts if p))
