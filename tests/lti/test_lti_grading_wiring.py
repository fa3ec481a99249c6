"""Roster in, grades out: a moderated stage or project grade that staff release reaches the
platform's gradebook through Assignment and Grade Services for every team member the platform
knows; an unreleased one stays on the board; the grades CSV carries students' LMS ids."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from factories import UserFactory
from rubric_support import grading_on, stage_one_in_review

from grading.moderation import project_grade_set, stage_grade_set
from lti.models import LtiContext, LtiPlatform, LtiScore, LtiUser, ScoreState

pytestmark = pytest.mark.django_db


@pytest.fixture
def linked(personas, platform, sim, client):
    """The personas' course linked to the simulated platform, which knows Alice (not Bob)."""
    sim.trust_tool_jwks(client.get("/lti/jwks/").json())
    LtiContext.objects.create(
        platform=platform,
        context_id="ctx-grades",
        course=personas.course,
        nrps_url=sim.nrps_url("ctx-grades"),
        ags_lineitems_url=sim.lineitems_url("ctx-grades"),
    )
    LtiUser.objects.create(
        platform=platform, sub="lms-alice", user=personas.alice, lms_user_id="S-1001"
    )
    grading_on(personas.course)
    return personas


def test_a_released_stage_grade_is_posted_to_the_platform_for_the_members_it_knows(
    linked, sim, django_capture_on_commit_callbacks
):
    p = linked
    stage, _ = stage_one_in_review(p)
    with django_capture_on_commit_callbacks(execute=True):
        grade = stage_grade_set(
            stage=stage,
            actor=p.ian,
            points=Decimal("7"),
            comment="Clear stakeholders.",
            release=True,
        )
    (score,) = LtiScore.objects.all()
    assert (score.user, score.stage_key, score.state) == (
        p.alice,
        stage.definition.key,
        ScoreState.SENT,
    )
    (item,) = sim.state.line_items["ctx-grades"]
    assert item["resourceId"] == stage.definition.key
    assert Decimal(str(item["scoreMaximum"])) == grade.max_points
    (posted,) = sim.state.scores
    assert posted.body["userId"] == "lms-alice"
    assert Decimal(str(posted.body["scoreGiven"])) == grade.final_points == Decimal("7.00")
    assert posted.body["comment"] == "Clear stakeholders."
    assert posted.body["gradingProgress"] == "FullyGraded"


def test_an_unreleased_grade_stays_on_the_board(linked, sim, django_capture_on_commit_callbacks):
    p = linked
    stage, _ = stage_one_in_review(p)
    with django_capture_on_commit_callbacks(execute=True):
        stage_grade_set(stage=stage, actor=p.ian, points=Decimal("7"), release=False)
    assert not LtiScore.objects.exists()
    assert sim.state.scores == []


def test_a_released_project_total_is_posted_as_its_own_column(
    linked, sim, django_capture_on_commit_callbacks
):
    p = linked
    with django_capture_on_commit_callbacks(execute=True):
        project_grade_set(
            project=p.project, actor=p.ian, points=Decimal("81.5"), comment="", release=True
        )
    (posted,) = sim.state.scores
    assert posted.body["userId"] == "lms-alice"
    assert posted.body["scoreGiven"] == 81.5 and posted.body["scoreMaximum"] == 100
    (item,) = sim.state.line_items["ctx-grades"]
    assert item["resourceId"] == "project-total"


def test_the_grades_csv_carries_the_lms_id_of_the_platform_linked_to_the_course(linked):
    p = linked
    elsewhere = LtiPlatform.objects.create(
        name="Another LMS",
        issuer="https://other.example",
        client_id="x",
        auth_login_url="https://other.example/auth",
        auth_token_url="https://other.example/token",
        key_set_url="https://other.example/jwks",
    )
    # Carol is known to a platform with no link to this course: no LMS id for her here.
    LtiUser.objects.create(platform=elsewhere, sub="other-carol", user=p.carol)
    client = Client()
    client.force_login(p.ian)
    response = client.get(reverse("grading:grades_csv", args=[p.course.pk]))
    text = b"".join(response.streaming_content).decode()
    rows = {row["email"]: row for row in csv.DictReader(io.StringIO(text))}
    assert rows["alice@example.test"]["lms_user_id"] == "S-1001"
    assert rows["bob@example.test"]["lms_user_id"] == ""
    assert rows["carol@example.test"]["lms_user_id"] == ""


def test_a_student_without_an_identity_gets_no_score_row(
    linked, django_capture_on_commit_callbacks
):
    p = linked
    dora = UserFactory(email="dora@example.test")
    p.project.members.add(dora)
    stage, _ = stage_one_in_review(p)
    with django_capture_on_commit_callbacks(execute=True):
        stage_grade_set(stage=stage, actor=p.ian, points=Decimal("5"), release=True)
    assert list(LtiScore.objects.values_list("user__email", flat=True)) == ["alice@example.test"]
