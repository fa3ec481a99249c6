"""Turn grading on in the demo course (development only): rubric scores by staff and experts,
the TA as moderator, weekly due dates with a per-day penalty, and the first team's approved
first stage graded and released."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from grading import late_services
from grading.aggregates import graded_stage_columns
from grading.models import GradingSettings, LatePenaltyRule, Scorers, TeamSees
from grading.moderation import grading_settings_update, stage_grade_set, stage_max_points
from lifecycle.models import Course, ProjectStage, StageStatus
from reviews.demo import DEMO_COURSE_CODE


class Command(BaseCommand):
    help = (
        "Turns grading on in the demo course (after seed_demo). Idempotent. Refused in production."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if not getattr(settings, "LRB_DEMO_ALLOWED", False):
            raise CommandError(
                "seed_grading_demo is for the demo only; refused with these settings."
            )
        course = Course.objects.filter(code=DEMO_COURSE_CODE).first()
        if course is None:
            raise CommandError("No demo course: run seed_demo first.")
        if GradingSettings.objects.filter(course=course).exists():
            self.stdout.write("Already there: the demo course grades.")
            return
        instructor = User.objects.get(email="instructor@demo.test")
        ta = User.objects.get(email="ta@demo.test")
        now = timezone.now()
        with transaction.atomic():
            grading_settings_update(
                course=course,
                actor=instructor,
                scorers=Scorers.BOTH,
                team_sees=TeamSees.PROVISIONAL,
                moderator=ta,
            )
            late_services.late_policy_update(
                course=course,
                actor=instructor,
                rule=LatePenaltyRule.PER_DAY,
                percent_per_day=Decimal("10"),
                cap_percent=Decimal("50"),
            )
            for week, (key, _title) in enumerate(graded_stage_columns(course), start=1):
                late_services.due_date_set(
                    course=course,
                    actor=instructor,
                    stage_key=key,
                    due_at=now + timedelta(weeks=week),
                )
            first_approved = (
                ProjectStage.objects.filter(
                    project__course=course, status=StageStatus.APPROVED, definition__order=1
                )
                .select_related("definition", "project")
                .order_by("project__created_at")
                .first()
            )
            if first_approved is not None:
                maximum = stage_max_points(first_approved)
                stage_grade_set(
                    stage=first_approved,
                    actor=ta,
                    points=maximum - 1,
                    comment="Stakeholders and the should-we question are answered well; say "
                    "more about who is harmed by a wrong ranking.",
                    release=True,
                )
        self.stdout.write(
            f"Grading is on in {course.title}: rubrics, due dates, one released grade."
        )
