"""Issue 11, item 9: the loop-back form defaults to the earliest stage the team ticked under
"Which stages should we revisit?" on the Iterate stage."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from factories import advance_to

from lifecycle import services

pytestmark = pytest.mark.django_db


def _selected_target(html: str) -> str | None:
    select = re.search(r'<select name="to_order".*?</select>', html, flags=re.S)
    assert select, "the loop-back form is on the page"
    chosen = re.search(r'<option value="(\d+)"[^>]*selected', select.group(0))
    return chosen.group(1) if chosen else None


def _tick(stage, actor, titles):
    stage.refresh_from_db()
    services.stage_save_draft(
        stage=stage,
        actor=actor,
        answers={"stages-to-revisit": titles},
        base_version=stage.draft_version,
    )


def test_the_loop_back_target_defaults_to_the_earliest_stage_ticked_for_revisiting(personas):
    stage = advance_to(personas.project, 7, team_member=personas.alice, reviewer=personas.tina)
    titles = {d.order: d.title for d in personas.project.template.stages.all()}
    _tick(stage, personas.alice, [titles[5], titles[3]])
    client = Client()
    client.force_login(personas.bob)
    html = client.get(personas.project.get_absolute_url()).content.decode()
    assert _selected_target(html) == "3"


def test_without_a_ticked_stage_the_form_keeps_its_first_option(personas):
    stage = advance_to(personas.project, 7, team_member=personas.alice, reviewer=personas.tina)
    _tick(stage, personas.alice, ["None"])
    client = Client()
    client.force_login(personas.alice)
    html = client.get(personas.project.get_absolute_url()).content.decode()
    assert _selected_target(html) is None
