"""The demo grades: after seed_demo, seed_grading_demo turns grading on with the TA as
moderator, gives every graded stage a weekly due date under a per-day penalty, and releases a
grade for the first team's first stage; running it again changes nothing; refused in
production."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from accounts.models import User
from grading.aggregates import graded_stage_columns
from grading.models import GradingSettings, LatePenaltyRule, StageDueDate, StageGrade
from lifecycle.audit import verify_chain
from lifecycle.models import AuditEvent, Course

pytestmark = pytest.mark.django_db


def test_the_demo_course_grades_after_seed_grading_demo():
    call_command("seed_demo")
    call_command("seed_grading_demo")
    course = Course.objects.get(code="dl-demo")
    row = GradingSettings.objects.get(course=course)
    assert row.moderator.email == "ta@demo.test"
    assert row.late_rule == LatePenaltyRule.PER_DAY
    graded = [key for key, _ in graded_stage_columns(course)]
    assert len(graded) == 6
    dues = list(StageDueDate.objects.filter(course=course).order_by("due_at"))
    assert [due.stage_key for due in dues] == graded
    (grade,) = StageGrade.objects.filter(stage__project__course=course)
    assert grade.released and grade.late_penalty_percent == 0
    assert grade.stage.project.title == "Referral triage assistant"
    assert grade.final_points == grade.max_points - 1
    assert verify_chain().intact
    # The team sees its released grade on the graded stage's page.
    student = User.objects.get(email="student1@demo.test")
    client = Client()
    client.force_login(student)
    stage = grade.stage
    page = client.get(
        reverse(
            "lifecycle:stage_detail",
            args=[stage.project_id, stage.cycle, stage.definition.key],
        )
    )
    assert page.status_code == 200
    assert str(grade.final_points) in page.content.decode()


def test_running_it_again_changes_nothing():
    call_command("seed_demo")
    call_command("seed_grading_demo")
    events = AuditEvent.objects.count()
    call_command("seed_grading_demo")
    assert AuditEvent.objects.count() == events
    assert StageGrade.objects.count() == 1


def test_it_needs_the_demo_course_and_is_refused_in_production(settings):
    with pytest.raises(CommandError, match="seed_demo first"):
        call_command("seed_grading_demo")
    settings.LRB_DEMO_ALLOWED = False
    with pytest.raises(CommandError, match="demo only"):
        call_command("seed_grading_demo")
