"""Extension points for layers above lifecycle: the review layer registers the gate panel and
the home page's "waiting for you" panel here (in its AppConfig.ready), so lifecycle pages show
them without lifecycle importing reviews."""

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


HomePanel = Callable[[HttpRequest], str]
_home_panels: list[HomePanel] = []


def register_home_panel(panel: HomePanel) -> HomePanel:
    if panel not in _home_panels:
        _home_panels.append(panel)
    return panel


def render_home_panels(request: HttpRequest) -> SafeString:
    """What waits for the person, from the layers above; empty when nothing does."""
    parts = [panel(request) for panel in _home_panels]
    return format_html_join("", "{}", ((mark_safe(p),) for p in parts if p))
