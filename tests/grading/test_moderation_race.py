"""Two moderators set the same stage's grade at once, with real threads on a real database:
they take turns on the stage's lock, and exactly one grade stands."""

from __future__ import annotations

from decimal import Decimal

import pytest
from concurrency import outcome_kinds, race
from rubric_support import grading_on, stage_one_in_review

from grading import moderation
from grading.models import StageGrade
from lifecycle.audit import verify_chain
from lifecycle.models import AuditEvent

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_moderators_grading_one_stage_at_once_leave_exactly_one_standing_grade(personas):
    p = personas
    grading_on(p.course, moderator=p.tina)
    stage, _ = stage_one_in_review(p)
    moderators = [p.ian, p.tina]

    results = race(
        2,
        lambda i: moderation.stage_grade_set(
            stage=stage, actor=moderators[i], points=Decimal(4 + i)
        ),
    )

    assert outcome_kinds(results) == {"ok": 2}
    standing = list(StageGrade.objects.filter(stage=stage, replaced_at__isnull=True))
    assert len(standing) == 1
    assert StageGrade.objects.filter(stage=stage).count() == 2
    # The later grade replaced the earlier one: the standing grade is the last one written.
    assert standing[0] == StageGrade.objects.filter(stage=stage).order_by("-created_at").first()
    assert AuditEvent.objects.filter(verb="grade.stage_set").count() == 2
    assert verify_chain().intact
