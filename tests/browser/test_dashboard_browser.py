"""The board in a real browser: an instructor finds the overdue projects, nudges two teams and
drills down into a stage (and into the project's dossier, where that page exists)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from factories import PASSWORD, UserFactory, current_stage, enrol, fill_and_submit

from lifecycle import services as lifecycle_services
from lifecycle.models import AuditEvent, ProjectStage, Role
from notifications.models import Notification, NotificationKind
from reviews import services

pytestmark = pytest.mark.django_db(transaction=True)


def dossier_path(project) -> str | None:
    for name in ("lifecycle:project_dossier", "reviews:project_dossier"):
        try:
            return reverse(name, args=[project.pk])
        except NoReverseMatch:
            continue
    return None


def test_an_instructor_filters_to_overdue_nudges_two_teams_and_drills_down(
    personas, open_session, artifacts
):
    p = personas
    yesterday = timezone.localdate() - dt.timedelta(days=1)
    # Triage assistant: in review, Ian's review overdue. Crop yield forecaster: stage 1 due
    # yesterday, still drafting. Bus delays: nothing due.
    stage = current_stage(p.project)
    services.assignment_create(
        project=p.project,
        actor=p.tina,
        reviewer=p.ian,
        role="staff",
        stage_definition=stage.definition,
        due_date=yesterday,
    )
    fill_and_submit(stage, p.alice)
    lifecycle_services.stage_set_due_date(
        stage=current_stage(p.other_project), actor=p.tina, due_date=yesterday
    )
    dave = UserFactory(email="dave@example.test", display_name="Dave")
    enrol(p.course, dave, Role.STUDENT)
    lifecycle_services.project_create(course=p.course, actor=dave, title="Bus delays")

    ian = open_session()
    ian.sign_in("ian@example.test", PASSWORD)
    page = ian.go(reverse("lifecycle:course_detail", args=[p.course.pk]))
    page.get_by_role("link", name="Dashboard").click()
    page.wait_for_load_state()
    assert page.locator("#board tbody tr").count() == 3
    assert page.locator('[data-count="overdue"]').inner_text() == "2 overdue"
    page.screenshot(path=str(artifacts / "dashboard-board.png"), full_page=True)

    page.locator("#board-filters").get_by_label("Overdue only").check()
    page.locator("#board-filters").get_by_role("button", name="Apply").click()
    page.wait_for_load_state()
    rows = page.locator("#board tbody tr")
    assert rows.count() == 2
    assert "overdue=1" in page.url
    page.screenshot(path=str(artifacts / "dashboard-overdue.png"), full_page=True)

    page.get_by_label("Select Triage assistant").check()
    page.get_by_label("Select Crop yield forecaster").check()
    page.locator("#bulk-form").get_by_label("Message").fill("Stage 1 was due yesterday.")
    page.get_by_role("button", name="Nudge selected").click()
    page.wait_for_load_state()
    assert "overdue=1" in page.url  # back to the same filtered board
    notice = page.locator("#messages").inner_text()
    assert "Nudge: Crop yield forecaster, Triage assistant." in notice
    nudges = Notification.objects.filter(kind=NotificationKind.NUDGE)
    assert sorted(n.recipient.email for n in nudges) == [
        "alice@example.test",
        "bob@example.test",
        "carol@example.test",
    ]
    assert AuditEvent.objects.filter(verb="project.nudge").count() == 2

    in_review = ProjectStage.objects.get(project=p.project, cycle=1, definition__order=1)
    row = page.locator(f'#board tr[data-project="{p.project.pk}"]')
    row.locator('td[data-order="1"] a').click()
    page.wait_for_load_state()
    assert page.url.endswith(reverse("reviews:review_stage", args=[in_review.pk]))
    assert page.locator("#decision-form").count() == 1

    path = dossier_path(p.project)
    if path is not None:
        page = ian.go(path)
        assert p.project.title in page.content()
