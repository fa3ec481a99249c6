"""The API's decision endpoint takes the rubric's scores with the decision: where the course
grades and the reviewer's role scores, a decision without them is refused with the criteria
named; scores given are recorded with the decision, and a level not in the rubric refuses
the whole decision."""

from __future__ import annotations

import pytest
from django.urls import reverse
from factories import fill_and_submit
from rubric_support import grading_on, scores

from grading.models import CriterionScore
from lifecycle.models import ProjectStage
from reviews.models import Decision

pytestmark = pytest.mark.django_db


def _revision(world):
    stage = ProjectStage.objects.select_related("definition").get(
        pk=world.p.project.current_stage_id
    )
    return fill_and_submit(stage, world.p.alice)


def test_a_reviewer_posts_scores_with_the_decision_or_is_told_which_are_missing(world):
    grading_on(world.p.course)
    revision = _revision(world)
    url = reverse("api:revision_decisions", args=[revision.pk])
    tina = world.client("tina")

    missing = tina.post(url, {"outcome": "approve"})
    wrong = tina.post(url, {"outcome": "approve", "scores": scores(2, 9, "na")})
    done = tina.post(url, {"outcome": "approve", "scores": scores(2, 3, 1)})

    assert missing.status_code == 400
    assert set(missing.json()["errors"]) == {f"rubric.{k}" for k in scores(1)}
    assert wrong.status_code == 400
    assert set(wrong.json()["errors"]) == {"rubric.can-be-done", "rubric.should-be-done"}
    assert done.status_code == 201, done.content
    decision = Decision.objects.get()
    assert CriterionScore.objects.filter(decision=decision).count() == 3


def test_scores_are_ignored_where_the_course_does_not_grade(world):
    revision = _revision(world)

    done = world.client("tina").post(
        reverse("api:revision_decisions", args=[revision.pk]),
        {"outcome": "approve", "scores": {"anything": 1}},
    )

    assert done.status_code == 201
    assert not CriterionScore.objects.exists()
