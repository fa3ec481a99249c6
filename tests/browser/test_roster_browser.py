"""Rosters by upload in a real browser: a TA uploads a CSV with a team column, sees in the
preview who is new, who exists and which teams are created or joined, applies it, and finds the
teams on the roster and in the course; the invitations wait in the notifications outbox."""

from __future__ import annotations

import pytest
from factories import PASSWORD, UserFactory

from lifecycle.models import Project, RosterEntry
from notifications.models import Notification, NotificationKind

pytestmark = pytest.mark.django_db(transaction=True)

ROSTER = (
    "email,name,team\n"
    "known@example.test,Known Person,Vision\n"
    "new.one@example.test,New One,Vision\n"
    "dana@example.test,Dana,Triage assistant\n"
)


def test_a_ta_uploads_a_roster_with_teams_previews_it_and_applies_it(
    personas, open_session, artifacts
):
    p = personas
    UserFactory(email="known@example.test", display_name="Known Person")
    UserFactory(email="dana@example.test", display_name="Dana")
    tina = open_session()
    tina.sign_in("tina@example.test", PASSWORD)
    page = tina.go(f"/courses/{p.course.pk}/")
    page.locator("#roster-link").click()
    page.wait_for_load_state()

    upload = page.locator("#roster-upload")
    upload.get_by_label("Roster CSV").set_input_files(
        files=[{"name": "roster.csv", "mimeType": "text/csv", "buffer": ROSTER.encode()}]
    )
    upload.get_by_role("button", name="Preview").click()
    page.wait_for_load_state()
    rows = page.locator("#roster-preview tbody tr.roster-row")
    assert rows.count() == 3
    assert "new: invited by e-mail" in page.locator(".roster-new").inner_text()
    teams = page.locator("#roster-teams")
    vision = teams.locator('[data-team="Vision"]')
    assert "created now" in vision.inner_text()
    assert "joins when they accept the invitation" in vision.inner_text()
    assert (
        "joins the existing project" in teams.locator('[data-team="Triage assistant"]').inner_text()
    )
    page.screenshot(path=str(artifacts / "roster-preview.png"), full_page=True)
    assert not Project.objects.filter(title="Vision").exists()

    page.locator("#roster-apply").get_by_role("button", name="Apply the roster").click()
    page.wait_for_load_state()
    assert "1 teams created, 1 joined" in page.locator("body").inner_text()
    entries = page.locator("#roster-entries").inner_text()
    assert "team Vision (on Vision)" in entries
    assert "team Vision (not on it yet)" in entries
    page.screenshot(path=str(artifacts / "roster-applied.png"), full_page=True)

    vision_project = Project.objects.get(course=p.course, title="Vision")
    assert vision_project.created_by.email == "known@example.test"
    assert p.project.members.filter(email="dana@example.test").exists()
    assert RosterEntry.objects.get(email="new.one@example.test").project is None
    invitation = Notification.objects.get(email="new.one@example.test")
    assert invitation.kind == NotificationKind.INVITATION and invitation.recipient is None

    # The same file again: the preview says nothing changes, and nothing does.
    page.locator("#roster-upload").get_by_label("Roster CSV").set_input_files(
        files=[{"name": "roster.csv", "mimeType": "text/csv", "buffer": ROSTER.encode()}]
    )
    page.locator("#roster-upload").get_by_role("button", name="Preview").click()
    page.wait_for_load_state()
    assert page.locator(".roster-unchanged").count() == 3
    assert "created when its first member joins" not in page.locator("#roster-teams").inner_text()
    assert page.locator(".roster-team-unchanged").count() == 2
