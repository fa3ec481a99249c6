"""An expert assigned to one stage reviews that stage only: not the project's other stages,
through the permission helpers, the decision service and the pages alike. A whole-project
assignment covers every stage; a withdrawn one covers none."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import Client
from django.urls import reverse
from factories import advance_to, current_stage, declare_no_conflict, fill_and_submit

from lifecycle.errors import NotAllowed
from reviews import permissions, services
from reviews.models import AssignmentState, ReviewAssignment, ReviewerRole

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_stages(personas):
    """Erin is assigned to stage 1 only; the project has moved on to stage 2, in review."""
    p = personas
    first = current_stage(p.project)
    services.assignment_create(
        project=p.project,
        actor=p.tina,
        reviewer=p.erin,
        role=ReviewerRole.EXPERT,
        stage_definition=first.definition,
    )
    second = advance_to(p.project, first.definition.order + 1, team_member=p.alice, reviewer=p.tina)
    revision = fill_and_submit(second, p.alice)
    first.refresh_from_db()
    return first, second, revision


def test_an_expert_assigned_to_one_stage_may_review_that_stage_only(personas, two_stages):
    p = personas
    first, second, _ = two_stages
    assert permissions.reviewer_role(p.erin, p.project, first.definition)[0] == ReviewerRole.EXPERT
    assert permissions.reviewer_role(p.erin, p.project, second.definition) == (None, None)
    assert permissions.reviewer_role(p.erin, p.project, second.definition_id) == (None, None)
    assert permissions.can_review(p.erin, p.project, first.definition)
    assert not permissions.can_review(p.erin, p.project, second.definition)
    assert permissions.active_assignment(p.erin, p.project, second.definition_id) is None
    assert permissions.can_see_stage(p.erin, first)
    assert not permissions.can_see_stage(p.erin, second)
    assert permissions.can_see_project_reviews(p.erin, p.project)


def test_an_expert_cannot_decide_on_a_stage_they_are_not_assigned_to(personas, two_stages):
    _, _, revision = two_stages
    with pytest.raises(NotAllowed):
        services.decision_record(revision=revision, reviewer=personas.erin, outcome="approve")
    assert not revision.decisions.exists()


def test_the_review_page_of_another_stage_is_not_found_for_a_stage_expert(personas, two_stages):
    first, second, revision = two_stages
    client = Client()
    client.force_login(personas.erin)
    assert (
        client.get(reverse("reviews:review_stage", kwargs={"stage_pk": first.pk})).status_code
        == 200
    )
    assert (
        client.get(reverse("reviews:review_stage", kwargs={"stage_pk": second.pk})).status_code
        == 404
    )
    decide = reverse("reviews:stage_decide", kwargs={"stage_pk": second.pk})
    response = client.post(decide, {"revision": revision.pk, "outcome": "approve"})
    assert response.status_code == 404
    assert not revision.decisions.exists()


def test_a_whole_project_assignment_covers_every_stage(personas, two_stages):
    p = personas
    _, second, revision = two_stages
    ReviewAssignment.objects.filter(reviewer=p.erin).update(stage_definition=None)
    assert permissions.reviewer_role(p.erin, p.project, second.definition)[0] == ReviewerRole.EXPERT
    assert permissions.can_see_stage(p.erin, second)
    declare_no_conflict(p.project, p.erin)
    services.decision_record(revision=revision, reviewer=p.erin, outcome="approve")
    assert revision.decisions.get().reviewer == p.erin


def test_a_stage_assignment_comes_before_a_whole_project_one(personas, two_stages):
    p = personas
    _, second, _ = two_stages
    ReviewAssignment.objects.create(
        project=p.project, reviewer=p.tina, role=ReviewerRole.STAFF, assigned_by=p.ian
    )
    stage_one = ReviewAssignment.objects.create(
        project=p.project,
        reviewer=p.tina,
        role=ReviewerRole.EXPERT,
        stage_definition=second.definition,
        assigned_by=p.ian,
    )
    assert permissions.active_assignment(p.tina, p.project, second.definition_id) == stage_one
    assert permissions.reviewer_role(p.tina, p.project, second.definition) == (
        ReviewerRole.EXPERT,
        stage_one,
    )


def test_a_withdrawn_assignment_gives_no_access(personas, two_stages):
    p = personas
    first, _, _ = two_stages
    ReviewAssignment.objects.filter(reviewer=p.erin).update(state=AssignmentState.WITHDRAWN)
    assert permissions.reviewer_role(p.erin, p.project, first.definition) == (None, None)
    assert not permissions.can_see_stage(p.erin, first)
    assert not permissions.can_see_project_reviews(p.erin, p.project)


def test_course_staff_review_every_stage_without_an_assignment(personas, two_stages):
    p = personas
    first, second, _ = two_stages
    for staff in (p.tina, p.ian):
        assert permissions.reviewer_role(staff, p.project, second.definition) == (
            ReviewerRole.STAFF,
            None,
        )
        assert permissions.can_review(staff, p.project, second.definition)
        assert permissions.can_see_stage(staff, first)
        assert permissions.can_see_project_reviews(staff, p.project)


@pytest.mark.parametrize("who", ["alice", "bob", "carol", "oscar", "anonymous", "none"])
def test_team_members_other_students_outsiders_and_anonymous_review_nothing(
    personas, two_stages, who
):
    p = personas
    first, second, _ = two_stages
    others = {"anonymous": AnonymousUser(), "none": None}
    user = others[who] if who in others else getattr(p, who)
    for stage in (first, second):
        assert permissions.reviewer_role(user, p.project, stage.definition) == (None, None)
        assert permissions.active_assignment(user, p.project, stage.definition_id) is None
    can_see = who in ("alice", "bob")
    assert permissions.can_see_stage(user, second) is can_see
    assert permissions.can_see_project_reviews(user, p.project) is can_see


def test_a_team_member_with_an_assignment_still_reviews_nothing(personas, two_stages):
    p = personas
    _, second, _ = two_stages
    ReviewAssignment.objects.create(
        project=p.project, reviewer=p.bob, role=ReviewerRole.EXPERT, assigned_by=p.ian
    )
    assert permissions.reviewer_role(p.bob, p.project, second.definition) == (None, None)
