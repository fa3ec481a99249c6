"""Accessibility measured: every page of the demo a newcomer would open, as each demo persona,
checked by axe-core against WCAG 2.2 A and AA (the open_session fixture fails on any violation,
see conftest.py); and the pages a phone shows at 390 px never scroll sideways.

The demo data is the fixture on purpose: it is what a reviewer trying the app sees first, and it
puts a stage in every state the pages render (in review, changes requested with a thread,
looped back, concluded)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from lifecycle.models import Course, Project
from reviews.demo import ADMIN_EMAIL, DEMO_PASSWORD, seed_demo

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def demo() -> Course:
    course, _ = seed_demo()
    return course


def _project(title: str) -> Project:
    return Project.objects.select_related("current_stage__definition").get(title=title)


def _open(session, path: str):
    page = session.go(path)
    page.wait_for_load_state()
    return page


def _scrolls_sideways(page) -> int:
    """How many CSS pixels the document is wider than the viewport (0: no sideways scroll)."""
    return page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )


def test_every_page_a_reviewer_opens_passes_wcag_22_aa(demo, open_session):
    crops = _project("Crop disease detector")
    ta = open_session()
    page = ta.sign_in("ta@demo.test", DEMO_PASSWORD)
    assert page.locator("main").get_by_text("Crop disease detector").first.is_visible()
    page = _open(ta, reverse("reviews:inbox"))
    assert page.locator("main").get_by_text("Sepsis early warning").first.is_visible()
    _open(ta, reverse("reviews:review_stage", args=[crops.current_stage.pk]))
    _open(ta, reverse("reviews:board", args=[demo.pk]))
    _open(ta, reverse("reviews:project_reviewers", args=[crops.pk]))
    page = _open(ta, crops.get_absolute_url())
    page.locator("#nav-notifications").click()
    page.wait_for_load_state()
    _open(ta, reverse("accounts:profile"))

    expert = open_session()
    expert.sign_in("expert1@demo.test", DEMO_PASSWORD)
    sepsis = _project("Sepsis early warning")
    page = _open(expert, reverse("reviews:inbox"))
    page.locator("main").get_by_role("link", name="1. Identify a problem").first.click()
    page.wait_for_load_state()
    assert page.url.endswith(reverse("reviews:review_stage", args=[sepsis.current_stage.pk]))


def test_every_page_a_team_and_the_instructor_open_passes_wcag_22_aa(demo, open_session):
    triage = _project("Referral triage assistant")
    bail = _project("Bail risk scorer")
    team = open_session()
    team.sign_in("student1@demo.test", DEMO_PASSWORD)
    _open(team, triage.get_absolute_url())
    page = _open(team, triage.current_stage.get_absolute_url())
    assert page.locator("main").get_by_text("Changes requested").first.is_visible()
    stage = triage.current_stage
    _open(
        team,
        reverse("lifecycle:stage_revisions", args=[triage.pk, stage.cycle, stage.definition.key]),
    )
    _open(team, reverse("lifecycle:stakeholders", args=[triage.pk]))
    _open(team, reverse("reviews:project_reviewers", args=[triage.pk]))
    _open(team, reverse("lifecycle:course_detail", args=[demo.pk]))

    instructor = open_session()
    page = instructor.sign_in("instructor@demo.test", DEMO_PASSWORD)
    page.locator("main").get_by_role("link", name="Board").first.click()
    page.wait_for_load_state()
    assert page.url.endswith(reverse("reviews:board", args=[demo.pk]))
    _open(instructor, reverse("reviews:course_settings", args=[demo.pk]))
    _open(instructor, bail.get_absolute_url())

    visitor = open_session()
    _open(visitor, reverse("accounts:login"))
    _open(visitor, reverse("accounts:signup"))


def test_the_demo_site_admin_reaches_the_django_admin(demo, open_session):
    admin = open_session()
    page = admin.sign_in(ADMIN_EMAIL, DEMO_PASSWORD)
    page.get_by_role("link", name="Admin", exact=True).click()
    page.wait_for_load_state()
    assert page.url.endswith("/admin/")
    assert page.get_by_role("heading", name="Site administration").is_visible()


def test_on_a_390_px_phone_the_board_and_home_pages_do_not_scroll_sideways(demo, open_session):
    instructor = open_session(viewport=PHONE)
    page = instructor.sign_in("instructor@demo.test", DEMO_PASSWORD)
    assert _scrolls_sideways(page) == 0
    page = _open(instructor, reverse("reviews:board", args=[demo.pk]))
    assert page.locator("#board").is_visible()
    assert _scrolls_sideways(page) == 0
    team = open_session(viewport=PHONE)
    page = team.sign_in("student1@demo.test", DEMO_PASSWORD)
    assert _scrolls_sideways(page) == 0
    triage = _project("Referral triage assistant")
    page = _open(team, triage.get_absolute_url())
    assert _scrolls_sideways(page) == 0
