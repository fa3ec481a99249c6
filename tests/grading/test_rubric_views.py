"""The rubric on the review page and the grading pages, by persona: Tina (TA), Ian
(instructor), Erin (expert), Alice (the team), Carol (another team), Oscar (outsider → 404);
wrong methods → 405; the overview's query count at two sizes."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from factories import UserFactory, current_stage, enrol
from reauth import confirm_password
from rubric_support import grading_on, post_scores, scores, stage_one_in_review

from grading import moderation
from grading.models import CriterionScore, Scorers, StageGrade, TeamSees
from lifecycle import services as lifecycle_services
from lifecycle.models import AuditEvent, Role
from reviews import services as review_services
from reviews.models import Decision

pytestmark = pytest.mark.django_db


def client_for(user: Any = None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
        confirm_password(client)
    return client


def decide_url(stage) -> str:
    return reverse("reviews:stage_decide", args=[stage.pk])


def stage_page(stage) -> str:
    return reverse(
        "lifecycle:stage_detail", args=[stage.project_id, stage.cycle, stage.definition.key]
    )


# --- the rubric on the review page ----------------------------------------------------------


def test_the_review_page_shows_the_rubric_beside_the_decision_only_where_the_reviewer_scores(
    personas,
):
    p = personas
    grading_on(p.course, scorers=Scorers.STAFF)
    stage, _ = stage_one_in_review(p)
    url = reverse("reviews:review_stage", args=[stage.pk])

    tina_page = client_for(p.tina).get(url).content.decode()
    erin_page = client_for(p.erin).get(url).content.decode()

    assert 'name="rubric-stakeholders"' in tina_page and "Stakeholders identified" in tina_page
    assert 'name="rubric-stakeholders"' not in erin_page


def test_a_reviewer_scores_through_the_decision_form(personas):
    p = personas
    grading_on(p.course)
    stage, revision = stage_one_in_review(p)

    response = client_for(p.tina).post(
        decide_url(stage),
        {"revision": revision.pk, "outcome": "approve", **post_scores(2, 3, 1)},
    )

    assert response.status_code == 302
    decision = Decision.objects.get(reviewer=p.tina)
    assert sorted(
        CriterionScore.objects.filter(decision=decision).values_list("points", flat=True)
    ) == [1, 2, 3]


def test_a_level_not_in_the_rubric_is_shown_next_to_its_criterion_and_nothing_is_recorded(
    personas,
):
    p = personas
    grading_on(p.course)
    stage, revision = stage_one_in_review(p)

    response = client_for(p.tina).post(
        decide_url(stage),
        {"revision": revision.pk, "outcome": "approve", **post_scores(2, 7, 1)},
    )

    assert response.status_code == 400
    page = response.content.decode()
    assert 'id="criterion-can-be-done-error"' in page and "7 is not a level" in page
    # What was entered stays chosen.
    assert 'id="rubric-stakeholders-3" value="2" checked' in page
    assert not Decision.objects.exists()


def test_change_my_decision_starts_from_the_standing_scores(personas):
    p = personas
    grading_on(p.course)
    stage, revision = stage_one_in_review(p)
    review_services.decision_record(
        revision=revision, reviewer=p.tina, outcome="approve", parts={"rubric": scores(1, 2, 3)}
    )

    html = client_for(p.tina).get(reverse("reviews:review_stage", args=[stage.pk])).content
    html = html.decode()

    assert "Change my decision" in html
    assert 'id="rubric-stakeholders-2" value="1" checked' in html
    assert 'id="rubric-should-be-done-4" value="3" checked' in html


# --- the grading pages: who may see and do what ---------------------------------------------


def scored(p):
    stage, revision = stage_one_in_review(p)
    review_services.decision_record(
        revision=revision, reviewer=p.tina, outcome="approve", parts={"rubric": scores(3, 2, 1)}
    )
    review_services.decision_record(
        revision=revision, reviewer=p.erin, outcome="approve", parts={"rubric": scores(0, 2, 1)}
    )
    stage.refresh_from_db()
    return stage


def grading_urls(p, stage) -> dict[str, str]:
    return {
        "course": reverse("grading:course", args=[p.course.pk]),
        "settings": reverse("grading:settings", args=[p.course.pk]),
        "stage": reverse("grading:stage", args=[stage.pk]),
        "project": reverse("grading:project", args=[p.project.pk]),
    }


def test_grading_pages_are_for_course_staff_and_404_for_everyone_else(personas):
    p = personas
    grading_on(p.course)
    stage = scored(p)
    urls = grading_urls(p, stage)

    for who in (p.tina, p.ian):
        for url in urls.values():
            assert client_for(who).get(url).status_code == 200, (who, url)
    for who in (p.alice, p.carol, p.erin, p.oscar):
        for url in urls.values():
            assert client_for(who).get(url).status_code == 404, (who, url)
    for url in urls.values():
        assert client_for().get(url).status_code == 302  # to sign in


def test_the_stage_grading_page_shows_both_kinds_of_reviewer_and_flags_disagreement(personas):
    p = personas
    grading_on(p.course)
    stage = scored(p)

    page = client_for(p.ian).get(reverse("grading:stage", args=[stage.pk]))

    html = page.content.decode()
    assert 'data-role="staff"' in html and 'data-role="expert"' in html
    assert 'data-criterion="stakeholders" data-disagree="true"' in html
    assert 'data-criterion="can-be-done" data-disagree' not in html
    # Totals 6/9 and 3/9: the suggestion is their mean.
    assert page.context["scores"].suggested == Decimal("4.50")


def test_the_instructor_sets_the_stage_grade_and_an_out_of_range_grade_is_a_form_error(personas):
    p = personas
    grading_on(p.course)
    stage = scored(p)
    ian = client_for(p.ian)
    url = reverse("grading:stage_grade", args=[stage.pk])

    refused = ian.post(url, {"points": "9.5", "comment": "Too much"})
    done = ian.post(url, {"points": "6.5", "comment": "Fair.", "release": "on"})

    assert refused.status_code == 400
    assert "A grade is from 0 to 9.00 points." in refused.content.decode()
    assert done.status_code == 302
    grade = StageGrade.objects.get(replaced_at__isnull=True)
    assert (grade.points, grade.comment, grade.released) == (Decimal("6.5"), "Fair.", True)


def test_only_moderators_post_grades_and_wrong_methods_are_refused(personas):
    p = personas
    grading_on(p.course)
    stage = scored(p)
    stage_grade = reverse("grading:stage_grade", args=[stage.pk])
    project_grade = reverse("grading:project_grade", args=[p.project.pk])

    assert client_for(p.tina).post(stage_grade, {"points": "5"}).status_code == 403
    assert client_for(p.tina).post(project_grade, {"points": "5"}).status_code == 403
    for who in (p.alice, p.carol, p.erin, p.oscar):
        assert client_for(who).post(stage_grade, {"points": "5"}).status_code == 404
        assert client_for(who).post(project_grade, {"points": "5"}).status_code == 404
    assert client_for(p.ian).get(stage_grade).status_code == 405
    assert client_for(p.ian).get(project_grade).status_code == 405
    for name, url in grading_urls(p, stage).items():
        if name != "settings":
            assert client_for(p.ian).post(url).status_code == 405
    assert client_for(p.ian).delete(grading_urls(p, stage)["settings"]).status_code == 405
    assert not StageGrade.objects.exists()


def test_the_instructor_sets_the_project_grade_from_the_suggested_total(personas):
    p = personas
    grading_on(p.course)
    stage = scored(p)
    moderation.stage_grade_set(stage=stage, actor=p.ian, points=Decimal("6"))
    ian = client_for(p.ian)

    page = ian.get(reverse("grading:project", args=[p.project.pk]))
    done = ian.post(
        reverse("grading:project_grade", args=[p.project.pk]), {"points": "66.67", "comment": "OK"}
    )

    assert page.context["suggested"] == Decimal("66.67")
    assert done.status_code == 302
    assert AuditEvent.objects.filter(verb="grade.project_set").count() == 1


def test_the_settings_page_offers_only_the_courses_tas_and_instructors_save_it(personas):
    p = personas
    other_course_ta = UserFactory(email="ta-elsewhere@example.test")
    url = reverse("grading:settings", args=[p.course.pk])

    page = client_for(p.ian).get(url)
    choices = [c[0].value for c in page.context["form"].fields["moderator"].choices if c[0]]
    saved = client_for(p.ian).post(
        url,
        {
            "scorers": "both",
            "team_sees": "provisional",
            "moderator": p.tina.pk,
            **{f"weight-{k}": "1" for k in page.context["form"].stage_keys},
        },
    )
    stranger = client_for(p.ian).post(
        url, {"scorers": "both", "team_sees": "final", "moderator": other_course_ta.pk}
    )
    by_ta = client_for(p.tina).post(url, {"scorers": "staff", "team_sees": "final"})

    assert choices == [p.tina.pk]
    assert saved.status_code == 302
    assert stranger.status_code == 400
    assert by_ta.status_code == 403
    assert p.course.grading.team_sees == TeamSees.PROVISIONAL
    assert AuditEvent.objects.filter(verb="grading.settings_create").count() == 1


# --- what the team sees ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("team_sees", "released", "sees_grade", "sees_scores"),
    [
        (TeamSees.NOTHING, True, False, False),
        (TeamSees.FINAL, False, False, False),
        (TeamSees.FINAL, True, True, False),
        (TeamSees.PROVISIONAL, False, False, False),
        (TeamSees.PROVISIONAL, True, True, True),
    ],
)
def test_the_team_sees_its_grade_as_the_course_setting_says(
    personas, team_sees, released, sees_grade, sees_scores
):
    p = personas
    grading_on(p.course, team_sees=team_sees)
    stage = scored(p)
    moderation.stage_grade_set(
        stage=stage, actor=p.ian, points=Decimal("6"), comment="Well argued.", release=released
    )

    html = client_for(p.alice).get(stage_page(stage)).content.decode()

    assert ('id="team-grade"' in html) is sees_grade
    assert ("Well argued." in html) is sees_grade
    assert ('id="team-scores"' in html) is sees_scores


def test_the_team_never_sees_provisional_scores_before_a_grade_is_released(personas):
    p = personas
    grading_on(p.course, team_sees=TeamSees.PROVISIONAL)
    stage = scored(p)

    html = client_for(p.alice).get(stage_page(stage)).content.decode()

    assert 'id="grade-panel"' not in html


def test_under_anonymous_review_the_team_reads_reviewer_letters_beside_the_scores(personas):
    p = personas
    p.course.anonymous_reviewers = True
    p.course.save(update_fields=["anonymous_reviewers"])
    grading_on(p.course, team_sees=TeamSees.PROVISIONAL)
    stage = scored(p)
    moderation.stage_grade_set(stage=stage, actor=p.ian, points=Decimal("6"), release=True)

    html = client_for(p.alice).get(stage_page(stage)).content.decode()

    assert 'id="team-scores"' in html
    assert "Dr Erin Chen" not in html and "Tina" not in html
    assert "Reviewer A" in html


# --- the overview's cost --------------------------------------------------------------------


def _overview_queries(p) -> int:
    client = client_for(p.ian)
    url = reverse("grading:course", args=[p.course.pk])
    client.get(url)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


def _graded_projects(p, n: int) -> None:
    for i in range(n):
        student = UserFactory()
        enrol(p.course, student, Role.STUDENT)
        project = lifecycle_services.project_create(
            course=p.course, actor=student, title=f"Graded project {i}"
        )
        stage = current_stage(project)
        moderation.stage_grade_set(stage=stage, actor=p.ian, points=Decimal(i % 9))
        moderation.project_grade_set(project=project, actor=p.ian, points=Decimal(50))


def test_the_course_overview_query_count_does_not_grow_with_projects_and_grades(personas):
    p = personas
    grading_on(p.course)
    _graded_projects(p, 2)
    small = _overview_queries(p)
    _graded_projects(p, 8)
    large = _overview_queries(p)

    page = client_for(p.ian).get(reverse("grading:course", args=[p.course.pk]))
    assert len(page.context["rows"]) == 12
    assert sum(1 for r in page.context["rows"] if r["cells"][0]["grade"]) == 10
    assert small == large
