"""The side-by-side difference on a desktop and on a 390 px phone (issue 11, item 6): two
columns where there is room, stacked (earlier version first) on the phone, and never wider
than the screen."""

from __future__ import annotations

import pytest
from factories import PASSWORD, current_stage, fill_and_submit

from reviews import services as review_services

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "problem-statement"


def boxes(page) -> tuple[dict, dict]:
    section = page.locator(f'#diff .answer-diff[data-question="{KEY}"]')
    section.wait_for()
    return (
        section.locator(".diff-old").bounding_box(),
        section.locator(".diff-new").bounding_box(),
    )


def test_the_review_diff_is_side_by_side_on_a_desktop_and_stacked_on_a_phone(
    personas, open_session, artifacts
):
    p = personas
    stage = current_stage(p.project)
    first = fill_and_submit(stage, p.alice, **{KEY: "The nurses sort every referral by hand."})
    review_services.decision_record(
        revision=first, reviewer=p.tina, outcome="request_changes", comment="Who sorts?"
    )
    fill_and_submit(stage, p.alice, **{KEY: "The clinic staff sort urgent referrals by hand."})
    path = f"/reviews/stages/{stage.pk}/"

    tina = open_session()
    tina.sign_in(p.tina.email, PASSWORD)
    page = tina.go(path)
    old, new = boxes(page)
    assert abs(old["y"] - new["y"]) < 2 and new["x"] > old["x"] + old["width"] - 1
    assert page.locator(".diff-old del", has_text="nurses").count() == 1
    assert page.locator(".diff-new ins", has_text="clinic staff").count() == 1

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    old, new = boxes(page)
    assert new["y"] >= old["y"] + old["height"] - 1  # stacked: earlier first
    assert old["x"] + old["width"] <= 390 and new["x"] + new["width"] <= 390
    wide = page.evaluate("document.documentElement.scrollWidth")
    assert wide <= 390, f"the page scrolls sideways: {wide}px"
    page.locator("#diff").screenshot(path=str(artifacts / "diff-phone.png"))
