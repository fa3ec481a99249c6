"""A new student's first project, in a real browser; and the Iterate stage's loop back."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from factories import PASSWORD, advance_to, sample_answer

from lifecycle.models import Project, ProjectStage, QuestionKind, StageStatus

pytestmark = pytest.mark.django_db(transaction=True)


def fill_stage(page, stage: ProjectStage) -> dict[str, str]:
    """Answer every question of the stage through its form; returns the text typed."""
    typed = {}
    for q in stage.definition.questions.all():
        if q.kind == QuestionKind.YES_NO_UNSURE:
            page.locator(f"#id_{q.key}__choice_2").check()  # unsure
            text = f"We are unsure about {q.key}: we asked our expert."
            page.locator(f"#id_{q.key}__justification").fill(text)
            typed[q.key + "__justification"] = text
        elif q.kind == QuestionKind.MULTIPLE_CHOICE or q.kind == QuestionKind.SINGLE_CHOICE:
            page.locator(f"#id_{q.key}_0").check()
        elif q.kind in (QuestionKind.SHORT_TEXT, QuestionKind.LONG_TEXT):
            text = f"Our answer to {q.key}."
            page.locator(f"#id_{q.key}").fill(text)
            typed[q.key] = text
        else:
            page.locator(f"#id_{q.key}").fill(str(sample_answer(q.kind, q.choices)))
    return typed


def add_stakeholder(page, name: str, kind_label: str, interests: str) -> None:
    page.locator("#id_name").fill(name)
    page.locator("#id_kind").select_option(label=kind_label)
    page.locator("#id_interests").fill(interests)
    page.locator("#add-title ~ * [type=submit], form [type=submit]").last.click()
    page.wait_for_load_state()


def test_a_new_student_joins_starts_a_project_fills_stage_one_and_submits(
    personas, open_session, artifacts
):
    code = personas.course.join_code
    dana = open_session()
    page = dana.go(f"/accounts/signup/?code={code}")
    page.locator("#id_email").fill("dana@example.test")
    page.locator("#id_display_name").fill("Dana")
    page.locator("#id_password1").fill("a-long-pass-phrase-2026")
    page.locator("#id_password2").fill("a-long-pass-phrase-2026")
    page.get_by_role("button", name="Create account").click()
    page.wait_for_load_state()
    assert "Verify your e-mail address" in page.content()
    # The e-mailed link verifies the address and joins the course with the code given.
    letter = next(m for m in mail.outbox if "dana@example.test" in m.to)
    link = re.search(r"https?://[^\s]+(/accounts/verify/[^\s/]+/)", letter.body).group(1)
    page = dana.go(link)
    assert personas.course.title in page.content()

    page.get_by_role("link", name="Start a project").first.click()
    page.locator("#id_title").fill("Flood warning from river gauges")
    page.locator("#id_summary").fill("Warn villages downstream a day earlier.")
    page.get_by_label(re.compile("Bob")).check()
    page.get_by_role("button", name="Start the project").click()
    page.wait_for_load_state()

    project = Project.objects.get(title="Flood warning from river gauges")
    assert set(project.members.values_list("email", flat=True)) == {
        "dana@example.test",
        "bob@example.test",
    }
    stage = ProjectStage.objects.select_related("definition").get(
        project=project, cycle=1, definition__order=1
    )
    assert page.url.endswith(stage.get_absolute_url())

    typed = fill_stage(page, stage)
    page.get_by_role("button", name="Save draft").click()
    page.wait_for_load_state()
    assert "Draft saved" in page.locator("#messages").inner_text()

    dana.go(f"/projects/{project.pk}/stakeholders/")
    add_stakeholder(page, "Villagers downstream", "Affected community", "Time to evacuate")
    add_stakeholder(page, "River authority", "Operator", "Fewer false alarms")
    assert project.stakeholders.count() == 2

    page = dana.go(stage.get_absolute_url())
    page.reload()
    for field, text in typed.items():
        assert page.locator(f"#id_{field}").input_value() == text  # the draft survived
    page.screenshot(path=str(artifacts / "stage-1-filled.png"), full_page=True)

    page.get_by_role("button", name=re.compile("Save and submit")).click()
    page.wait_for_load_state()
    page.get_by_role("button", name="Submit for review").click()
    page.wait_for_load_state()
    assert "submitted for review" in page.locator("#messages").inner_text()
    stage.refresh_from_db()
    assert stage.status == StageStatus.IN_REVIEW
    assert stage.current_revision.stakeholders[1]["name"] == "River authority"

    page = dana.go(project.get_absolute_url())
    assert "In review" in page.content()
    page.screenshot(path=str(artifacts / "project-overview.png"), full_page=True)


def test_a_student_on_stage_seven_loops_back_to_stage_three_and_sees_cycle_two(
    personas, open_session, artifacts
):
    advance_to(personas.project, 7, team_member=personas.alice, reviewer=personas.tina)
    alice = open_session()
    alice.sign_in("alice@example.test", PASSWORD)
    page = alice.go(personas.project.get_absolute_url())
    page.get_by_label("Loop back to stage").select_option(value="3")
    page.get_by_label("What did you learn, and why go back there?").fill(
        "Monitoring showed errors on night-time images; our data had none."
    )
    page.get_by_role("button", name="Start a new cycle").click()
    page.wait_for_load_state()

    personas.project.refresh_from_db()
    assert personas.project.cycle == 2
    stage3 = ProjectStage.objects.get(project=personas.project, cycle=2, definition__order=3)
    assert page.url.endswith(stage3.get_absolute_url())
    assert "Cycle 2" in page.content() or "cycle 2" in page.content()
    page = alice.go(personas.project.get_absolute_url())
    assert "Cycle 2" in page.content()
    page.screenshot(path=str(artifacts / "project-cycle-2.png"), full_page=True)
