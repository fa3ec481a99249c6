"""The late-policy page and the team's due-date panel, with every persona."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from factories import UserFactory, current_stage, enrol, fill_and_submit
from grading_support import grade_stages, late_settings, set_grade, submitted_at

from grading import late_services
from grading.models import DueDateExtension, GradingSettings, StageDueDate, StageGrade
from lifecycle import services as lifecycle_services
from lifecycle.models import AuditEvent, Role

pytestmark = pytest.mark.django_db

DUE = dt.datetime(2026, 11, 2, 23, 59, tzinfo=dt.UTC)


def client_for(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def page_url(p) -> str:
    return reverse("grading:late_policy", args=[p.course.pk])


@pytest.mark.parametrize(("who", "status"), [("tina", 200), ("ian", 200)])
def test_course_staff_open_the_late_policy_page(personas, who, status):
    p = personas
    grade_stages(p.course)
    response = client_for(getattr(p, who)).get(page_url(p))
    assert response.status_code == status
    html = response.content.decode()
    assert 'id="late-rule-form"' in html and 'id="due-dates-form"' in html
    assert 'id="extension-form"' in html
    assert reverse("grading:grades_csv", args=[p.course.pk]) in html


@pytest.mark.parametrize("who", ["alice", "carol", "erin", "oscar"])
def test_everyone_else_gets_a_404_from_every_late_policy_address(personas, who):
    p = personas
    (first, _) = grade_stages(p.course)
    extension = late_services.extension_grant(
        project=p.project, actor=p.ian, stage_key=first.key, due_at=DUE, reason="Ill"
    )
    client = client_for(getattr(p, who))
    course = [p.course.pk]
    assert client.get(page_url(p)).status_code == 404
    assert client.get(reverse("grading:grades_csv", args=course)).status_code == 404
    for name in ("late_rule", "due_dates", "extension_grant", "late_reapply"):
        assert client.post(reverse(f"grading:{name}", args=course), {}).status_code == 404
    revoke = reverse("grading:extension_revoke", args=[extension.pk])
    assert client.post(revoke).status_code == 404
    assert DueDateExtension.objects.filter(pk=extension.pk).exists()


def test_an_anonymous_visitor_is_sent_to_sign_in(personas):
    response = client_for(None).get(page_url(personas))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_wrong_method_is_refused_everywhere(personas):
    p = personas
    client = client_for(p.ian)
    course = [p.course.pk]
    assert client.post(page_url(p)).status_code == 405
    assert client.post(reverse("grading:grades_csv", args=course)).status_code == 405
    for name in ("late_rule", "due_dates", "extension_grant", "late_reapply"):
        assert client.get(reverse(f"grading:{name}", args=course)).status_code == 405
    assert client.get(reverse("grading:extension_revoke", args=[1])).status_code == 405


def test_a_ta_saves_a_per_day_rule_and_the_page_says_it_in_words(personas):
    p = personas
    client = client_for(p.tina)
    response = client.post(
        reverse("grading:late_rule", args=[p.course.pk]),
        {"rule": "per_day", "percent_per_day": "10", "cap_percent": "40"},
    )
    assert response.status_code == 302
    settings_row = GradingSettings.objects.get(course=p.course)
    assert (settings_row.late_rule, settings_row.late_cap_percent) == ("per_day", Decimal(40))
    html = client.get(page_url(p)).content.decode()
    assert "loses 10 % of its grade for each day or part of a day" in html
    assert "up to 40 %" in html


def test_a_cap_below_the_daily_penalty_is_shown_next_to_the_cap(personas):
    p = personas
    response = client_for(p.ian).post(
        reverse("grading:late_rule", args=[p.course.pk]),
        {"rule": "per_day", "percent_per_day": "20", "cap_percent": "10"},
    )
    assert response.status_code == 400
    form = response.context["rule_form"]
    assert "cap is below one day's penalty" in " ".join(form.errors["cap_percent"])
    assert not GradingSettings.objects.filter(course=p.course).exists()


def test_a_percentage_over_a_hundred_is_refused_by_the_form(personas):
    p = personas
    response = client_for(p.ian).post(
        reverse("grading:late_rule", args=[p.course.pk]),
        {"rule": "per_day", "percent_per_day": "150", "cap_percent": "10"},
    )
    assert response.status_code == 400
    assert "percent_per_day" in response.context["rule_form"].errors


def test_due_dates_are_saved_in_the_boards_time_zone_and_a_bad_one_is_shown_by_its_field(
    personas, settings
):
    p = personas
    settings.TIME_ZONE = "Europe/Berlin"  # UTC+1 in November
    first, second = grade_stages(p.course)
    client = client_for(p.tina)
    url = reverse("grading:due_dates", args=[p.course.pk])
    response = client.post(url, {f"due_{first.key}": "2026-11-02T23:59", f"due_{second.key}": ""})
    assert response.status_code == 302
    saved = StageDueDate.objects.get(course=p.course, stage_key=first.key).due_at
    assert saved == dt.datetime(2026, 11, 2, 22, 59, tzinfo=dt.UTC)
    html = client_for(p.alice).get(current_stage(p.project).get_absolute_url()).content.decode()
    assert "Due <strong>2 Nov 2026, 23:59</strong>" in html and "(Europe/Berlin)" in html
    assert not StageDueDate.objects.filter(stage_key=second.key).exists()

    response = client.post(url, {f"due_{first.key}": "the second of November"})
    assert response.status_code == 400
    assert response.context["due_form"].errors[f"due_{first.key}"] == [
        "A date and time, e.g. 2026-12-04 23:59."
    ]
    assert "A date and time, e.g. 2026-12-04 23:59." in response.content.decode()
    assert StageDueDate.objects.get(course=p.course, stage_key=first.key).due_at == saved


def test_staff_grant_an_extension_and_see_it_listed_then_revoke_it(personas):
    p = personas
    (first, _) = grade_stages(p.course)
    client = client_for(p.ian)
    response = client.post(
        reverse("grading:extension_grant", args=[p.course.pk]),
        {
            "project": p.project.pk,
            "stage_key": first.key,
            "due_at": "2026-11-05T12:00",
            "reason": "A team member was in hospital",
        },
    )
    assert response.status_code == 302
    html = client.get(page_url(p)).content.decode()
    assert "A team member was in hospital" in html
    extension = DueDateExtension.objects.get(project=p.project)
    assert reverse("grading:extension_revoke", args=[extension.pk]) in html
    assert client.post(reverse("grading:extension_revoke", args=[extension.pk])).status_code == 302
    assert not DueDateExtension.objects.exists()


def test_an_extension_without_a_reason_or_for_another_course_is_refused(personas):
    p = personas
    (first, _) = grade_stages(p.course)
    elsewhere = lifecycle_services.course_create(
        actor=p.ian, title="Another course", code="another-course", template=p.course.template
    )
    dave = UserFactory(email="dave@example.test")
    enrol(elsewhere, dave, Role.STUDENT)
    foreign = lifecycle_services.project_create(course=elsewhere, actor=dave, title="Elsewhere")
    url = reverse("grading:extension_grant", args=[p.course.pk])
    client = client_for(p.ian)
    response = client.post(
        url, {"project": p.project.pk, "stage_key": first.key, "due_at": "2026-11-05T12:00"}
    )
    assert response.status_code == 400
    assert "reason" in response.context["extension_form"].errors
    response = client.post(
        url,
        {
            "project": foreign.pk,
            "stage_key": first.key,
            "due_at": "2026-11-05T12:00",
            "reason": "Ill",
        },
    )
    assert response.status_code == 400
    assert "project" in response.context["extension_form"].errors
    assert not DueDateExtension.objects.exists()


def test_the_page_lists_grades_the_policy_would_change_and_a_moderator_re_applies_them(
    personas,
):
    p = personas
    (first, _) = grade_stages(p.course)
    late_services.due_date_set(course=p.course, actor=p.ian, stage_key=first.key, due_at=DUE)
    stage = current_stage(p.project)
    fill_and_submit(stage, p.alice)
    submitted_at(stage, DUE + dt.timedelta(hours=5))
    late_settings(p.course, late_rule="per_day", late_percent_per_day=10, late_cap_percent=50)
    grade = set_grade(stage, points="8", moderator=p.ian)
    html = client_for(p.tina).get(page_url(p)).content.decode()
    assert "out-of-policy-row" in html and "8.00 → 7.20" in html
    assert "A moderator (an instructor" in html  # Tina is not the moderator
    client = client_for(p.ian)
    url = reverse("grading:late_reapply", args=[p.course.pk])
    assert client.post(url, {}).status_code == 302  # nothing chosen: nothing changes
    assert StageGrade.objects.get(stage=stage, replaced_at__isnull=True).pk == grade.pk
    assert client.post(url, {"grade": [grade.pk]}).status_code == 302
    standing = StageGrade.objects.get(stage=stage, replaced_at__isnull=True)
    assert standing.final_points == Decimal("7.20")
    assert client_for(p.tina).post(url, {"all": "1"}).status_code == 404  # not a moderator


def _late_page_queries(client, url) -> int:
    client.get(url)
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def _more_teams_with_grades_and_extensions(p, first, n: int) -> None:
    for _ in range(n):
        student = UserFactory()
        enrol(p.course, student, Role.STUDENT)
        project = lifecycle_services.project_create(
            course=p.course, actor=student, title=f"Team of {student.email}"
        )
        stage = current_stage(project)
        fill_and_submit(stage, student)
        submitted_at(stage, DUE + dt.timedelta(days=2))
        set_grade(stage, points="6", moderator=p.ian)
        late_services.extension_grant(
            project=project,
            actor=p.ian,
            stage_key=first.key,
            due_at=DUE + dt.timedelta(days=1),
            reason="Ill",
        )


def test_the_late_policy_page_costs_the_same_queries_with_more_teams(personas):
    p = personas
    (first, _) = grade_stages(p.course)
    late_settings(p.course, late_rule="per_day", late_percent_per_day=10, late_cap_percent=50)
    late_services.due_date_set(course=p.course, actor=p.ian, stage_key=first.key, due_at=DUE)
    client = client_for(p.ian)
    _more_teams_with_grades_and_extensions(p, first, 1)
    small = _late_page_queries(client, page_url(p))
    _more_teams_with_grades_and_extensions(p, first, 6)
    large = _late_page_queries(client, page_url(p))
    assert large == small
    assert client.get(page_url(p)).content.decode().count("extension-row") == 7


# --- the team's panel --------------------------------------------------------------------


def test_the_team_sees_its_extended_due_date_and_the_rule_on_its_project_and_stage_pages(
    personas,
):
    p = personas
    (first, _) = grade_stages(p.course)
    late_settings(p.course, late_rule="per_day", late_percent_per_day=10, late_cap_percent=30)
    late_services.due_date_set(course=p.course, actor=p.ian, stage_key=first.key, due_at=DUE)
    late_services.extension_grant(
        project=p.project,
        actor=p.ian,
        stage_key=first.key,
        due_at=DUE + dt.timedelta(days=3),
        reason="Illness in the team",
    )
    stage = current_stage(p.project)
    client = client_for(p.alice)
    for url in (
        reverse("lifecycle:project_detail", args=[p.project.pk]),
        stage.get_absolute_url(),
    ):
        html = client.get(url).content.decode()
        assert "Due 2 Nov 2026, 23:59 (extended to <strong>5 Nov 2026, 23:59</strong>" in html
        assert "Illness in the team" in html
        assert "loses 10 % of its grade for each day or part of a day" in html
    carol_html = (
        client_for(p.carol)
        .get(reverse("lifecycle:project_detail", args=[p.other_project.pk]))
        .content.decode()
    )
    assert "Illness in the team" not in carol_html
    assert "Due <strong>2 Nov 2026, 23:59</strong>" in carol_html


def test_after_the_due_date_an_unsubmitted_stage_shows_how_late_it_is_and_the_penalty(
    personas,
):
    p = personas
    grade_stages(p.course)
    first_key = p.course.template.stages.order_by("order")[0].key
    late_settings(p.course, late_rule="per_day", late_percent_per_day=10, late_cap_percent=50)
    due = timezone.now() - dt.timedelta(days=1, hours=2)  # two started days ago
    late_services.due_date_set(course=p.course, actor=p.ian, stage_key=first_key, due_at=due)
    html = client_for(p.alice).get(current_stage(p.project).get_absolute_url()).content.decode()
    assert "Not submitted: late by 2 days, penalty 20.00 %." in html


def test_a_stage_without_a_due_date_shows_no_panel(personas):
    p = personas
    grade_stages(p.course)
    html = client_for(p.alice).get(current_stage(p.project).get_absolute_url()).content.decode()
    assert "due-panel" not in html


def test_every_late_policy_change_is_in_the_course_audit_trail(personas):
    p = personas
    (first, _) = grade_stages(p.course)
    client = client_for(p.ian)
    client.post(
        reverse("grading:late_rule", args=[p.course.pk]),
        {"rule": "cutoff", "percent_per_day": "10", "cap_percent": "50"},
    )
    client.post(
        reverse("grading:due_dates", args=[p.course.pk]), {f"due_{first.key}": "2026-11-02T23:59"}
    )
    verbs = set(AuditEvent.objects.filter(course=p.course).values_list("verb", flat=True))
    assert {"grading.late_policy", "grading.due_date_set"} <= verbs


def test_a_course_that_does_not_grade_pays_one_query_for_grading_on_a_stage_page(personas):
    """The default template's stages have rubrics, but a course without grading settings has
    no due dates and shows no grade: its pages read the settings once, and nothing else of
    grading's."""
    p = personas
    client = client_for(p.alice)
    url = current_stage(p.project).get_absolute_url()
    client.get(url)  # warm the session and the template caches
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    grading_queries = [q["sql"] for q in queries.captured_queries if '"grading_' in q["sql"]]
    assert len(grading_queries) == 1, grading_queries
    # Once it grades, the panels read the due date and the extension too.
    late_settings(p.course, late_rule="per_day", late_percent_per_day=10, late_cap_percent=30)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    assert len([q for q in queries.captured_queries if '"grading_' in q["sql"]]) > 1
