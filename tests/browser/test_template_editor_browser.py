"""The template editor in a real browser, without any JavaScript of its own: an instructor
copies the lecture's default template, adds a question with an owner, requires two expert
approvals when the risk tier is high, dry-runs the rule, adds it, saves the version and
migrates one running project."""

from __future__ import annotations

import pytest
from factories import PASSWORD, current_stage, fill_and_submit

from lifecycle.models import LifecycleTemplate

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_instructor_shapes_the_template_dry_runs_a_rule_and_migrates_a_project(
    personas, open_session, artifacts
):
    p = personas
    fill_and_submit(current_stage(p.project), p.alice)  # a project in review for the dry run
    ian = open_session()
    ian.sign_in("ian@example.test", PASSWORD)
    page = ian.go(f"/courses/{p.course.pk}/")
    page.locator("#template-editor-link").click()
    page.wait_for_load_state()

    start = page.locator("#template-start")
    start.get_by_label("Start from").select_option(value="default")
    start.get_by_role("button", name="Start a draft").click()
    page.wait_for_load_state()
    assert page.locator("#draft-stages li").count() == 7

    page.locator("#draft-stages li").first.get_by_role("link").click()
    page.wait_for_load_state()
    page.locator("#question-add").locator("xpath=..").locator("summary").click()
    add = page.locator("#question-add")
    add.get_by_label("Key").fill("consent-obtained")
    add.get_by_label("Prompt").fill("How did the people in the data consent?")
    add.get_by_label("Owner (expertise)").fill("ethics")
    add.get_by_role("button", name="Add the question").click()
    page.wait_for_load_state()
    assert "owner: ethics" in page.locator("#stage-questions").inner_text()

    rule = page.locator("#rule-form")
    rule.get_by_label("Kind").select_option(value="min_approvals")
    rule.get_by_label("Role").select_option(value="expert")
    rule.get_by_label("Count").fill("2")
    rule.get_by_label("High").check()
    rule.get_by_role("button", name="Dry run").click()
    page.wait_for_load_state()
    summary = page.locator("#dry-run-summary").inner_text()
    assert "1 project in review on this stage" in summary
    assert "Triage assistant" in page.locator("#dry-run").inner_text()

    rule = page.locator("#rule-form")
    rule.get_by_label("High").check()
    rule.get_by_role("button", name="Add the rule").click()
    page.wait_for_load_state()
    assert "2 approval(s) by expert" in page.locator("#stage-rules").inner_text()
    assert "risk tier is high" in page.locator("#stage-rules").inner_text()

    page = ian.go(f"/courses/{p.course.pk}/template/")
    page.locator("#template-publish").click()
    page.wait_for_load_state()
    template = LifecycleTemplate.objects.get(course=p.course)
    first = template.stages.get(order=1)
    assert first.question_owners == {"consent-obtained": "ethics"}
    assert first.gate_rules == [
        {
            "kind": "min_approvals",
            "count": 2,
            "role": "expert",
            "applies_if": {"risk_tier": ["high"]},
        }
    ]

    page.locator("#migrations-link").click()
    page.wait_for_load_state()
    preview = page.locator(".migration-preview", has_text="Triage assistant")
    assert "questions added consent-obtained" in preview.inner_text()
    preview.get_by_role("button", name="Migrate “Triage assistant”").click()
    page.wait_for_load_state()
    page.screenshot(path=str(artifacts / "template-editor-migrated.png"), full_page=True)
    p.project.refresh_from_db()
    p.other_project.refresh_from_db()
    assert p.project.template == template
    assert p.other_project.template != template
