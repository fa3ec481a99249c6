from __future__ import annotations

from typing import Any

from django import template
from django.utils.safestring import SafeString

from lifecycle.diffs import answer_text
from lifecycle.markdown import render_markdown

register = template.Library()

STATUS_BADGES = {
    "locked": "text-bg-secondary",
    "drafting": "text-bg-info",
    "in_review": "text-bg-warning",
    "changes_requested": "text-bg-danger",
    "approved": "text-bg-success",
    "closed": "text-bg-dark",
    "not_reached": "text-bg-light border",
    "withdrawn": "text-bg-light border",
}


@register.filter
def markdown(value: str | None) -> SafeString:
    return render_markdown(value)


@register.filter
def status_badge(status: str) -> str:
    return STATUS_BADGES.get(status, "text-bg-light")


@register.filter
def get_item(mapping: Any, key: str) -> Any:
    try:
        return mapping.get(key)
    except AttributeError:
        return None


@register.simple_tag
def answer_as_text(question: Any, answers: Any) -> str:
    return answer_text(question, (answers or {}).get(question.key))


@register.simple_tag(takes_context=True)
def stage_panels(context: Any, stage: Any) -> SafeString:
    from lifecycle.panels import render_stage_panels

    return render_stage_panels(context["request"], stage)
