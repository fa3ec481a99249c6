"""The demo data: four teams spread over the stages, something waiting for every reviewer at
once, a site admin; idempotent, refused in production."""

from __future__ import annotations

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client, RequestFactory

from accounts.models import User
from lifecycle.audit import verify_chain
from lifecycle.models import AuditEvent, Course, Outcome, Project, ProjectStatus, StageStatus
from reviews import selectors
from reviews.demo import ADMIN_EMAIL, DEMO_PASSWORD, PEOPLE
from reviews.models import Comment, Decision

pytestmark = pytest.mark.django_db


def test_seed_demo_creates_four_teams_spread_over_the_stages(capsys):
    call_command("seed_demo")
    out = capsys.readouterr().out
    course = Course.objects.get(code="dl-demo")
    assert course.projects.count() == 4

    triage = Project.objects.get(title="Referral triage assistant")
    assert triage.current_stage.definition.order == 3
    assert triage.current_stage.status == StageStatus.CHANGES_REQUESTED

    crops = Project.objects.get(title="Crop disease detector")
    assert crops.cycle == 2
    assert crops.current_stage.definition.order == 3
    assert crops.current_stage.cycle == 2
    assert crops.current_stage.prefilled_from is not None
    assert crops.current_stage.status == StageStatus.IN_REVIEW
    assert crops.stages.filter(cycle=1, status=StageStatus.APPROVED).count() == 6

    bail = Project.objects.get(title="Bail risk scorer")
    assert bail.status == ProjectStatus.CONCLUDED
    assert bail.outcome == Outcome.NOT_PURSUED
    # Concluded through the reviewed proposal, not by one student.
    proposal = bail.not_pursued_proposals.get()
    assert proposal.status == "approved"
    assert proposal.current_revision.content_sha256

    sepsis = Project.objects.get(title="Sepsis early warning")
    assert sepsis.current_stage.definition.order == 1
    assert sepsis.current_stage.status == StageStatus.IN_REVIEW

    for email, *_ in [*PEOPLE, (ADMIN_EMAIL,)]:
        assert email in out
        assert authenticate(RequestFactory().post("/"), username=email, password=DEMO_PASSWORD)
    assert DEMO_PASSWORD in out
    assert verify_chain().intact
    assert (
        Decision.objects.filter(revision__stage__project=triage, outcome="request_changes").count()
        == 1
    )
    # a TA approval on stages 1-6, and an expert's on 1, 3, 5 and 6, all in cycle 1
    crop_approvals = Decision.objects.filter(revision__stage__project=crops, outcome="approve")
    assert crop_approvals.count() == 6 + 4


def _pending_titles(email: str) -> set[tuple[str, int]]:
    user = User.objects.get(email=email)
    return {
        (stage.project.title, stage.definition.order)
        for stage in selectors.pending_review_stages(user)
    }


def test_every_demo_reviewer_finds_a_stage_waiting_for_their_decision():
    call_command("seed_demo")
    assert _pending_titles("ta@demo.test") == {
        ("Crop disease detector", 3),
        ("Sepsis early warning", 1),
    }
    assert _pending_titles("expert1@demo.test") == {("Sepsis early warning", 1)}
    assert _pending_titles("expert2@demo.test") == {("Crop disease detector", 3)}
    assert _pending_titles("student1@demo.test") == set()


def test_the_changes_requested_stage_has_an_open_comment_thread_on_a_question():
    call_command("seed_demo")
    stage = Project.objects.get(title="Referral triage assistant").current_stage
    assert stage.status == StageStatus.CHANGES_REQUESTED
    thread = Comment.objects.get(revision=stage.current_revision, parent=None)
    assert thread.question_key == "collected-ethically"
    assert thread.resolved_at is None
    assert thread.author.email == "expert1@demo.test"
    assert [c.author.email for c in thread.replies.order_by("created_at")] == [
        "student2@demo.test",
        "ta@demo.test",
    ]


def test_the_demo_site_admin_signs_in_to_the_django_admin():
    call_command("seed_demo")
    admin = User.objects.get(email=ADMIN_EMAIL)
    assert admin.is_staff and admin.is_superuser and admin.email_verified_at is not None
    assert not admin.memberships.exists()
    client = Client()
    request = RequestFactory().post("/")
    assert client.login(request=request, username=ADMIN_EMAIL, password=DEMO_PASSWORD)
    assert client.get("/admin/").status_code == 200
    student = Client()
    student.force_login(User.objects.get(email="student1@demo.test"))
    assert student.get("/admin/").status_code == 302


def test_seeding_again_adds_the_site_admin_to_a_demo_seeded_before_there_was_one():
    call_command("seed_demo")
    User.objects.filter(email=ADMIN_EMAIL).delete()
    call_command("seed_demo")
    assert User.objects.get(email=ADMIN_EMAIL).is_superuser


def test_seed_demo_is_idempotent():
    call_command("seed_demo")
    counts = (Project.objects.count(), AuditEvent.objects.count(), Course.objects.count())
    call_command("seed_demo")
    assert (Project.objects.count(), AuditEvent.objects.count(), Course.objects.count()) == counts


def test_seed_demo_is_refused_with_production_settings(settings):
    settings.LRB_DEMO_ALLOWED = False
    with pytest.raises(CommandError, match="refused"):
        call_command("seed_demo")
    assert not Course.objects.exists()
