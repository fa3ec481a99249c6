"""Issue 15, part 6, in real browsers: a team member rates a review's helpfulness and flags
another as unfair beside them on the stage page (htmx swaps the one review's box); the
instructor sees the figures per reviewer on the board and resolves the flag. axe-core checks
every page on load, and the swapped boxes after each update."""

from __future__ import annotations

import pytest
from factories import PASSWORD, reviewed_by_expert_and_ta

from lifecycle.models import ProjectStage
from reviews.models import FlagState, ReviewFlag, ReviewRating

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_team_rates_and_flags_a_review_and_staff_see_it_on_the_board(
    personas, open_session, artifacts
):
    p = personas
    stage, _, helpful, harsh = reviewed_by_expert_and_ta(
        p, changes_comment="Start again from scratch."
    )

    draft_version = ProjectStage.objects.get(pk=stage.pk).draft_version
    alice = open_session()
    alice.sign_in("alice@example.test", PASSWORD)
    page = alice.go(stage.get_absolute_url())

    # Rate Erin's review 4 of 5 with a note: only that review's box is swapped.
    box = page.locator(f"#quality-{helpful.pk}")
    box.get_by_label("4", exact=True).check()
    box.get_by_label("A short note on this review (optional)").fill("Named the gap precisely.")
    box.get_by_role("button", name="Save the rating").click()
    box = page.locator(f"#quality-{helpful.pk}")
    box.get_by_text("Your rating is saved.").wait_for()
    assert "You rated it 4 of 5." in box.inner_text()
    assert alice.axe(page) == []
    rating = ReviewRating.objects.get(decision=helpful, rater=p.alice)
    assert (rating.helpfulness, rating.note) == (4, "Named the gap precisely.")
    # Typing in the review's box is no draft edit: no autosave ran.
    assert ProjectStage.objects.get(pk=stage.pk).draft_version == draft_version

    # Flag Tina's review as unfair, with the reason.
    other = page.locator(f"#quality-{harsh.pk}")
    other.get_by_text("Flag this review as unfair").click()
    other.get_by_label("Why is this review unfair? Course staff read your reason.").fill(
        "It asks us to redo the approved stage without saying what is wrong."
    )
    other.get_by_role("button", name="Flag as unfair").click()
    other = page.locator(f"#quality-{harsh.pk}")
    other.get_by_text("You flagged this review as unfair:").wait_for()
    assert alice.axe(page) == []
    page.screenshot(path=str(artifacts / "quality-stage-page.png"), full_page=True, caret="initial")
    assert ReviewFlag.objects.get(decision=harsh).state == FlagState.OPEN

    # The instructor sees both on the board, then resolves the flag.
    ian = open_session()
    ian.sign_in("ian@example.test", PASSWORD)
    board = ian.go(f"/reviews/courses/{p.course.pk}/board/")
    table = board.locator("#reviewer-quality-table")
    erin_row = table.locator(f'tr[data-reviewer="{p.erin.pk}"]')
    assert "4.0" in erin_row.inner_text() and "(1 rating)" in erin_row.inner_text()
    tina_row = table.locator(f'tr[data-reviewer="{p.tina.pk}"]')
    assert tina_row.locator("td").last.inner_text().strip() == "1"
    board.screenshot(path=str(artifacts / "quality-board.png"), full_page=True, caret="initial")
    board.get_by_role("link", name="Read and resolve the flags").click()
    board.wait_for_load_state()
    assert "It asks us to redo the approved stage" in board.locator("main").inner_text()
    board.get_by_label("How was this resolved?").fill("Asked Tina to say what is wrong.")
    board.get_by_role("button", name="Resolve the flag by Alice").click()
    board.wait_for_load_state()
    assert "The flag is resolved" in board.locator("#messages").inner_text()
    assert ReviewFlag.objects.get(decision=harsh).state == FlagState.RESOLVED
