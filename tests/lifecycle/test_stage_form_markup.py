"""The stage form is printed by one hand-written template (lifecycle/partials/stage_form.html),
not by crispy per field: the same markup as crispy's bootstrap5 pack for every question kind,
empty or filled, editable or not, with and without errors; and the page caches it by the
stage's draft version, so a saved change is never shown stale."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest
from django.core.cache import cache
from django.template import Context, Template
from django.template.loader import render_to_string
from django.test import Client
from django.urls import reverse
from factories import fill_and_submit

from lifecycle import services
from lifecycle.forms import StageAnswersForm
from lifecycle.models import Question, QuestionKind, StageStatus


class _Markup(HTMLParser):
    """Tags with their attributes as sets, and text without surrounding whitespace: what a
    browser builds, not how the source is indented."""

    def __init__(self) -> None:
        super().__init__()
        self.items: list[tuple[Any, ...]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.items.append(("start", tag, tuple(sorted(attrs, key=lambda a: a[0]))))

    def handle_endtag(self, tag: str) -> None:
        self.items.append(("end", tag))

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.items.append(("text", " ".join(data.split())))


def _markup(html: str) -> list[tuple[Any, ...]]:
    parser = _Markup()
    parser.feed(html)
    return parser.items


def _questions() -> list[Question]:
    return [
        Question(
            key=f"q{i}",
            kind=kind,
            prompt=f"Prompt <{kind}> & more",
            help_text=f"Help for {kind}" if i % 2 else "",
            required=bool(i % 2),
            choices=["a", "b <c>"] if "choice" in kind else [],
            order=i,
        )
        for i, kind in enumerate(QuestionKind.values)
    ]


ANSWERS = {
    "q0": "short <b>",
    "q1": "long\ntext & more",
    "q2": {"choice": "yes", "justification": "because"},
    "q3": "b <c>",
    "q4": ["a", "b <c>"],
    "q5": "3.5",
    "q6": "https://example.org/?a=1&b=2",
    "q7": "2026-01-02",
}
BAD = {
    "draft_version": "3",
    "q0": "x" * 501,
    "q2__choice": "maybe",
    "q3": "zz",
    "q4": ["zz"],
    "q5": "not a number",
    "q6": "not a url",
    "q7": "someday",
}


def _forms() -> list[tuple[str, StageAnswersForm]]:
    questions = _questions()
    forms = []
    for disabled in (False, True):
        for answers in ({}, ANSWERS):
            initial = StageAnswersForm.initial_from_answers(answers, questions, 3)
            forms.append(
                (
                    f"unbound disabled={disabled} answers={bool(answers)}",
                    StageAnswersForm(initial=initial, questions=questions, disabled=disabled),
                )
            )
        bound = StageAnswersForm(BAD, questions=questions, disabled=disabled)
        bound.is_valid()
        forms.append((f"bound with errors disabled={disabled}", bound))
    return forms


@pytest.mark.parametrize("name,form", _forms(), ids=lambda v: v if isinstance(v, str) else "")
def test_the_hand_written_form_prints_what_crispy_printed(name, form):
    crispy = Template("{% load crispy_forms_tags %}{% crispy form %}").render(
        Context({"form": form})
    )
    mine = render_to_string("lifecycle/partials/stage_form.html", {"form": form})
    assert _markup(mine) == _markup(crispy), name
    if form.is_bound and not form.fields["q5"].disabled:
        assert "is-invalid" in mine and "Enter a number." in mine


def test_every_question_kind_is_covered():
    assert {q.kind for q in _questions()} == set(QuestionKind.values)


# --- the page caches the form by the draft's version ---------------------------------------


def _stage_url(stage) -> str:
    return reverse(
        "lifecycle:stage_detail", args=[stage.project_id, stage.cycle, stage.definition.key]
    )


def _long_text_key(stage) -> str:
    return stage.definition.questions.filter(kind=QuestionKind.LONG_TEXT).values_list(
        "key", flat=True
    )[0]


@pytest.mark.django_db
def test_the_form_is_cached_and_a_saved_change_is_never_shown_stale(personas):
    stage = personas.project.stages.select_related("definition").get(definition__order=1, cycle=1)
    key = _long_text_key(stage)
    client = Client()
    client.force_login(personas.alice)
    cache.clear()
    first = _form_part(client.get(_stage_url(stage)).content.decode())
    assert any("stage-form:" in k for k in _cache_keys())
    assert _form_part(client.get(_stage_url(stage)).content.decode()) == first  # cached

    services.stage_save_draft(
        stage=stage, actor=personas.bob, answers={key: "Bob's new text"}, base_version=0
    )
    page = client.get(_stage_url(stage)).content.decode()
    assert "Bob&#x27;s new text" in page
    assert 'name="draft_version" value="1"' in page

    # Submitted: read-only for the team now.
    fill_and_submit(stage, personas.alice)
    stage.refresh_from_db()
    assert stage.status == StageStatus.IN_REVIEW
    page = client.get(_stage_url(stage)).content.decode()
    assert f'name="{key}"' in page
    field = page[page.index(f'id="id_{key}"') - 400 : page.index(f'id="id_{key}"')]
    assert " disabled" in field


def _form_part(page: str) -> str:
    start = page.index('id="stage-form"')
    return re.sub(
        r'name="csrfmiddlewaretoken" value="[^"]*"', "", page[start : page.index("</form>", start)]
    )


def _cache_keys() -> list[str]:
    return [str(k) for k in getattr(cache, "_cache", {})]
