"""The review gate in real browsers: a TA assigns, the team invites an expert who accepts by
e-mail, asks for changes on a question, the team resubmits, both approve, stage 2 opens."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from factories import PASSWORD, fill_and_submit

from lifecycle.models import Project, ProjectStage, StageStatus

pytestmark = pytest.mark.django_db(transaction=True)


def decide(page, outcome_label: str, comment: str = "", about: str | None = None) -> None:
    form = page.locator("#decision-form")
    form.get_by_label(outcome_label).check()
    if comment:
        form.get_by_label("Comment").fill(comment)
    if about:
        form.get_by_label("About").select_option(value=about)
    form.get_by_role("button", name=re.compile("Record my decision|Change my decision")).click()
    page.wait_for_load_state()


def test_an_invited_expert_and_a_ta_pass_stage_one_after_one_round_of_changes(
    personas, open_session, artifacts
):
    p = personas
    stage = ProjectStage.objects.select_related("definition").get(
        project=p.project, cycle=1, definition__order=1
    )
    fill_and_submit(stage, p.alice)
    reviewers_url = f"/reviews/projects/{p.project.pk}/reviewers/"

    tina = open_session()
    tina.sign_in("tina@example.test", PASSWORD)
    page = tina.go(reviewers_url)
    assign = page.locator("#assign-form")
    assign.get_by_label("Reviewer").select_option(value=str(p.tina.pk))
    assign.get_by_label("Reviews").select_option(value=str(stage.definition_id))
    assign.get_by_role("button", name="Assign the reviewer").click()
    page.wait_for_load_state()
    assert p.project.assignments.filter(reviewer=p.tina, state="active").exists()

    alice = open_session()
    alice.sign_in("alice@example.test", PASSWORD)
    page = alice.go(reviewers_url)
    invite = page.locator("#invite-form")
    invite.get_by_label("E-mail address").fill("dr.chen@example.org")
    invite.get_by_label("Name").fill("Dr Mei Chen")
    invite.get_by_label("Reviews").select_option(value=str(stage.definition_id))
    invite.get_by_role("button", name="Send the invitation").click()
    page.wait_for_load_state()

    letter = next(m for m in mail.outbox if "dr.chen@example.org" in m.to)
    link = re.search(r"https?://[^\s]+/reviews/invitations/[^\s/]+/", letter.body).group(0)
    path = "/reviews/" + link.split("/reviews/", 1)[1]

    expert = open_session()  # a fresh browser context: nobody signed in
    page = expert.go(path)
    page.get_by_label("Your name").fill("Dr Mei Chen")
    page.locator("#id_password1").fill("paediatrics-and-ml-2026")
    page.locator("#id_password2").fill("paediatrics-and-ml-2026")
    page.get_by_role("button", name="Create my account and accept").click()
    page.wait_for_load_state()
    assert page.url.endswith(f"/reviews/stages/{stage.pk}/")
    # An expert the team proposed: first the conflict-of-interest declaration, then staff
    # confirm them as independent before their decisions count.
    declaration = page.locator("#conflict-form")
    declaration.get_by_label(re.compile("I have no conflict of interest")).check()
    declaration.get_by_role("button", name="Record my declaration").click()
    page.wait_for_load_state()
    assert "not yet confirmed you as an independent expert" in page.content()
    staff_page = tina.go(reviewers_url)
    assert "declares no conflict of interest" in staff_page.content()
    staff_page.get_by_role("button", name=re.compile("Confirm as independent")).click()
    staff_page.wait_for_load_state()
    page = expert.go(f"/reviews/stages/{stage.pk}/")
    decide(
        page, "Request changes", "Which clinics does the data come from?", about="problem-statement"
    )
    page.screenshot(path=str(artifacts / "review-page.png"), full_page=True)
    stage.refresh_from_db()
    assert stage.status == StageStatus.CHANGES_REQUESTED

    page = alice.go(stage.get_absolute_url())
    page.locator("#id_problem-statement").fill(
        "Referrals from three rural and two city clinics pile up for days."
    )
    page.get_by_role("button", name=re.compile("Save and submit")).click()
    page.wait_for_load_state()
    # After a request for changes the team answers the reviewers before resubmitting.
    page.get_by_label("Your response to the reviewers").fill(
        "We named the five clinics in the problem statement."
    )
    page.get_by_role("button", name="Resubmit with this response").click()
    page.wait_for_load_state()
    stage.refresh_from_db()
    assert stage.status == StageStatus.IN_REVIEW and stage.current_revision.number == 2

    page = expert.go(f"/reviews/stages/{stage.pk}/")
    assert "rural" in page.content()
    decide(page, "Approve")
    page = tina.go(f"/reviews/stages/{stage.pk}/")
    decide(page, "Approve")

    stage.refresh_from_db()
    assert stage.status == StageStatus.APPROVED
    project = Project.objects.get(pk=p.project.pk)
    assert project.current_stage.definition.order == 2
    page = alice.go(stage.get_absolute_url())
    page.locator("#gate-panel").screenshot(path=str(artifacts / "gate-panel.png"))
    assert "passed" in page.locator("#gate-panel").inner_text().lower()
