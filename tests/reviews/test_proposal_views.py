"""The proposal's pages per persona: the team proposes and withdraws on the project page,
reviewers decide on the review page, and after conclusion no stage shows a working status on
the project page or the board."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from factories import advance_to, current_stage, declare_no_conflict, fill_and_submit

from lifecycle import proposals as lifecycle_proposals
from lifecycle.models import AuditEvent, NotPursuedProposal, Outcome, Project, ProposalStatus
from reviews import services
from reviews.models import ProposalDecision

PERSONAS = ["alice", "bob", "carol", "tina", "ian", "erin", "oscar", "anonymous"]
PROPOSAL_POST = {"reasons": ["social"], "reasoning": "It needs a social solution."}


def client_for(personas: Any, who: str, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    if who != "anonymous":
        client.force_login(getattr(personas, who))
    return client


def text(response: Any) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


@pytest.fixture
def proposal(personas):
    """Alice's project at stage 2 (staff-only gate by default) with a proposal in review, and
    Erin assigned as an expert on stage 1 only."""
    p = personas
    advance_to(p.project, 2, team_member=p.alice, reviewer=p.tina)
    stage_one = p.project.template.stages.get(order=1)
    services.assignment_create(
        project=p.project, actor=p.tina, reviewer=p.erin, role="expert", stage_definition=stage_one
    )
    return lifecycle_proposals.proposal_submit(
        project=p.project, actor=p.alice, answers=PROPOSAL_POST
    ).proposal


REVIEW_PAGE = {
    "alice": 200,
    "bob": 200,
    "carol": 404,
    "tina": 200,
    "ian": 200,
    "erin": 404,  # assigned to stage 1, not to the stage the proposal was made at
    "oscar": 404,
    "anonymous": 302,
}


@pytest.mark.parametrize("who", PERSONAS)
def test_the_review_page_answers_each_persona(personas, proposal, who):
    response = client_for(personas, who).get(reverse("reviews:review_proposal", args=[proposal.pk]))
    assert response.status_code == REVIEW_PAGE[who]
    if REVIEW_PAGE[who] == 200:
        page = text(response)
        assert "It needs a social solution." in page
        assert proposal.current_revision.content_sha256 in page
        assert ('id="proposal-decision-form"' in page) == (who in {"tina", "ian"})


@pytest.mark.parametrize("who", PERSONAS)
def test_only_reviewers_decide_and_a_decision_concludes_at_a_staff_gate(personas, proposal, who):
    url = reverse("reviews:proposal_decide", args=[proposal.pk])
    data = {"revision": proposal.current_revision_id, "outcome": "approve", "comment": ""}
    response = client_for(personas, who).post(url, data)
    project = Project.objects.get(pk=personas.project.pk)
    if who in {"tina", "ian"}:
        assert response.status_code == 302
        assert project.outcome == Outcome.NOT_PURSUED
    else:
        assert response.status_code in (302, 404) if who == "anonymous" else 404
        assert project.is_active
        assert not ProposalDecision.objects.exists()


def test_the_review_page_refuses_a_post_and_decide_refuses_a_get(personas, proposal):
    client = client_for(personas, "tina")
    assert client.post(reverse("reviews:review_proposal", args=[proposal.pk])).status_code == 405
    assert client.get(reverse("reviews:proposal_decide", args=[proposal.pk])).status_code == 405


def test_a_request_for_changes_needs_a_comment_and_is_shown_to_the_team(personas, proposal):
    url = reverse("reviews:proposal_decide", args=[proposal.pk])
    tina = client_for(personas, "tina")
    data = {"revision": proposal.current_revision_id, "outcome": "request_changes"}
    assert tina.post(url, {**data, "comment": ""}).status_code == 400
    tina.post(url, {**data, "comment": "Which social solution? Name it."})
    page = text(client_for(personas, "bob").get(personas.project.get_absolute_url()))
    assert "Tina asked for changes" in page
    assert "Which social solution? Name it." in page
    assert "Propose again with these changes" in page
    response = client_for(personas, "bob").post(
        reverse("lifecycle:proposal_submit", args=[personas.project.pk]),
        {**PROPOSAL_POST, "alternative": "Peer tutoring."},
    )
    assert response.status_code == 302
    current = NotPursuedProposal.objects.get()
    assert (current.status, current.current_revision.number) == (ProposalStatus.IN_REVIEW, 2)


def test_the_team_proposes_with_errors_shown_and_staff_cannot_propose(personas):
    url = reverse("lifecycle:proposal_submit", args=[personas.project.pk])
    response = client_for(personas, "alice").post(url, {"reasons": [], "reasoning": ""})
    assert response.status_code == 400
    assert "Choose at least one reason" in text(response)
    for who in ("tina", "carol", "oscar"):
        assert client_for(personas, who).post(url, PROPOSAL_POST).status_code == 404
    assert client_for(personas, "alice").get(url).status_code == 405
    assert not NotPursuedProposal.objects.exists()


def test_the_proposal_form_shows_the_lectures_prompts(personas):
    page = text(client_for(personas, "alice").get(personas.project.get_absolute_url()))
    assert 'id="proposal-form"' in page
    assert "The problem needs a social solution, not a technical one." in page
    assert "Perhaps a social rather than a technical solution." in page
    # Course staff read the project page but propose nothing.
    staff_page = text(client_for(personas, "tina").get(personas.project.get_absolute_url()))
    assert 'id="proposal-form"' not in staff_page


def test_the_team_withdraws_and_the_project_goes_on(personas, proposal):
    url = reverse("lifecycle:proposal_withdraw", args=[personas.project.pk, proposal.pk])
    assert client_for(personas, "tina").post(url).status_code == 404
    assert client_for(personas, "carol").post(url).status_code == 404
    response = client_for(personas, "bob").post(url, follow=True)
    assert "Proposal withdrawn" in text(response)
    assert NotPursuedProposal.objects.get().status == ProposalStatus.WITHDRAWN
    assert 'id="proposal-form"' in text(response)  # a new proposal may be made


# --- statuses after conclusion --------------------------------------------------------------


def _concluded_mid_review(personas) -> Project:
    """Stage 2 in review when the proposal made at stage 2 is approved."""
    p = personas
    advance_to(p.project, 2, team_member=p.alice, reviewer=p.tina)
    fill_and_submit(current_stage(p.project), p.alice)
    revision = lifecycle_proposals.proposal_submit(
        project=p.project, actor=p.alice, answers=PROPOSAL_POST
    )
    from reviews.proposals import proposal_decision_record

    proposal_decision_record(revision=revision, reviewer=p.ian, outcome="approve")
    return Project.objects.get(pk=p.project.pk)


WORKING = ("drafting", "in_review", "changes_requested")


def test_after_conclusion_the_project_page_shows_no_working_status(personas):
    project = _concluded_mid_review(personas)
    assert project.outcome == Outcome.NOT_PURSUED
    assert project.current_stage.status == "in_review"  # stored as history
    page = client_for(personas, "alice").get(project.get_absolute_url()).content.decode()
    shown = re.findall(r'data-shown-status="(\w+)"', page)
    assert shown == ["approved", "closed"] + ["not_reached"] * 5
    assert not any(f'data-status="{s}"' in page for s in WORKING)
    for label in ("Drafting", "In review", "Changes requested"):
        assert f">{label}</span>" not in page
    assert 'id="proposal-status" data-status="approved"' in page


def test_after_conclusion_the_board_shows_no_working_status(personas):
    project = _concluded_mid_review(personas)
    board = client_for(personas, "ian").get(reverse("reviews:board", args=[personas.course.pk]))
    html = board.content.decode()
    row = re.search(rf'data-project="{project.pk}">(.*?)</tr>', html, flags=re.S).group(1)
    statuses = re.findall(r'data-status="(\w*)"', row)
    assert statuses == ["approved", "closed"] + ["not_reached"] * 5
    assert "In review" not in row and "Drafting" not in row
    # The other team's project is still at work and says so.
    other = re.search(
        rf'data-project="{personas.other_project.pk}">(.*?)</tr>', html, flags=re.S
    ).group(1)
    assert 'data-status="drafting"' in other


def test_the_conclusion_is_audited_once_with_the_reviewers_decision(personas):
    _concluded_mid_review(personas)
    assert AuditEvent.objects.filter(verb="project.conclude").count() == 1
    decision = AuditEvent.objects.get(verb="proposal.decision")
    assert decision.actor == personas.ian and decision.new["outcome"] == "approve"


def test_an_expert_reviews_a_proposal_made_at_their_stage(personas):
    p = personas
    services.assignment_create(project=p.project, actor=p.tina, reviewer=p.erin, role="expert")
    revision = lifecycle_proposals.proposal_submit(
        project=p.project, actor=p.alice, answers=PROPOSAL_POST
    )
    url = reverse("reviews:review_proposal", args=[revision.proposal_id])
    page = text(client_for(p, "erin").get(url))
    assert "Declare any conflicts of interest" in page
    declare_no_conflict(p.project, p.erin)
    page = text(client_for(p, "erin").get(url))
    assert 'id="proposal-decision-form"' in page


def test_the_instructor_chooses_who_approves_a_proposal_in_the_course_settings(personas):
    url = reverse("reviews:course_settings", args=[personas.course.pk])
    ian = client_for(personas, "ian")
    assert 'name="not_pursued_gate"' in text(ian.get(url))
    data = {
        "allows_experts": "on",
        "expert_invitations": "allowed",
        "team_experts_need_confirmation": "on",
        "invitation_expiry_days": 14,
        "reminder_interval_days": 3,
        "reminder_limit": 2,
    }
    assert ian.post(url, {**data, "not_pursued_gate": "staff"}).status_code == 302
    personas.course.refresh_from_db()
    assert personas.course.not_pursued_gate == "staff"
    assert ian.post(url, data).status_code == 302  # omitted: kept
    personas.course.refresh_from_db()
    assert personas.course.not_pursued_gate == "staff"
    event = AuditEvent.objects.get(verb="course.settings")
    assert event.new == {"not_pursued_gate": "staff"}
    assert client_for(personas, "tina").post(url, data).status_code == 404
