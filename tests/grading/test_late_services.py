"""The late policy's services: validated, staff only, audited; a change of rule or due date
leaves standing grades as they are until a moderator re-applies the policy."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from factories import current_stage, fill_and_submit
from grading_support import grade_stages, late_settings, set_grade, submitted_at

from grading import late_services
from grading.events import STAGE_GRADE_SET
from grading.late import due_status, penalties_for_stages, penalty_for_stage
from grading.models import DueDateExtension, GradingSettings, StageDueDate, StageGrade
from lifecycle import events
from lifecycle.errors import InvalidAnswers, NotAllowed
from lifecycle.models import AuditEvent

pytestmark = pytest.mark.django_db

DUE = dt.datetime(2026, 11, 2, 23, 59, tzinfo=dt.UTC)


def _verbs(course) -> list[str]:
    return list(
        AuditEvent.objects.filter(course=course, verb__startswith="grading.")
        .order_by("seq")
        .values_list("verb", flat=True)
    )


def test_staff_set_a_per_day_rule_and_it_is_audited_with_old_and_new_values(personas):
    p = personas
    row = late_services.late_policy_update(
        course=p.course,
        actor=p.tina,
        rule="per_day",
        percent_per_day=Decimal("10"),
        cap_percent=Decimal("30"),
    )
    assert (row.late_rule, row.late_percent_per_day, row.late_cap_percent) == (
        "per_day",
        Decimal(10),
        Decimal(30),
    )
    event = AuditEvent.objects.get(verb="grading.late_policy")
    assert event.course_id == p.course.pk
    assert event.old["late_rule"] == "none" and event.new["late_rule"] == "per_day"
    assert event.new["late_cap_percent"] == "30"


def test_saving_the_same_rule_again_records_nothing(personas):
    p = personas
    for _ in range(2):
        late_services.late_policy_update(
            course=p.course,
            actor=p.ian,
            rule="cutoff",
            percent_per_day=Decimal(10),
            cap_percent=Decimal(50),
        )
    assert _verbs(p.course).count("grading.late_policy") == 1


@pytest.mark.parametrize(
    ("rule", "per_day", "cap", "field"),
    [
        ("per_day", "120", "50", "percent_per_day"),
        ("per_day", "-1", "50", "percent_per_day"),
        ("per_day", "10", "101", "cap_percent"),
        ("per_day", "20", "10", "cap_percent"),  # the cap below one day's penalty
        ("per_day", "0", "10", "percent_per_day"),
        ("per_day", "1.005", "10", "percent_per_day"),
        ("sometimes", "10", "50", "rule"),
    ],
)
def test_a_late_rule_that_makes_no_sense_is_refused_next_to_its_field(
    personas, rule, per_day, cap, field
):
    p = personas
    with pytest.raises(InvalidAnswers) as refused:
        late_services.late_policy_update(
            course=p.course,
            actor=p.ian,
            rule=rule,
            percent_per_day=Decimal(per_day),
            cap_percent=Decimal(cap),
        )
    assert field in refused.value.errors
    assert not GradingSettings.objects.filter(course=p.course).exists()
    assert "grading.late_policy" not in _verbs(p.course)


@pytest.mark.parametrize("who", ["alice", "carol", "erin", "oscar"])
def test_only_course_staff_change_the_late_policy(personas, who):
    p = personas
    grade_stages(p.course)
    key = p.course.template.stages.order_by("order")[0].key
    actor = getattr(p, who)
    with pytest.raises(NotAllowed):
        late_services.late_policy_update(
            course=p.course,
            actor=actor,
            rule="cutoff",
            percent_per_day=Decimal(10),
            cap_percent=Decimal(50),
        )
    with pytest.raises(NotAllowed):
        late_services.due_date_set(course=p.course, actor=actor, stage_key=key, due_at=DUE)
    with pytest.raises(NotAllowed):
        late_services.extension_grant(
            project=p.project, actor=actor, stage_key=key, due_at=DUE, reason="Ill"
        )
    assert not StageDueDate.objects.exists() and not DueDateExtension.objects.exists()


def test_a_due_date_is_set_moved_and_removed_with_an_event_each(personas):
    p = personas
    (first, _) = grade_stages(p.course)
    late_services.due_date_set(course=p.course, actor=p.tina, stage_key=first.key, due_at=DUE)
    later = DUE + dt.timedelta(days=2)
    late_services.due_date_set(course=p.course, actor=p.tina, stage_key=first.key, due_at=later)
    assert StageDueDate.objects.get(course=p.course, stage_key=first.key).due_at == later
    late_services.due_date_set(course=p.course, actor=p.tina, stage_key=first.key, due_at=None)
    assert not StageDueDate.objects.exists()
    assert _verbs(p.course) == [
        "grading.due_date_set",
        "grading.due_date_set",
        "grading.due_date_remove",
    ]


def test_a_stage_without_a_rubric_takes_no_due_date(personas):
    p = personas
    grade_stages(p.course, count=1)
    ungraded = p.course.template.stages.order_by("order")[3].key
    with pytest.raises(InvalidAnswers) as refused:
        late_services.due_date_set(course=p.course, actor=p.ian, stage_key=ungraded, due_at=DUE)
    assert "stage_key" in refused.value.errors


def test_several_due_dates_are_saved_together_or_not_at_all(personas):
    p = personas
    first, second = grade_stages(p.course)
    with pytest.raises(InvalidAnswers):
        late_services.due_dates_set(
            course=p.course,
            actor=p.ian,
            due_dates={first.key: DUE, second.key: DUE, "no-such-stage": DUE},
        )
    assert not StageDueDate.objects.exists()


def test_an_extension_needs_a_reason_and_moves_the_teams_due_date_only(personas):
    p = personas
    (first, _) = grade_stages(p.course)
    late_services.due_date_set(course=p.course, actor=p.ian, stage_key=first.key, due_at=DUE)
    with pytest.raises(InvalidAnswers) as refused:
        late_services.extension_grant(
            project=p.project, actor=p.tina, stage_key=first.key, due_at=DUE, reason="  "
        )
    assert "reason" in refused.value.errors
    later = DUE + dt.timedelta(days=3)
    late_services.extension_grant(
        project=p.project, actor=p.tina, stage_key=first.key, due_at=later, reason="Illness"
    )
    ours = current_stage(p.project)
    theirs = current_stage(p.other_project)
    assert due_status(ours, now=DUE).due_at == later
    assert due_status(ours, now=DUE).extension_reason == "Illness"
    assert due_status(theirs, now=DUE).due_at == DUE
    event = AuditEvent.objects.get(verb="grading.extension_grant")
    assert event.project_id == p.project.pk and event.course_id == p.course.pk
    assert event.new["reason"] == "Illness"


def test_a_revoked_extension_gives_the_team_the_course_date_back(personas):
    p = personas
    (first, _) = grade_stages(p.course)
    late_services.due_date_set(course=p.course, actor=p.ian, stage_key=first.key, due_at=DUE)
    extension = late_services.extension_grant(
        project=p.project,
        actor=p.ian,
        stage_key=first.key,
        due_at=DUE + dt.timedelta(days=1),
        reason="Bereavement",
    )
    late_services.extension_revoke(extension=extension, actor=p.tina)
    assert due_status(current_stage(p.project), now=DUE).due_at == DUE
    assert "grading.extension_revoke" in _verbs(p.course)


def test_the_team_that_has_not_submitted_is_late_by_started_days(personas):
    p = personas
    (first, _) = grade_stages(p.course)
    late_settings(p.course, late_rule="per_day", late_percent_per_day=10, late_cap_percent=25)
    late_services.due_date_set(course=p.course, actor=p.ian, stage_key=first.key, due_at=DUE)
    stage = current_stage(p.project)
    assert not due_status(stage, now=DUE).late_now
    status = due_status(stage, now=DUE + dt.timedelta(days=2, seconds=1))
    assert status.late_now
    assert (status.penalty.days_late, status.penalty.percent) == (3, Decimal("25.00"))


def test_the_penalty_counts_from_the_first_submission_not_the_resubmission(personas):
    p = personas
    (first, _) = grade_stages(p.course)
    late_settings(p.course, late_rule="per_day", late_percent_per_day=10, late_cap_percent=50)
    late_services.due_date_set(course=p.course, actor=p.ian, stage_key=first.key, due_at=DUE)
    stage = current_stage(p.project)
    fill_and_submit(stage, p.alice)
    submitted_at(stage, DUE + dt.timedelta(hours=30))
    penalty = penalty_for_stage(stage)
    assert (penalty.days_late, penalty.percent) == (2, Decimal("20.00"))
    assert penalties_for_stages([stage], course_id=p.course.pk) == {stage.pk: penalty}


def test_changing_the_rule_does_not_touch_a_moderated_grade_until_it_is_re_applied(
    personas, monkeypatch
):
    p = personas
    (first, _) = grade_stages(p.course)
    late_services.due_date_set(course=p.course, actor=p.ian, stage_key=first.key, due_at=DUE)
    stage = current_stage(p.project)
    fill_and_submit(stage, p.alice)
    submitted_at(stage, DUE + dt.timedelta(days=1, minutes=1))  # two started days late
    grade = set_grade(stage, points="8", moderator=p.ian)
    assert late_services.grades_out_of_policy(p.course) != []  # the rule "none" gives a reason

    late_services.late_penalty_reapply(course=p.course, actor=p.ian)
    late_services.late_policy_update(
        course=p.course,
        actor=p.tina,
        rule="per_day",
        percent_per_day=Decimal(15),
        cap_percent=Decimal(50),
    )
    standing = StageGrade.objects.get(stage=stage, replaced_at__isnull=True)
    assert standing.late_penalty_percent == 0 and standing.final_points == Decimal("8.00")
    (row,) = late_services.grades_out_of_policy(p.course)
    assert row.grade.pk == standing.pk
    assert (row.penalty.percent, row.final_points) == (Decimal("30.00"), Decimal("5.60"))

    published = []
    monkeypatch.setitem(
        events._subscribers, STAGE_GRADE_SET, [lambda **payload: published.append(payload)]
    )
    (new,) = late_services.late_penalty_reapply(course=p.course, actor=p.ian)
    assert new.late_penalty_percent == Decimal("30.00")
    assert new.final_points == Decimal("5.60")
    assert "15.00 % a day" in new.late_reason
    assert (new.points, new.comment, new.moderator_id) == (
        standing.points,
        standing.comment,
        standing.moderator_id,
    )
    standing.refresh_from_db()
    assert standing.replaced_at is not None
    grade.refresh_from_db()
    assert grade.replaced_at is not None
    assert published[-1]["grade"] == new
    assert late_services.grades_out_of_policy(p.course) == []
    event = AuditEvent.objects.filter(verb="grading.stage_grade_late_reapplied").last()
    assert event.old["final_points"] == "8.00" and event.new["final_points"] == "5.60"
    assert event.project_id == p.project.pk


def test_re_applying_to_chosen_grades_leaves_the_others(personas):
    p = personas
    (first, _) = grade_stages(p.course)
    late_settings(p.course, late_rule="cutoff")
    late_services.due_date_set(course=p.course, actor=p.ian, stage_key=first.key, due_at=DUE)
    grades = []
    for project, member in ((p.project, p.alice), (p.other_project, p.carol)):
        stage = current_stage(project)
        fill_and_submit(stage, member)
        submitted_at(stage, DUE + dt.timedelta(days=1))
        grades.append(set_grade(stage, points="9", moderator=p.ian))
    (new,) = late_services.late_penalty_reapply(
        course=p.course, actor=p.ian, grade_ids=[grades[1].pk]
    )
    assert new.stage_id == grades[1].stage_id and new.final_points == 0
    assert [row.grade.pk for row in late_services.grades_out_of_policy(p.course)] == [grades[0].pk]


def test_a_ta_re_applies_only_when_the_course_names_them_moderator(personas):
    p = personas
    with pytest.raises(NotAllowed):
        late_services.late_penalty_reapply(course=p.course, actor=p.tina)
    late_settings(p.course, moderator=p.tina)
    assert late_services.late_penalty_reapply(course=p.course, actor=p.tina) == []
    with pytest.raises(NotAllowed):
        late_services.late_penalty_reapply(course=p.course, actor=p.alice)
