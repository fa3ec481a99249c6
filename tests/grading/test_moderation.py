"""Moderation: the stage's reviewers' scores side by side with their spread, the moderated
stage and project grades (replacing, late penalty from grading.late, audited, published),
and who may moderate."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from factories import UserFactory, enrol
from rubric_support import grading_on, scores, stage_one_in_review

from grading import aggregates, events, moderation
from grading.models import LatePenaltyRule, ProjectGrade, StageDueDate, StageGrade
from lifecycle import events as lifecycle_events
from lifecycle.audit import verify_chain
from lifecycle.errors import IllegalTransition, InvalidAnswers, NotAllowed
from lifecycle.models import AuditEvent, Role
from reviews import services as review_services

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _the_audit_chain_stays_intact(db):
    yield
    report = verify_chain()
    assert report.intact, f"audit chain broken at #{report.broken_at}: {report.reason}"


@pytest.fixture
def published():
    seen: list[tuple[str, dict]] = []

    def on_stage(**payload):
        seen.append((events.STAGE_GRADE_SET, payload))

    def on_project(**payload):
        seen.append((events.PROJECT_GRADE_SET, payload))

    lifecycle_events.subscribe(events.STAGE_GRADE_SET, on_stage)
    lifecycle_events.subscribe(events.PROJECT_GRADE_SET, on_project)
    yield seen
    lifecycle_events._subscribers[events.STAGE_GRADE_SET].remove(on_stage)
    lifecycle_events._subscribers[events.PROJECT_GRADE_SET].remove(on_project)


def scored_stage(p, tina=(3, 3, 0), erin=(1, 3, 2)):
    stage, revision = stage_one_in_review(p)
    review_services.decision_record(
        revision=revision, reviewer=p.tina, outcome="approve", parts={"rubric": scores(*tina)}
    )
    review_services.decision_record(
        revision=revision, reviewer=p.erin, outcome="approve", parts={"rubric": scores(*erin)}
    )
    stage.refresh_from_db()
    return stage


def test_the_scores_of_staff_and_experts_stand_side_by_side_with_their_spread(personas):
    p = personas
    grading_on(p.course)
    stage = scored_stage(p)

    table = aggregates.stage_scores(stage)

    assert [c.role for c in table.columns] == ["staff", "expert"]
    rows = {r.criterion.key: r for r in table.rows}
    assert rows["stakeholders"].cells == ["3", "1"]
    assert (rows["stakeholders"].minimum, rows["stakeholders"].maximum) == (1, 3)
    assert rows["stakeholders"].mean == Decimal("2.00")
    # A range of 0..3: a spread of 2 is at least half of it, a spread of 0 is not.
    assert rows["stakeholders"].disagree and rows["should-be-done"].disagree
    assert not rows["can-be-done"].disagree
    # Totals 6/9 and 6/9: the suggestion is their mean on the rubric's 9 points.
    assert (table.max_points, table.suggested) == (Decimal("9.00"), Decimal("6.00"))


def test_the_moderator_sets_a_stage_grade_which_is_audited_and_published(personas, published):
    p = personas
    grading_on(p.course)
    stage = scored_stage(p)

    grade = moderation.stage_grade_set(
        stage=stage, actor=p.ian, points=Decimal("7"), comment="Solid.", release=True
    )

    assert (grade.points, grade.max_points, grade.final_points) == (7, 9, 7)
    assert grade.revision_id == stage.current_revision_id and grade.released
    event = AuditEvent.objects.get(verb="grade.stage_set")
    assert event.new["final_points"] == "7.00" and event.new["stage"] == stage.definition.key
    assert published == [(events.STAGE_GRADE_SET, {"grade": grade, "actor": p.ian})]


def test_a_new_grade_replaces_the_standing_one_which_is_kept(personas):
    p = personas
    grading_on(p.course)
    stage = scored_stage(p)
    first = moderation.stage_grade_set(stage=stage, actor=p.ian, points=Decimal("5"))

    second = moderation.stage_grade_set(stage=stage, actor=p.ian, points=Decimal("8"))

    first.refresh_from_db()
    assert first.replaced_at is not None and second.replaced_at is None
    assert list(StageGrade.objects.filter(stage=stage, replaced_at__isnull=True)) == [second]
    event = AuditEvent.objects.filter(verb="grade.stage_set").order_by("-seq").first()
    assert event.old["points"] == "5.00" and event.new["points"] == "8.00"


def test_the_late_penalty_of_the_stage_is_applied_with_its_reason(personas):
    p = personas
    grading_on(p.course, late_rule=LatePenaltyRule.PER_DAY, late_percent_per_day=Decimal("10"))
    stage = scored_stage(p)
    # Due an hour before the first submission: one started day late.
    first_submission = stage.current_revision.created_at
    StageDueDate.objects.create(
        course=p.course,
        stage_key=stage.definition.key,
        due_at=first_submission - dt.timedelta(hours=1),
    )

    grade = moderation.stage_grade_set(stage=stage, actor=p.ian, points=Decimal("8"))

    assert grade.late_penalty_percent == Decimal("10.00")
    assert grade.final_points == Decimal("7.20")
    assert "1 day after the due date" in grade.late_reason


@pytest.mark.parametrize("points", ["-1", "9.01", "NaN"])
def test_a_grade_outside_the_rubrics_range_is_refused(personas, points):
    p = personas
    grading_on(p.course)
    stage = scored_stage(p)

    with pytest.raises(InvalidAnswers) as refused:
        moderation.stage_grade_set(stage=stage, actor=p.ian, points=Decimal(points))

    assert "from 0 to 9.00" in refused.value.errors["points"][0]
    assert not StageGrade.objects.exists()


def test_a_ta_moderates_only_when_the_settings_name_them(personas):
    p = personas
    row = grading_on(p.course)
    stage = scored_stage(p)

    with pytest.raises(NotAllowed):
        moderation.stage_grade_set(stage=stage, actor=p.tina, points=Decimal("5"))
    row.moderator = p.tina
    row.save()
    grade = moderation.stage_grade_set(stage=stage, actor=p.tina, points=Decimal("5"))

    assert grade.moderator == p.tina


def test_a_course_that_does_not_grade_takes_no_grades(personas):
    p = personas
    stage, _ = stage_one_in_review(p)

    with pytest.raises(IllegalTransition):
        moderation.stage_grade_set(stage=stage, actor=p.ian, points=Decimal("5"))


def test_the_project_grade_is_suggested_from_weighted_stage_grades_and_set_by_the_moderator(
    personas, published
):
    p = personas
    grading_on(p.course, stage_weights={"problem-and-stakeholders": "2"})
    stage = scored_stage(p)
    moderation.stage_grade_set(stage=stage, actor=p.ian, points=Decimal("6"))

    suggested, maximum, _ = aggregates.suggested_project_total(
        p.project, aggregates.settings_of(p.course)
    )
    grade = moderation.project_grade_set(
        project=p.project, actor=p.ian, points=suggested, comment="Good start."
    )
    again = moderation.project_grade_set(project=p.project, actor=p.ian, points=Decimal("70"))

    assert (suggested, maximum) == (Decimal("66.67"), Decimal("100.00"))
    grade.refresh_from_db()
    assert grade.replaced_at is not None
    assert list(ProjectGrade.objects.filter(replaced_at__isnull=True)) == [again]
    assert AuditEvent.objects.filter(verb="grade.project_set").count() == 2
    assert published[-1] == (events.PROJECT_GRADE_SET, {"grade": again, "actor": p.ian})
    with pytest.raises(InvalidAnswers):
        moderation.project_grade_set(project=p.project, actor=p.ian, points=Decimal("101"))


def test_grading_settings_are_audited_and_the_moderator_must_be_a_ta_of_the_course(personas):
    p = personas
    stranger = UserFactory()
    enrol(p.course, UserFactory(), Role.STUDENT)

    row = moderation.grading_settings_update(
        course=p.course, actor=p.ian, scorers="staff", team_sees="provisional", moderator=p.tina
    )
    with pytest.raises(InvalidAnswers):
        moderation.grading_settings_update(
            course=p.course, actor=p.ian, scorers="staff", team_sees="final", moderator=stranger
        )
    with pytest.raises(NotAllowed):
        moderation.grading_settings_update(
            course=p.course, actor=p.tina, scorers="both", team_sees="final"
        )

    assert (row.scorers, row.team_sees, row.moderator) == ("staff", "provisional", p.tina)
    [event] = AuditEvent.objects.filter(verb="grading.settings_create")
    assert event.new["moderator"] == p.tina.pk
