"""The late policy in a real browser: the instructor sets a stage's due date and a penalty per
day, grants one team an extension, the team reads its own due date and the rule on its project
page, and the instructor downloads the grades CSV (every page checked by axe and the CSP)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone
from factories import PASSWORD, current_stage, fill_and_submit
from grading_support import grade_stages, set_grade

from grading.models import DueDateExtension, GradingSettings, StageDueDate

pytestmark = pytest.mark.django_db(transaction=True)


def test_staff_set_a_due_date_and_penalty_grant_an_extension_and_download_the_grades(
    personas, open_session, artifacts
):
    p = personas
    first, _ = grade_stages(p.course)
    due = timezone.localtime(timezone.now() + dt.timedelta(days=7)).replace(
        hour=23, minute=59, second=0, microsecond=0
    )
    extended = due + dt.timedelta(days=3)

    ian = open_session()
    ian.sign_in("ian@example.test", PASSWORD)
    page = ian.go(reverse("lifecycle:course_detail", args=[p.course.pk]))
    page.get_by_role("link", name="Late policy").click()
    page.wait_for_load_state()

    rule = page.locator("#late-rule-form")
    rule.get_by_label("A percentage per day late, up to a cap").check()
    rule.get_by_label("Penalty per day late (%)").fill("10")
    rule.get_by_label("Cap (%)").fill("30")
    rule.get_by_role("button", name="Save the late rule").click()
    page.wait_for_load_state()
    assert "The late rule is saved" in page.locator("#messages").inner_text()
    assert "loses 10 % of its grade" in page.locator("#late-rule-now").inner_text()

    page.locator(f"#id_due_{first.key}").fill(due.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="Save the due dates").click()
    page.wait_for_load_state()
    assert "The due dates are saved" in page.locator("#messages").inner_text()

    grant = page.locator("#extension-form")
    grant.get_by_label("Team (project)").select_option(label="Triage assistant")
    grant.get_by_label("Stage").select_option(value=first.key)
    grant.get_by_label("New due date").fill(extended.strftime("%Y-%m-%dT%H:%M"))
    grant.get_by_label("Reason").fill("Two of the team were ill")
    grant.get_by_role("button", name="Grant the extension").click()
    page.wait_for_load_state()
    assert page.locator(".extension-row").count() == 1
    assert "Two of the team were ill" in page.locator("#extension-table").inner_text()
    page.screenshot(path=str(artifacts / "late-policy.png"), full_page=True)

    settings_row = GradingSettings.objects.get(course=p.course)
    assert (settings_row.late_rule, settings_row.late_cap_percent) == ("per_day", 30)
    assert StageDueDate.objects.get(course=p.course, stage_key=first.key).due_at == due
    assert DueDateExtension.objects.get(project=p.project).due_at == extended

    alice = open_session()
    alice.sign_in("alice@example.test", PASSWORD)
    team_page = alice.go(reverse("lifecycle:project_detail", args=[p.project.pk]))
    panel = team_page.locator(".due-panel")
    text = panel.inner_text()
    assert f"Due {due.day} {due:%b %Y, %H:%M}" in text
    assert f"extended to {extended.day} {extended:%b %Y, %H:%M}" in text
    assert "Two of the team were ill" in text
    assert "loses 10 % of its grade for each day or part of a day" in text
    assert "up to 30 %" in text
    team_page.screenshot(path=str(artifacts / "late-policy-team.png"), full_page=True)

    # A moderated grade (set by the rubric pages' services in the app), then the download.
    stage = current_stage(p.project)
    fill_and_submit(stage, p.alice)
    set_grade(stage, points="9", moderator=p.ian)
    page = ian.go(reverse("grading:late_policy", args=[p.course.pk]))
    with page.expect_download() as info:
        page.get_by_role("link", name="Download the grades (CSV)").click()
    path = info.value.path()
    rows = list(csv.DictReader(io.StringIO(Path(path).read_text(encoding="utf-8"))))
    by_email = {row["email"]: row for row in rows}
    assert set(by_email) == {"alice@example.test", "bob@example.test", "carol@example.test"}
    column = f"1. {first.title} (max 10.00)"
    assert by_email["alice@example.test"][column] == "9.00"
    assert by_email["carol@example.test"][column] == ""
