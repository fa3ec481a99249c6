"""Two teammates editing one draft in two browsers: the second is shown the conflict."""

from __future__ import annotations

import re

import pytest
from factories import PASSWORD

from lifecycle.models import ProjectStage

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_teammate_editing_the_same_draft_is_shown_the_conflict(personas, open_session, artifacts):
    stage = ProjectStage.objects.select_related("definition").get(
        project=personas.project, cycle=1, definition__order=1
    )
    path = stage.get_absolute_url()
    key = "problem-statement"

    alice, bob = open_session(), open_session()
    alice.sign_in("alice@example.test", PASSWORD)
    bob.sign_in("bob@example.test", PASSWORD)
    a_page, b_page = alice.go(path), bob.go(path)  # both start from version 0

    a_page.locator(f"#id_{key}").fill("Nurses triage referrals by hand (Alice).")
    a_page.locator("#save-status").filter(has_text=re.compile(r"Saved \d\d:\d\d")).wait_for()

    b_page.locator(f"#id_{key}").fill("Referrals wait days before anyone reads them (Bob).")
    b_page.get_by_role("button", name="Review the conflict").wait_for()
    b_page.get_by_role("button", name="Review the conflict").click()
    b_page.wait_for_load_state()

    conflict = b_page.locator("#conflict")
    conflict.wait_for()
    assert "Alice" in conflict.inner_text()
    assert "Nurses triage referrals by hand (Alice)." in conflict.inner_text()
    assert "Referrals wait days before anyone reads them (Bob)." in conflict.inner_text()
    b_page.screenshot(path=str(artifacts / "stage-conflict.png"), full_page=True)
    stage.refresh_from_db()
    assert stage.draft_answers[key] == "Nurses triage referrals by hand (Alice)."

    b_page.get_by_label("Use theirs").check()
    b_page.get_by_role("button", name="Save the merged draft").click()
    b_page.wait_for_load_state()
    assert "Draft saved" in b_page.locator("#messages").inner_text()
    stage.refresh_from_db()
    assert stage.draft_answers[key] == "Nurses triage referrals by hand (Alice)."
    assert stage.draft_version == 2 or stage.draft_version == 1


def test_autosave_keeps_the_draft_across_a_reload(personas, open_session, artifacts):
    stage = ProjectStage.objects.select_related("definition").get(
        project=personas.project, cycle=1, definition__order=1
    )
    alice = open_session()
    alice.sign_in("alice@example.test", PASSWORD)
    page = alice.go(stage.get_absolute_url())
    page.locator("#id_problem-statement").fill("Typed, never clicked save.")
    page.locator("#id_problem-statement").blur()
    page.locator("#save-status").filter(has_text=re.compile(r"Saved \d\d:\d\d")).wait_for()
    page.reload()
    assert page.locator("#id_problem-statement").input_value() == "Typed, never clicked save."
    page.screenshot(path=str(artifacts / "stage-page.png"), full_page=True)
