"""The course services (create, enrol, join, invite, settings) and the stakeholder register's,
each guard and each audit event asserted with its payload."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core import mail
from factories import UserFactory, conclude_not_pursued, default_template

from lifecycle import services
from lifecycle.errors import IllegalTransition, InvalidAnswers, NotAllowed
from lifecycle.models import AuditEvent, Course, Membership, Role, Stakeholder

pytestmark = pytest.mark.django_db


def last_event(verb: str) -> AuditEvent:
    return AuditEvent.objects.filter(verb=verb).latest("seq")


# --- courses -------------------------------------------------------------------------------


def test_creating_a_course_makes_its_creator_the_instructor_and_is_audited(personas):
    template = default_template()
    course = services.course_create(
        actor=personas.oscar,
        title="Applied ML",
        code="AML-1",
        template=template,
        term="Autumn",
        join_code="JOINME42",
    )
    course.refresh_from_db()
    assert (course.title, course.code, course.term, course.join_code) == (
        "Applied ML",
        "AML-1",
        "Autumn",
        "JOINME42",
    )
    assert Membership.objects.get(course=course).role == Role.INSTRUCTOR
    event = last_event("course.create")
    assert (event.actor, event.course_id, event.project_id) == (personas.oscar, course.pk, None)
    assert event.new == {"title": "Applied ML", "code": "AML-1", "template": template.pk}


def test_a_course_without_a_join_code_gets_one(personas):
    course = services.course_create(
        actor=personas.oscar, title="X", code="X-1", template=default_template()
    )
    assert course.join_code


def test_course_codes_and_join_codes_are_unique_and_anonymous_creates_nothing(personas):
    template = default_template()
    taken = personas.course
    with pytest.raises(IllegalTransition, match="exists already"):
        services.course_create(actor=personas.ian, title="X", code=taken.code, template=template)
    with pytest.raises(IllegalTransition, match="join code"):
        services.course_create(
            actor=personas.ian,
            title="X",
            code="NEW-1",
            template=template,
            join_code=taken.join_code,
        )
    with pytest.raises(NotAllowed):
        services.course_create(actor=AnonymousUser(), title="X", code="NEW-2", template=template)
    assert not Course.objects.filter(code__startswith="NEW").exists()


def test_an_instructor_enrols_staff_and_a_ta_enrols_students_only(personas):
    p = personas
    newcomer = UserFactory(email="new@example.test")
    with pytest.raises(NotAllowed, match="instructor"):
        services.course_add_member(course=p.course, actor=p.tina, user=newcomer, role=Role.TA)
    with pytest.raises(NotAllowed, match="staff"):
        services.course_add_member(course=p.course, actor=p.alice, user=newcomer, role="student")
    assert not Membership.objects.filter(user=newcomer).exists()
    membership = services.course_add_member(
        course=p.course, actor=p.tina, user=newcomer, role=Role.STUDENT
    )
    assert membership.role == Role.STUDENT
    event = last_event("membership.add")
    assert event.new == {"role": "student", "user": "new@example.test"}
    assert event.course_id == p.course.pk


def test_changing_a_members_role_is_audited_with_the_old_role_and_same_role_is_no_event(personas):
    p = personas
    before = AuditEvent.objects.count()
    services.course_add_member(course=p.course, actor=p.ian, user=p.carol, role=Role.STUDENT)
    assert AuditEvent.objects.count() == before
    services.course_add_member(course=p.course, actor=p.ian, user=p.carol, role=Role.TA)
    assert Membership.objects.get(course=p.course, user=p.carol).role == Role.TA
    event = last_event("membership.role_change")
    assert event.old == {"role": "student"}
    assert event.new == {"role": "ta", "user": "carol@example.test"}
    assert AuditEvent.objects.count() == before + 1


def test_joining_with_a_code_is_case_and_space_insensitive_and_needs_an_account(personas):
    p = personas
    membership = services.course_join(user=p.oscar, join_code=f"  {p.course.join_code.lower()} ")
    assert (membership.course, membership.role) == (p.course, Role.STUDENT)
    event = last_event("membership.join")
    assert event.actor == p.oscar
    assert event.new == {"role": "student", "user": "oscar@example.test"}
    with pytest.raises(NotAllowed):
        services.course_join(user=AnonymousUser(), join_code=p.course.join_code)


def test_staff_invite_students_once_each_and_the_mail_goes_out_on_commit(
    personas, django_capture_on_commit_callbacks
):
    p = personas
    with django_capture_on_commit_callbacks(execute=True):
        invited = services.course_invite_students(
            course=p.course,
            actor=p.tina,
            emails=[" Ann@Example.test ", "", "ann@example.test", "bo@example.test", "  "],
        )
    assert invited == ["ann@example.test", "bo@example.test"]
    assert [m.to for m in mail.outbox] == [["ann@example.test"], ["bo@example.test"]]
    assert p.course.join_code in mail.outbox[0].body
    event = last_event("course.invite")
    assert event.new == {"emails": invited, "role": "student"}


def test_only_staff_invite_and_an_empty_list_is_refused(personas):
    p = personas
    with pytest.raises(NotAllowed):
        services.course_invite_students(course=p.course, actor=p.alice, emails=["x@example.test"])
    with pytest.raises(InvalidAnswers):
        services.course_invite_students(course=p.course, actor=p.tina, emails=["", "  "])
    assert not AuditEvent.objects.filter(verb="course.invite").exists()


def test_course_settings_are_an_instructors_and_only_changes_are_audited(personas):
    p = personas
    with pytest.raises(NotAllowed):
        services.course_update_settings(course=p.course, actor=p.tina, term="Spring")
    with pytest.raises(InvalidAnswers):
        services.course_update_settings(course=p.course, actor=p.ian, join_code="HACKED")
    old_term = p.course.term
    services.course_update_settings(
        course=p.course, actor=p.ian, term="Spring", title=p.course.title
    )
    event = last_event("course.settings")
    assert event.old == {"term": old_term}
    assert event.new == {"term": "Spring"}
    count = AuditEvent.objects.count()
    services.course_update_settings(course=p.course, actor=p.ian, term="Spring")
    assert AuditEvent.objects.count() == count
    p.course.refresh_from_db()
    assert p.course.term == "Spring"


# --- the stakeholder register --------------------------------------------------------------


def test_a_stakeholder_is_added_cleaned_and_audited(personas):
    p = personas
    s = services.stakeholder_add(
        project=p.project,
        actor=p.alice,
        name="  Clinicians  ",
        kind="operator",
        interests=None,
        consulted=1,
    )
    s.refresh_from_db()
    assert (s.name, s.kind, s.interests, s.consulted) == ("Clinicians", "operator", "", True)
    assert last_event("stakeholder.add").new == s.snapshot()


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"name": "   ", "kind": "operator"}, "name"),
        ({"name": "x" * 201, "kind": "operator"}, "name"),
        ({"name": "Nurses", "kind": "robot"}, "kind"),
        ({"name": "Nurses", "kind": "operator", "salary": 3}, "salary"),
        ({"name": "Nurses"}, "name"),
        ({"kind": "operator"}, "name"),
    ],
)
def test_a_stakeholder_needs_a_short_name_a_known_kind_and_known_fields(personas, fields, error):
    with pytest.raises(InvalidAnswers) as excinfo:
        services.stakeholder_add(project=personas.project, actor=personas.alice, **fields)
    assert error in excinfo.value.errors
    assert not Stakeholder.objects.exists()


def test_a_name_of_exactly_200_characters_is_accepted(personas):
    s = services.stakeholder_add(
        project=personas.project, actor=personas.alice, name="x" * 200, kind="other"
    )
    assert len(s.name) == 200


def test_updating_a_stakeholder_audits_only_what_changed(personas):
    p = personas
    s = services.stakeholder_add(project=p.project, actor=p.alice, name="Nurses", kind="operator")
    count = AuditEvent.objects.count()
    services.stakeholder_update(stakeholder=s, actor=p.bob, name="Nurses", kind="operator")
    assert AuditEvent.objects.count() == count
    services.stakeholder_update(
        stakeholder=s, actor=p.bob, name=" Night nurses ", kind="operator", consultation="Met"
    )
    s.refresh_from_db()
    assert (s.name, s.consultation) == ("Night nurses", "Met")
    event = last_event("stakeholder.update")
    assert event.old == {"name": "Nurses", "consultation": ""}
    assert event.new == {"name": "Night nurses", "consultation": "Met"}


def test_removing_a_stakeholder_is_audited_with_what_it_was(personas):
    p = personas
    s = services.stakeholder_add(project=p.project, actor=p.alice, name="Nurses", kind="operator")
    snapshot = s.snapshot()
    services.stakeholder_remove(stakeholder=s, actor=p.bob)
    assert not Stakeholder.objects.filter(pk=snapshot["id"]).exists()
    assert last_event("stakeholder.remove").old == snapshot


def test_the_register_of_a_concluded_project_is_closed(personas):
    p = personas
    s = services.stakeholder_add(project=p.project, actor=p.alice, name="Nurses", kind="operator")
    conclude_not_pursued(p.project, p.alice, p.tina)
    with pytest.raises(IllegalTransition):
        services.stakeholder_add(project=p.project, actor=p.alice, name="B", kind="other")
    with pytest.raises(IllegalTransition):
        services.stakeholder_update(stakeholder=s, actor=p.alice, name="C")
    with pytest.raises(IllegalTransition):
        services.stakeholder_remove(stakeholder=s, actor=p.alice)


def test_other_teams_cannot_update_or_remove_a_stakeholder(personas):
    p = personas
    s = services.stakeholder_add(project=p.project, actor=p.alice, name="Nurses", kind="operator")
    with pytest.raises(NotAllowed):
        services.stakeholder_update(stakeholder=s, actor=p.carol, name="C")
    with pytest.raises(NotAllowed):
        services.stakeholder_remove(stakeholder=s, actor=p.carol)
    assert Stakeholder.objects.filter(pk=s.pk).exists()


def test_a_mail_server_that_is_down_does_not_undo_or_break_an_invitation(
    personas, django_capture_on_commit_callbacks, monkeypatch, caplog
):
    import django.core.mail

    def refusing_connection(*args, **kwargs):
        raise ConnectionRefusedError("the mail server is down")

    monkeypatch.setattr(django.core.mail, "get_connection", refusing_connection)
    with django_capture_on_commit_callbacks(execute=True):
        invited = services.course_invite_students(
            course=personas.course, actor=personas.tina, emails=["ann@example.test"]
        )
    assert invited == ["ann@example.test"]
    assert AuditEvent.objects.filter(verb="course.invite").count() == 1
    assert "Could not send 1 course invitation" in caplog.text


def test_a_new_project_opens_only_its_first_stage(personas):
    stages = list(personas.project.stages.order_by("definition__order"))
    assert [s.cycle for s in stages] == [1] * len(stages)
    assert stages[0].opened_at is not None
    assert [s.opened_at for s in stages[1:]] == [None] * (len(stages) - 1)
    assert personas.project.current_stage == stages[0]
