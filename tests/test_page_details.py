"""The smaller things a new user tripped over (issue 11, "What was seen"), each read from the
page as the person would see it: the reviewers page's two forms, the accept page's name, the
navbar's Reviews link, the submit page, the instructor's way to the board, /favicon.ico and the
stakeholder register's diff."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from factories import complete_answers, current_stage

from lifecycle import services as lifecycle_services
from reviews import services
from reviews.navigation import reviews_anything

pytestmark = pytest.mark.django_db


def client_for(user: Any = None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def _ids(html: str) -> list[str]:
    return re.findall(r'\sid="([^"]+)"', html)


def _reviewers(p: Any, user: Any) -> str:
    response = client_for(user).get(reverse("reviews:project_reviewers", args=[p.project.pk]))
    assert response.status_code == 200
    return response.content.decode()


# --- the reviewers page -------------------------------------------------------------------


def test_the_reviewers_page_has_no_element_id_twice_and_each_label_finds_its_own_field(personas):
    html = _reviewers(personas, personas.tina)  # staff see both forms
    ids = _ids(html)
    assert [i for i in set(ids) if ids.count(i) > 1] == []
    assert 'id="assign-email"' in html and 'id="invite-email"' in html
    assert 'for="assign-due_date"' in html and 'for="invite-due_date"' in html
    assert 'id="id_email"' not in html
    # the posted names stay as they were: only the ids carry the form's prefix
    for form_id in ("assign-email", "invite-email"):
        field = re.search(rf'<input[^>]*id="{form_id}"[^>]*>', html)
        assert field is not None and 'name="email"' in field.group(0)


def test_the_invitation_form_comes_before_the_lists_and_the_assignment_form(personas):
    for user in (personas.tina, personas.alice):
        html = _reviewers(personas, user)
        invite = html.index('id="invite-form"')
        assert invite < html.index('id="assignments"')
        assert invite < html.index('id="invitations"')
        if user == personas.tina:
            assert invite < html.index('id="assign-form"')


def test_a_post_with_the_plain_field_names_still_invites(personas):
    response = client_for(personas.tina).post(
        reverse("reviews:invitation_create", args=[personas.project.pk]),
        {"email": "mei@hospital.example", "name": "Dr Mei", "stage_definition": ""},
    )
    assert response.status_code == 302
    assert personas.project.invitations.get().email == "mei@hospital.example"


def test_the_outsider_does_not_see_the_reviewers_page(personas):
    url = reverse("reviews:project_reviewers", args=[personas.project.pk])
    assert client_for(personas.oscar).get(url).status_code == 404
    assert client_for(personas.tina).post(url).status_code == 405


# --- the invitation's accept page ---------------------------------------------------------


def test_the_accept_page_prefills_the_name_the_inviter_typed(personas):
    _, token = services.invitation_create(
        actor=personas.tina,
        course=personas.course,
        project=personas.project,
        email="mei@hospital.example",
        name="Dr Mei Chen",
    )
    html = client_for().get(reverse("reviews:invitation_accept", args=[token])).content.decode()
    field = re.search(r'<input[^>]*name="display_name"[^>]*>', html)
    assert field is not None
    assert 'value="Dr Mei Chen"' in field.group(0)


def test_the_accept_page_leaves_the_name_empty_when_the_inviter_typed_none(personas):
    _, token = services.invitation_create(
        actor=personas.tina,
        course=personas.course,
        project=personas.project,
        email="mei@hospital.example",
    )
    html = client_for().get(reverse("reviews:invitation_accept", args=[token])).content.decode()
    field = re.search(r'<input[^>]*name="display_name"[^>]*>', html)
    assert field is not None
    assert "value=" not in field.group(0)


# --- the navbar's Reviews link ------------------------------------------------------------


def _nav_has_reviews(user: Any) -> bool:
    html = client_for(user).get(reverse("home")).content.decode()
    return f'href="{reverse("reviews:inbox")}"' in html


def test_students_do_not_see_the_reviews_menu_and_reviewers_do(personas):
    p = personas
    assert not _nav_has_reviews(p.alice)
    assert not _nav_has_reviews(p.oscar)
    assert _nav_has_reviews(p.tina)
    assert _nav_has_reviews(p.ian)
    assert not _nav_has_reviews(p.erin)
    services.assignment_create(project=p.project, actor=p.tina, reviewer=p.erin, role="expert")
    assert _nav_has_reviews(p.erin)


def test_the_reviews_menu_follows_a_change_of_role_at_once(personas):
    """The answer is cached per person; a membership saved or deleted forgets theirs."""
    from lifecycle.models import Membership, Role

    p = personas
    assert not _nav_has_reviews(p.oscar)
    membership = Membership.objects.create(course=p.course, user=p.oscar, role=Role.TA)
    assert _nav_has_reviews(p.oscar)
    membership.delete()
    assert not _nav_has_reviews(p.oscar)


def test_whether_someone_reviews_costs_one_query_then_none(personas, django_assert_num_queries):
    with django_assert_num_queries(1):
        assert reviews_anything(personas.tina)
    with django_assert_num_queries(1):
        assert not reviews_anything(personas.alice)
    with django_assert_num_queries(0):
        assert reviews_anything(personas.tina)
        assert not reviews_anything(personas.alice)


# --- the submit page ----------------------------------------------------------------------


def test_the_submit_page_does_not_show_the_internal_draft_version(personas):
    stage = current_stage(personas.project)
    lifecycle_services.stakeholder_add(
        project=personas.project, actor=personas.alice, name="Nurses", kind="operator"
    )
    lifecycle_services.stage_save_draft(
        stage=stage,
        actor=personas.alice,
        answers=complete_answers(stage),
        base_version=stage.draft_version,
    )
    stage.refresh_from_db()
    assert stage.draft_version >= 1
    url = reverse(
        "lifecycle:stage_submit",
        args=[personas.project.pk, stage.cycle, stage.definition.key],
    )
    html = client_for(personas.alice).get(url).content.decode()
    text = re.sub(r"<[^>]+>", " ", html[html.index("<main") : html.index("</main>")])
    assert "Submit for review" in text
    assert "version" not in text.lower()
    assert f'name="draft_version" value="{stage.draft_version}"' in html  # still sent, hidden
    assert client_for(personas.oscar).get(url).status_code == 404


# --- the instructor's home ----------------------------------------------------------------


def test_the_course_staff_home_links_to_the_board_and_the_students_does_not(personas):
    board = reverse("reviews:board", args=[personas.course.pk])
    for staff in (personas.ian, personas.tina):
        html = client_for(staff).get(reverse("home")).content.decode()
        assert re.search(rf'<a[^>]*href="{board}"[^>]*>Board', html)
    assert board not in client_for(personas.alice).get(reverse("home")).content.decode()


# --- /favicon.ico -------------------------------------------------------------------------


def test_favicon_ico_answers_with_an_icon_to_anyone():
    response = client_for().get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/x-icon"
    body = response.content
    assert body[:4] == b"\x00\x00\x01\x00"  # an ICO header
    assert "max-age=86400" in response["Cache-Control"]
    assert client_for().head("/favicon.ico").status_code == 200
    assert client_for().post("/favicon.ico").status_code == 405


# --- the stakeholder register's diff ------------------------------------------------------


def test_the_stakeholder_register_diff_shows_kind_labels_not_keys(personas):
    p = personas
    stage = current_stage(p.project)
    lifecycle_services.stakeholder_add(
        project=p.project,
        actor=p.alice,
        name="Families of referred children",
        kind="affected_community",
        interests="Timely care",
        possible_harms="Under-triage",
    )
    lifecycle_services.stage_save_draft(
        stage=stage,
        actor=p.alice,
        answers=complete_answers(stage),
        base_version=stage.draft_version,
    )
    lifecycle_services.stage_submit(stage=current_stage(p.project), actor=p.alice)
    url = reverse(
        "lifecycle:stage_revisions", args=[p.project.pk, stage.cycle, stage.definition.key]
    )
    html = client_for(p.tina).get(url).content.decode()
    assert "Affected community" in html
    assert "affected_community" not in html
