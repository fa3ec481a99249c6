"""Team membership: course staff add or remove a student; a team member adds a classmate (a
student of the course who is not on another active team); each change is audited, and a
removed student loses access at once."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from factories import UserFactory, conclude_not_pursued, enrol

from lifecycle import teams
from lifecycle.audit import verify_chain
from lifecycle.errors import IllegalTransition, InvalidAnswers, NotAllowed
from lifecycle.models import AuditEvent, Project, Role


@pytest.fixture
def dave(personas):
    """A student of the course on no team yet."""
    user = UserFactory(email="dave@example.test", display_name="Dave")
    enrol(personas.course, user, Role.STUDENT)
    return user


def team(project: Project) -> set[str]:
    return set(Project.objects.get(pk=project.pk).members.values_list("email", flat=True))


def client_for(personas: Any, who: Any) -> Client:
    client = Client()
    client.force_login(getattr(personas, who) if isinstance(who, str) else who)
    return client


# --- services ---------------------------------------------------------------------------------


def test_a_team_member_adds_a_classmate_with_an_audit_event(personas, dave):
    p = personas
    teams.project_member_add(project=p.project, actor=p.bob, user=dave)
    assert team(p.project) == {p.alice.email, p.bob.email, dave.email}
    event = AuditEvent.objects.get(verb="project.member_add")
    assert event.actor == p.bob and event.project_id == p.project.pk
    assert event.old == {"members": sorted([p.alice.email, p.bob.email])}
    assert event.new["user"] == dave.email and event.new["by"] == "team"
    assert verify_chain().intact


def test_a_team_member_cannot_add_someone_on_another_active_team_but_staff_can(personas):
    p = personas
    with pytest.raises(InvalidAnswers, match="another team"):
        teams.project_member_add(project=p.project, actor=p.alice, user=p.carol)
    assert p.carol.email not in team(p.project)
    teams.project_member_add(project=p.project, actor=p.tina, user=p.carol)
    assert p.carol.email in team(p.project)
    event = AuditEvent.objects.get(verb="project.member_add")
    assert event.new["by"] == "staff" and event.new["also_in"] == [p.other_project.pk]


def test_a_student_of_a_concluded_team_is_free_to_be_added(personas, dave):
    p = personas
    conclude_not_pursued(p.other_project, p.carol, p.tina)
    teams.project_member_add(project=p.project, actor=p.alice, user=p.carol)
    assert p.carol.email in team(p.project)


def test_only_students_of_the_course_join_and_only_team_or_staff_add(personas, dave):
    p = personas
    stranger = UserFactory(email="stranger@example.test")
    for user in (p.tina, p.ian, p.erin, stranger, None):
        with pytest.raises(InvalidAnswers):
            teams.project_member_add(project=p.project, actor=p.alice, user=user)
    for actor in (p.carol, p.erin, p.oscar, dave):
        with pytest.raises(NotAllowed):
            teams.project_member_add(project=p.project, actor=actor, user=dave)
    with pytest.raises(IllegalTransition, match="already"):
        teams.project_member_add(project=p.project, actor=p.alice, user=p.bob)
    assert team(p.project) == {p.alice.email, p.bob.email}
    assert not AuditEvent.objects.filter(verb="project.member_add").exists()


def test_only_staff_remove_and_never_the_last_member(personas):
    p = personas
    for actor in (p.alice, p.bob, p.carol, p.erin):
        with pytest.raises(NotAllowed):
            teams.project_member_remove(project=p.project, actor=actor, user=p.bob)
    teams.project_member_remove(project=p.project, actor=p.ian, user=p.bob)
    assert team(p.project) == {p.alice.email}
    event = AuditEvent.objects.get(verb="project.member_remove")
    assert (event.actor, event.new) == (p.ian, {"user": p.bob.email, "members": [p.alice.email]})
    with pytest.raises(IllegalTransition, match="last member"):
        teams.project_member_remove(project=p.project, actor=p.ian, user=p.alice)
    with pytest.raises(InvalidAnswers):
        teams.project_member_remove(project=p.project, actor=p.ian, user=p.carol)


def test_a_concluded_project_takes_no_new_members(personas, dave):
    p = personas
    conclude_not_pursued(p.project, p.alice, p.tina)
    with pytest.raises(IllegalTransition, match="concluded"):
        teams.project_member_add(project=p.project, actor=p.tina, user=dave)


# --- views ------------------------------------------------------------------------------------


def test_a_removed_student_loses_access_at_once(personas):
    p = personas
    bob = client_for(p, "bob")
    url = p.project.get_absolute_url()
    assert bob.get(url).status_code == 200
    response = client_for(p, "tina").post(
        reverse("lifecycle:project_member_remove", args=[p.project.pk, p.bob.pk])
    )
    assert response.status_code == 302
    # Bob's very next request, on the session he already had.
    assert bob.get(url).status_code == 404
    stage = Project.objects.get(pk=p.project.pk).current_stage
    assert bob.get(stage.get_absolute_url()).status_code == 404


def test_the_members_list_offers_add_to_the_team_and_remove_to_staff(personas):
    p = personas
    member_page = client_for(p, "alice").get(p.project.get_absolute_url()).content.decode()
    assert 'id="team-member-form"' in member_page
    assert "Add a classmate" in member_page
    assert "project_member_remove" not in member_page and "/remove/" not in re.sub(
        r"stakeholders/\d+/remove/", "", member_page
    )
    staff_page = client_for(p, "tina").get(p.project.get_absolute_url()).content.decode()
    assert reverse("lifecycle:project_member_remove", args=[p.project.pk, p.bob.pk]) in staff_page
    assert "Add a student of the course" in staff_page


def test_a_member_adds_a_classmate_by_email_and_errors_show_on_the_form(personas, dave):
    p = personas
    url = reverse("lifecycle:project_member_add", args=[p.project.pk])
    alice = client_for(p, "alice")
    refused = alice.post(url, {"email": "carol@example.test"})
    assert refused.status_code == 400
    assert "on another team of this course" in refused.content.decode()
    assert alice.post(url, {"email": "nobody@example.test"}).status_code == 400
    assert alice.post(url, {"email": "DAVE@example.test"}).status_code == 302
    assert dave.email in team(p.project)
    assert client_for(p, dave).get(p.project.get_absolute_url()).status_code == 200
    for who in ("carol", "erin", "oscar"):
        assert client_for(p, who).post(url, {"email": "x@example.test"}).status_code == 404
    assert alice.get(url).status_code == 405


def test_staff_change_teams_from_the_course_page(personas, dave):
    p = personas
    course_url = reverse("lifecycle:course_detail", args=[p.course.pk])
    page = client_for(p, "ian").get(course_url).content.decode()
    assert 'id="course-team-form"' in page
    assert f'<option value="{p.project.pk}">Triage assistant</option>' in page
    student_page = client_for(p, "alice").get(course_url).content.decode()
    assert 'id="course-team-form"' not in student_page

    url = reverse("lifecycle:course_team_change", args=[p.course.pk])
    ian = client_for(p, "ian")
    ian.post(url, {"project": p.project.pk, "email": dave.email, "action": "add"})
    assert dave.email in team(p.project)
    response = ian.post(
        url, {"project": p.project.pk, "email": dave.email, "action": "remove"}, follow=True
    )
    assert "no longer on" in response.content.decode()
    assert dave.email not in team(p.project)
    for who in ("alice", "carol", "oscar"):
        client = client_for(p, who)
        data = {"project": p.project.pk, "email": dave.email, "action": "add"}
        assert client.post(url, data).status_code == 404
    assert dave.email not in team(p.project)
    assert AuditEvent.objects.filter(verb__startswith="project.member_").count() == 2
