"""Re-applying the late policy from several places at once (two moderators' tabs): every
stage ends with exactly one standing grade carrying the penalty once, on SQLite and
PostgreSQL alike."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from concurrency import outcome_kinds, race
from factories import current_stage, fill_and_submit
from grading_support import grade_stages, late_settings, set_grade, submitted_at

from grading import late_services
from grading.models import StageGrade
from lifecycle.models import AuditEvent

pytestmark = pytest.mark.django_db(transaction=True)

DUE = dt.datetime(2026, 11, 2, 23, 59, tzinfo=dt.UTC)


def test_concurrent_re_applications_replace_each_grade_exactly_once(personas):
    p = personas
    (first, _) = grade_stages(p.course)
    late_settings(p.course, late_rule="per_day", late_percent_per_day=10, late_cap_percent=50)
    late_services.due_date_set(course=p.course, actor=p.ian, stage_key=first.key, due_at=DUE)
    stages = []
    for project, member in ((p.project, p.alice), (p.other_project, p.carol)):
        stage = current_stage(project)
        fill_and_submit(stage, member)
        submitted_at(stage, DUE + dt.timedelta(hours=1))
        set_grade(stage, points="10", moderator=p.ian)
        stages.append(stage)

    results = race(
        4, lambda i: len(late_services.late_penalty_reapply(course=p.course, actor=p.ian))
    )

    assert outcome_kinds(results) == {"ok": 4}
    assert sorted(value for _, value in results) == [0, 0, 0, 2]
    for stage in stages:
        standing = StageGrade.objects.get(stage=stage, replaced_at__isnull=True)
        assert standing.final_points == Decimal("9.00")
        assert StageGrade.objects.filter(stage=stage).count() == 2
    assert AuditEvent.objects.filter(verb="grading.stage_grade_late_reapplied").count() == 2
