"""Rubric scores as part of a reviewer's decision: recorded with it, pinned to its revision,
replaced by "change my decision", audited, and refused whole when any score is wrong."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rubric_support import grading_on, scores, stage_one_in_review

from grading.models import CriterionScore, Scorers
from lifecycle.audit import verify_chain
from lifecycle.errors import InvalidAnswers
from lifecycle.models import AuditEvent, StageDefinition
from reviews import services
from reviews.models import Decision

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _the_audit_chain_stays_intact(db):
    yield
    report = verify_chain()
    assert report.intact, f"audit chain broken at #{report.broken_at}: {report.reason}"


def score_rows(decision: Decision) -> dict[str, Decimal | None]:
    return {
        s.criterion_key: (None if s.not_applicable else s.points)
        for s in CriterionScore.objects.filter(decision=decision)
    }


def test_a_reviewers_scores_are_recorded_with_the_decision_and_audited(personas):
    p = personas
    grading_on(p.course)
    _stage, revision = stage_one_in_review(p)

    decision = services.decision_record(
        revision=revision,
        reviewer=p.tina,
        outcome="approve",
        parts={"rubric": scores(2, 3, 1)},
    )

    assert score_rows(decision) == {
        "stakeholders": Decimal("2"),
        "can-be-done": Decimal("3"),
        "should-be-done": Decimal("1"),
    }
    event = AuditEvent.objects.get(verb="decision.record", object_id=str(decision.pk))
    assert event.new["rubric"] == {
        "scores": {"stakeholders": "2", "can-be-done": "3", "should-be-done": "1"},
        "total": "6.00",
        "max": "9.00",
    }


def test_changing_a_decision_gives_the_new_decision_new_scores_and_the_old_keeps_its(personas):
    p = personas
    grading_on(p.course)
    _stage, revision = stage_one_in_review(p)
    first = services.decision_record(
        revision=revision, reviewer=p.erin, outcome="approve", parts={"rubric": scores(1)}
    )

    second = services.decision_record(
        revision=revision,
        reviewer=p.erin,
        outcome="approve",
        change=True,
        parts={"rubric": scores(3)},
    )

    first.refresh_from_db()
    assert first.replaced_at is not None
    assert set(score_rows(first).values()) == {Decimal("1")}
    assert set(score_rows(second).values()) == {Decimal("3")}
    change = AuditEvent.objects.get(verb="decision.change", object_id=str(second.pk))
    assert change.new["rubric"]["total"] == "9.00"


@pytest.mark.parametrize(
    ("given", "field", "says"),
    [
        (scores(2, 7, 1), "rubric.can-be-done", "not a level"),
        (scores(2, "na", 1), "rubric.can-be-done", "cannot be “not applicable”"),
        ({"stakeholders": 2, "can-be-done": 1}, "rubric.should-be-done", "Score this"),
        ({**scores(1), "charm": 3}, "rubric", "no criterion charm"),
        (scores(2, "lots", 1), "rubric.can-be-done", "levels"),
        (scores(2, True, 1), "rubric.can-be-done", "levels"),
    ],
)
def test_a_bad_score_refuses_the_whole_decision_and_records_nothing(personas, given, field, says):
    p = personas
    grading_on(p.course)
    _stage, revision = stage_one_in_review(p)

    with pytest.raises(InvalidAnswers) as refused:
        services.decision_record(
            revision=revision, reviewer=p.tina, outcome="approve", parts={"rubric": given}
        )

    assert says in " ".join(refused.value.errors[field])
    assert not Decision.objects.filter(revision=revision).exists()
    assert not CriterionScore.objects.exists()
    assert not AuditEvent.objects.filter(verb="decision.record").exists()


def test_a_decision_without_scores_is_refused_where_the_reviewer_scores(personas):
    p = personas
    grading_on(p.course)
    _stage, revision = stage_one_in_review(p)

    with pytest.raises(InvalidAnswers) as refused:
        services.decision_record(revision=revision, reviewer=p.tina, outcome="approve")

    assert set(refused.value.errors) == {f"rubric.{k}" for k in scores(1)}


def test_not_applicable_counts_where_the_criterion_allows_it(personas):
    p = personas
    grading_on(p.course)
    stage, revision = stage_one_in_review(p)
    rubric = stage.definition.rubric
    rubric["criteria"][2]["allow_na"] = True
    StageDefinition.objects.filter(pk=stage.definition_id).update(rubric=rubric)

    decision = services.decision_record(
        revision=revision, reviewer=p.tina, outcome="approve", parts={"rubric": scores(3, 3, "na")}
    )

    assert score_rows(decision)["should-be-done"] is None
    event = AuditEvent.objects.get(verb="decision.record", object_id=str(decision.pk))
    assert (event.new["rubric"]["total"], event.new["rubric"]["max"]) == ("6.00", "6.00")


def test_a_course_without_grading_settings_takes_decisions_without_scores(personas):
    p = personas
    _stage, revision = stage_one_in_review(p)

    decision = services.decision_record(
        revision=revision, reviewer=p.tina, outcome="approve", parts={"rubric": scores(99)}
    )

    assert not CriterionScore.objects.filter(decision=decision).exists()
    assert "rubric" not in AuditEvent.objects.get(verb="decision.record").new


def test_where_only_staff_score_an_experts_decision_carries_no_scores(personas):
    p = personas
    grading_on(p.course, scorers=Scorers.STAFF)
    _stage, revision = stage_one_in_review(p)

    expert = services.decision_record(revision=revision, reviewer=p.erin, outcome="approve")
    with pytest.raises(InvalidAnswers):
        services.decision_record(revision=revision, reviewer=p.tina, outcome="approve")

    assert not CriterionScore.objects.filter(decision=expert).exists()


def test_where_only_experts_score_staff_decide_without_scores(personas):
    p = personas
    grading_on(p.course, scorers=Scorers.EXPERTS)
    _stage, revision = stage_one_in_review(p)

    staff = services.decision_record(revision=revision, reviewer=p.tina, outcome="approve")
    expert = services.decision_record(
        revision=revision, reviewer=p.erin, outcome="approve", parts={"rubric": scores(2)}
    )

    assert not CriterionScore.objects.filter(decision=staff).exists()
    assert CriterionScore.objects.filter(decision=expert).count() == 3
