"""Evidence in real browsers: at stage 5 a team attaches a confusion-matrix image and a notebook,
links the image to a risk, submits; the invited expert sees both inline on the review page (the
image decoded, the notebook rendered in a sandboxed frame) and approves, as does the TA — all
under the strict Content-Security-Policy (open_session fails on any violation)."""

from __future__ import annotations

import re

import pytest
from evidence_samples import notebook, png
from factories import PASSWORD, advance_to, complete_answers, declare_no_conflict

from evidence.models import RevisionEvidence
from lifecycle import risks, services
from lifecycle.models import ProjectStage, StageStatus
from reviews import services as review_services

pytestmark = pytest.mark.django_db(transaction=True)


def decide(page, outcome_label: str) -> None:
    form = page.locator("#decision-form")
    form.get_by_label(outcome_label).check()
    form.get_by_role("button", name=re.compile("Record my decision|Change my decision")).click()
    page.wait_for_load_state()


def test_a_team_backs_stage_five_with_files_and_the_expert_approves_them_inline(
    personas, open_session, tmp_path
):
    p = personas
    stage = advance_to(p.project, 5, team_member=p.alice, reviewer=p.ian)
    risk = risks.risk_add(
        project=p.project,
        actor=p.alice,
        title="Missed referrals for patients over 65",
        likelihood=3,
        severity=5,
        mitigation="Per-subgroup threshold; a nurse reviews every negative over 65.",
        test_link="test-extensively/subgroup-margins",
        stakeholders=list(p.project.stakeholders.all()),
    )
    review_services.assignment_create(
        project=p.project,
        actor=p.tina,
        reviewer=p.erin,
        role="expert",
        stage_definition=stage.definition,
    )
    declare_no_conflict(p.project, p.erin)
    stage.refresh_from_db()
    services.stage_save_draft(
        stage=stage,
        actor=p.alice,
        answers=complete_answers(stage),
        base_version=stage.draft_version,
    )
    matrix = tmp_path / "confusion-matrix.png"
    matrix.write_bytes(png(64, 48))
    analysis = tmp_path / "subgroups.ipynb"
    analysis.write_bytes(notebook())

    alice = open_session()
    alice.sign_in("alice@example.test", PASSWORD)
    page = alice.go(stage.get_absolute_url())
    page.locator("#evidence-subgroup-margins").set_input_files(str(matrix))
    page.locator("#evidence-subgroup-margins").locator("xpath=..").get_by_role(
        "button", name="Attach"
    ).click()
    page.wait_for_load_state()
    assert "Attached confusion-matrix.png" in page.content()
    page.locator("#evidence-subgroup-margins").set_input_files(str(analysis))
    page.locator("#evidence-subgroup-margins").locator("xpath=..").get_by_role(
        "button", name="Attach"
    ).click()
    page.wait_for_load_state()
    assert "Attached subgroups.ipynb" in page.content()
    link_form = page.locator("form[action$='/risk/']").first
    link_form.get_by_label(re.compile("Risk that confusion-matrix.png")).select_option(
        value=str(risk.pk)
    )
    link_form.get_by_role("button", name="Link to risk").click()
    page.wait_for_load_state()
    assert "now backs the risk" in page.content()
    page.get_by_role("button", name=re.compile("Save and submit")).click()
    page.wait_for_load_state()
    page.get_by_role("button", name="Submit for review").click()
    page.wait_for_load_state()
    stage.refresh_from_db()
    assert stage.status == StageStatus.IN_REVIEW
    revision = stage.current_revision
    assert sorted(f["name"] for f in revision.evidence) == [
        "confusion-matrix.png",
        "subgroups.ipynb",
    ]
    assert revision.risks[0]["evidence"][0]["name"] == "confusion-matrix.png"

    erin = open_session()
    erin.sign_in("erin@example.test", PASSWORD)
    page = erin.go(f"/reviews/stages/{stage.pk}/")
    image = page.locator("img.evidence-image")
    image.wait_for()
    assert page.evaluate("(img) => img.complete && img.naturalWidth", image.element_handle()) == 64
    frame_element = page.locator("iframe.evidence-frame")
    assert frame_element.get_attribute("sandbox") == ""
    frame = frame_element.element_handle().content_frame()
    frame.wait_for_load_state()
    assert "Subgroup error rates" in frame.content()
    frozen = RevisionEvidence.objects.filter(revision=revision).count()
    assert frozen == 2
    decide(page, "Approve")

    tina = open_session()
    tina.sign_in("tina@example.test", PASSWORD)
    page = tina.go(f"/reviews/stages/{stage.pk}/")
    decide(page, "Approve")
    assert ProjectStage.objects.get(pk=stage.pk).status == StageStatus.APPROVED
