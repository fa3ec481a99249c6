"""Extension points for layers above lifecycle: the review layer registers the gate panel and
the home page's "waiting for you" panel here (in its AppConfig.ready), so lifecycle pages show
them without lifecycle importing reviews."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
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


HomeScope = Callable[[HttpRequest], bool]
_home_scopes: list[HomeScope] = []


def register_home_scope(scope: HomeScope) -> HomeScope:
    """``scope(request)`` is False when the layer's home panel shows this person rows of
    projects they are not on (a reviewer's waiting stages): their home is then not cached by
    their own projects and courses (lifecycle.views.projects.home)."""
    if scope not in _home_scopes:
        _home_scopes.append(scope)
    return scope


def home_is_personal(request: HttpRequest) -> bool:
    return all(scope(request) for scope in _home_scopes)


def render_home_panels(request: HttpRequest) -> SafeString:
    """What waits for the person, from the layers above; empty when nothing does."""
    parts = [panel(request) for panel in _home_panels]
    return format_html_join("", "{}", ((mark_safe(p),) for p in parts if p))


@dataclass
class OpenThread:
    """A thread the team has not resolved, for the resubmission form."""

    id: int
    label: str  # the question's text, or "The stage as a whole"
    excerpt: str


@dataclass
class StageFeedback:
    """What reviewers said about a stage, laid out for the team's page: ``summary`` at the top
    (the decision's reasons not tied to a question, the count of open threads), ``by_question``
    beside each question, ``forms`` outside the stage form (reply and resolve forms cannot nest
    inside it; their fields point at them with form="…")."""

    summary: str = ""
    by_question: dict[str, str] = field(default_factory=dict)
    forms: str = ""
    open_threads: list[OpenThread] = field(default_factory=list)
    changes_requested: bool = False


FeedbackProvider = Callable[..., StageFeedback | None]
_feedback_providers: list[FeedbackProvider] = []


def register_stage_feedback(provider: FeedbackProvider) -> FeedbackProvider:
    if provider not in _feedback_providers:
        _feedback_providers.append(provider)
    return provider


def stage_feedback(request: HttpRequest, stage: Any, *, next_url: str) -> StageFeedback:
    """The review layer's feedback on ``stage`` (empty where no layer provides any)."""
    combined = StageFeedback()
    for provider in _feedback_providers:
        found = provider(request, stage, next_url=next_url)
        if found is None:
            continue
        combined.summary += found.summary
        for key, html in found.by_question.items():
            combined.by_question[key] = combined.by_question.get(key, "") + html
        combined.forms += found.forms
        combined.open_threads.extend(found.open_threads)
        combined.changes_requested = combined.changes_requested or found.changes_requested
    # Each part was rendered by a template (so escaped); joining strings drops the mark.
    combined.summary = mark_safe(combined.summary)
    combined.forms = mark_safe(combined.forms)
    combined.by_question = {k: mark_safe(v) for k, v in combined.by_question.items()}
    return combined
