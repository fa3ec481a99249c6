"""Every lifecycle service opens its own transaction: called outside any (as a Celery task or a
management command would), each still records its audit event, which refuses to be written
outside a transaction. A service without ``@transaction.atomic`` fails here."""

from __future__ import annotations

import datetime as dt

import pytest
from factories import (
    UserFactory,
    advance_to,
    conclude_not_pursued,
    current_stage,
    default_template,
    fill_and_submit,
)

from lifecycle import services
from lifecycle.models import AuditEvent, Role

pytestmark = pytest.mark.django_db(transaction=True)


def verbs_since(seq: int) -> list[str]:
    return list(
        AuditEvent.objects.filter(seq__gt=seq).order_by("seq").values_list("verb", flat=True)
    )


def last_seq() -> int:
    return AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def test_course_services_run_in_their_own_transaction(personas):
    p = personas
    start = last_seq()
    course = services.course_create(
        actor=p.ian, title="Applied ML", code="AML-2", template=default_template()
    )
    newcomer = UserFactory(email="newcomer@example.test")
    services.course_add_member(course=course, actor=p.ian, user=newcomer, role=Role.STUDENT)
    services.course_add_member(course=course, actor=p.ian, user=newcomer, role=Role.TA)
    services.course_join(user=p.oscar, join_code=course.join_code)
    services.course_invite_students(course=course, actor=p.ian, emails=["new@example.test"])
    services.course_update_settings(course=course, actor=p.ian, term="Spring")
    assert verbs_since(start) == [
        "course.create",
        "membership.add",
        "membership.role_change",
        "membership.join",
        "course.invite",
        "course.settings",
    ]


def test_project_and_stage_services_run_in_their_own_transaction(personas):
    p = personas
    start = last_seq()
    project = services.project_create(course=p.course, actor=p.carol, title="Second project")
    stage = current_stage(project)
    services.stage_set_due_date(stage=stage, actor=p.tina, due_date=dt.date(2026, 12, 1))
    stakeholder = services.stakeholder_add(
        project=project, actor=p.carol, name="Farmers", kind="direct_user"
    )
    services.stakeholder_update(stakeholder=stakeholder, actor=p.carol, interests="Yield")
    revision = fill_and_submit(stage, p.carol)
    services.stage_request_changes(stage=stage, revision=revision, actor=p.tina, reason="More")
    revision = services.stage_submit(stage=stage, actor=p.carol)
    services.stage_mark_approved(stage=stage, revision=revision, actor=p.tina)
    services.stakeholder_remove(stakeholder=stakeholder, actor=p.carol)
    assert verbs_since(start) == [
        "project.create",
        "stage.set_due_date",
        "stakeholder.add",
        "stakeholder.update",
        "stage.draft_save",
        "stage.submit",
        "stage.request_changes",
        "stage.submit",
        "stage.approve",
        "stakeholder.remove",
    ]


def test_loop_back_and_conclusion_run_in_their_own_transaction(personas):
    p = personas
    advance_to(p.project, 7, team_member=p.alice, reviewer=p.tina)
    start = last_seq()
    services.project_loop_back(project=p.project, actor=p.alice, to_order=2, reason="Drift")
    conclude_not_pursued(p.project, p.alice, p.tina)
    assert verbs_since(start) == [
        "project.loop_back",
        "proposal.submit",
        "proposal.approve",
        "project.conclude",
    ]
