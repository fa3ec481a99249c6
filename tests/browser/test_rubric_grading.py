"""Grading in real browsers: a TA and a domain expert score stage 1 with their decisions, the
instructor moderates from the reviewers' scores side by side, and the team sees its grade
on the stage page, and the grades CSV has it."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from factories import PASSWORD
from rubric_support import grading_on, stage_one_in_review

from grading.models import CriterionScore, StageGrade, TeamSees

pytestmark = pytest.mark.django_db(transaction=True)


def score_and_approve(page, levels: dict[str, str]) -> None:
    form = page.locator("#decision-form")
    for criterion, label in levels.items():
        form.locator(f"#criterion-{criterion}").get_by_label(label, exact=True).check()
    form.get_by_label("Approve").check()
    form.get_by_role("button", name=re.compile("Record my decision")).click()
    page.wait_for_load_state()


def test_a_ta_and_an_expert_score_the_instructor_moderates_and_the_team_sees_its_grade(
    personas, open_session, artifacts
):
    p = personas
    grading_on(p.course, team_sees=TeamSees.PROVISIONAL)
    stage, _ = stage_one_in_review(p)
    review_url = f"/reviews/stages/{stage.pk}/"

    tina = open_session()
    tina.sign_in("tina@example.test", PASSWORD)
    page = tina.go(review_url)
    # A criterion left out is refused next to it, and nothing is recorded.
    form = page.locator("#decision-form")
    form.locator("#criterion-stakeholders").get_by_label("3 · Thorough", exact=True).check()
    form.get_by_label("Approve").check()
    form.get_by_role("button", name=re.compile("Record my decision")).click()
    page.wait_for_load_state()
    assert "Score this criterion." in page.locator("#criterion-can-be-done").inner_text()
    assert not CriterionScore.objects.exists()
    score_and_approve(
        page,
        {
            "stakeholders": "3 · Thorough",
            "can-be-done": "2 · Adequate",
            "should-be-done": "2 · Adequate",
        },
    )
    assert CriterionScore.objects.filter(decision__reviewer=p.tina).count() == 3

    erin = open_session()
    erin.sign_in("erin@example.test", PASSWORD)
    page = erin.go(review_url)
    page.screenshot(path=str(artifacts / "rubric-review-page.png"), full_page=True)
    score_and_approve(
        page,
        {
            "stakeholders": "1 · Superficial",
            "can-be-done": "2 · Adequate",
            "should-be-done": "3 · Thorough",
        },
    )

    ian = open_session()
    ian.sign_in("ian@example.test", PASSWORD)
    page = ian.go(f"/grading/stages/{stage.pk}/")
    table = page.locator("#stage-scores")
    assert table.locator("[data-role=staff]").count() == 1
    assert table.locator("[data-role=expert]").count() == 1
    assert page.locator("[data-criterion=stakeholders][data-disagree=true]").count() == 1
    assert "6.50" in page.locator("#suggested-grade").inner_text()  # totals 7 and 6
    page.screenshot(path=str(artifacts / "moderation-page.png"), full_page=True)
    grade_form = page.locator("#grade-form")
    grade_form.get_by_label("Grade (points)").fill("7")
    grade_form.get_by_label("Comment to the team").fill("Clear stakeholders; argue 'should'.")
    grade_form.get_by_label("Release to the team").check()
    grade_form.get_by_role("button", name="Set the grade").click()
    page.wait_for_load_state()
    assert "7.00 / 9.00" in page.locator("#standing-grade").inner_text()
    grade = StageGrade.objects.get(replaced_at__isnull=True)
    assert (grade.final_points, grade.moderator, grade.released) == (7, p.ian, True)
    page = ian.go(f"/grading/courses/{p.course.pk}/")
    assert "7.00 / 9.00" in page.locator("#course-grades").inner_text()
    # The gradebook's CSV has the moderated grade under the stage's column.
    with page.expect_download() as info:
        page.get_by_role("link", name="Download the grades (CSV)").click()
    rows = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text(encoding="utf-8"))))
    by_email = {row["email"]: row for row in rows}
    column = f"1. {stage.definition.title} (max 9.00)"
    assert by_email["alice@example.test"][column] == "7.00"
    assert by_email["carol@example.test"][column] == ""

    alice = open_session()
    alice.sign_in("alice@example.test", PASSWORD)
    page = alice.go(stage.get_absolute_url())
    panel = page.locator("#grade-panel")
    assert "7.00 / 9.00" in panel.inner_text()
    assert "argue 'should'" in panel.inner_text()
    assert panel.locator("#team-scores th[scope=col]").count() == 3  # criterion + 2 reviewers
    panel.screenshot(path=str(artifacts / "team-grade-panel.png"))
