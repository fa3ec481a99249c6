"""Issue 11, the whole loop in real browsers: a TA requests changes with a reason on one
question; the team sees the reason beside that question, replies there, revises and resubmits
with a response to the reviewers; the TA reads the response beside what changed since the
decision, and approves."""

from __future__ import annotations

import re

import pytest
from factories import PASSWORD, advance_to, fill_and_submit

from lifecycle.models import ProjectStage, QuestionKind, StageStatus
from reviews.models import Comment

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


def test_changes_requested_answered_resubmitted_and_approved(personas, open_session, artifacts):
    p = personas
    stage = advance_to(p.project, 2, team_member=p.alice, reviewer=p.tina)
    fill_and_submit(stage, p.alice)
    question = stage.definition.questions.filter(kind=QuestionKind.LONG_TEXT).order_by("order")[0]
    review_path = f"/reviews/stages/{stage.pk}/"
    reason = "Say how many labelled examples you can get, and from whom."

    # The TA asks for changes on one question, with the reason.
    tina = open_session()
    tina.sign_in("tina@example.test", PASSWORD)
    t_page = tina.go(review_path)
    decide(t_page, "Request changes", reason, about=question.key)
    stage.refresh_from_db()
    assert stage.status == StageStatus.CHANGES_REQUESTED

    # The team finds the reason beside the question, on the page where it revises.
    alice = open_session()
    alice.sign_in("alice@example.test", PASSWORD)
    a_page = alice.go(stage.get_absolute_url())
    beside = a_page.locator(f"#q-{question.key} .stage-feedback")
    beside.wait_for()
    assert reason in beside.inner_text()
    assert "What the reviewers asked you to change" in a_page.locator("#feedback").inner_text()
    beside.get_by_text("Reply to Tina", exact=True).click()
    beside.get_by_label("Your reply to Tina").fill(
        "About 2,000 from the ward's archive; we add it."
    )
    beside.get_by_role("button", name="Post the reply").click()
    a_page.wait_for_load_state()
    assert "Your comment was posted" in a_page.locator("#messages").inner_text()
    assert "2,000 from the ward" in a_page.locator(f"#q-{question.key}").inner_text()
    assert Comment.objects.filter(author=p.alice, question_key=question.key).exists()

    # Revise the answer (autosave), then resubmit with a response to the reviewers.
    field = a_page.locator(f"#id_{question.key}")
    field.fill("About 2,000 labelled referrals from the ward's archive, labelled by two nurses.")
    field.blur()
    a_page.locator("#save-status").filter(has_text=re.compile(r"Saved \d\d:\d\d")).wait_for()
    # caret="initial": Playwright otherwise hides carets with a style attribute, which an
    # htmx swap settling at that moment copies onto its new element (a CSP violation).
    a_page.screenshot(
        path=str(artifacts / "feedback-stage-page.png"), full_page=True, caret="initial"
    )
    a_page.get_by_role("button", name="Save and submit for review…").click()
    a_page.wait_for_load_state()
    a_page.get_by_role("button", name="Resubmit with this response").click()
    a_page.wait_for_load_state()
    assert "tell them, in a few sentences" in a_page.content()  # the response is asked for
    a_page.get_by_role("textbox", name=re.compile("^Your response to the reviewers")).fill(
        "We now say how many examples we have and who labels them."
    )
    a_page.get_by_role("button", name="Resubmit with this response").click()
    a_page.wait_for_load_state()
    stage.refresh_from_db()
    assert stage.status == StageStatus.IN_REVIEW
    assert stage.current_revision.number == 2

    # The TA reads the response at the top, beside what changed since the decision; approves.
    t_page = tina.go(review_path)
    response = t_page.locator("#response")
    assert "We now say how many examples we have" in response.inner_text()
    diff = t_page.locator("#diff")
    assert question.prompt in diff.inner_text()
    box = response.bounding_box()
    assert box is not None and box["y"] < diff.bounding_box()["y"]
    t_page.screenshot(
        path=str(artifacts / "feedback-review-page.png"), full_page=True, caret="initial"
    )
    decide(t_page, "Approve")
    stage = ProjectStage.objects.get(pk=stage.pk)
    assert stage.status == StageStatus.APPROVED
