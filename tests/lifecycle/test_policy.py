"""Gate policies that cannot be met are refused when a course's settings or a template's stage
are saved, with a message that says why."""

from __future__ import annotations

import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from factories import CourseFactory, UserFactory, default_template

from lifecycle import services
from lifecycle.audit import verify_chain
from lifecycle.errors import InvalidAnswers, NotAllowed
from lifecycle.models import (
    AuditEvent,
    Course,
    LifecycleTemplate,
    Membership,
    StageDefinition,
)

pytestmark = pytest.mark.django_db

EXPERT_STAGES = [
    "1. Identify a problem and its stakeholders",
    "3. Compile data",
    "5. Test extensively",
    "6. Deploy and monitor",
]
STAFF_ONLY_STAGES = [
    "2. Identify an algorithmic approach",
    "4. Build and train the model",
    "7. Iterate",
]


def staff_only_template(slug: str = "staff-only", version: int = 1) -> LifecycleTemplate:
    """A two-stage template whose gates need course staff only."""
    template = LifecycleTemplate.objects.create(
        slug=slug, version=version, name="Staff-reviewed life cycle"
    )
    for order, key, title in ((1, "problem", "Problem"), (2, "approach", "Approach")):
        StageDefinition.objects.create(
            template=template,
            order=order,
            key=key,
            title=title,
            min_approvals=1,
            min_staff_approvals=1,
            min_expert_approvals=0,
        )
    return template


def all_messages(error: InvalidAnswers) -> str:
    return " ".join(error.errors["__all__"])


# --- course settings ------------------------------------------------------------------------


def test_experts_cannot_be_turned_off_while_the_template_needs_expert_approvals(personas):
    p = personas
    with pytest.raises(InvalidAnswers) as refused:
        services.course_update_settings(
            course=p.course, actor=p.ian, allows_experts=False, expert_invitations="not_allowed"
        )

    message = all_messages(refused.value)
    assert p.course.title in message
    for stage in EXPERT_STAGES:
        assert stage in message
    for stage in STAFF_ONLY_STAGES:
        assert stage not in message
    p.course.refresh_from_db()
    assert p.course.allows_experts and p.course.expert_invitations == "allowed"
    assert not AuditEvent.objects.filter(verb="course.settings").exists()


def test_a_course_without_experts_cannot_let_teams_invite_experts(personas):
    p = personas
    course = CourseFactory(template=staff_only_template())
    Membership.objects.create(course=course, user=p.ian, role="instructor")

    with pytest.raises(InvalidAnswers) as refused:
        services.course_update_settings(course=course, actor=p.ian, allows_experts=False)
    assert "cannot let teams invite experts" in all_messages(refused.value)
    course.refresh_from_db()
    assert course.allows_experts

    services.course_update_settings(
        course=course, actor=p.ian, allows_experts=False, expert_invitations="not_allowed"
    )
    for policy in ("allowed", "after_confirmation"):
        with pytest.raises(InvalidAnswers) as refused:
            services.course_update_settings(course=course, actor=p.ian, expert_invitations=policy)
        assert "cannot let teams invite experts" in all_messages(refused.value)
    course.refresh_from_db()
    assert (course.allows_experts, course.expert_invitations) == (False, "not_allowed")


def test_experts_cannot_be_turned_off_while_a_running_project_still_needs_them(personas):
    """Projects keep the template version they started on: a course moved to a version
    without expert gates still has projects whose gates need experts."""
    p = personas
    assert p.project.template == p.course.template  # the default, with expert gates
    Course.objects.filter(pk=p.course.pk).update(template=staff_only_template())
    p.course.refresh_from_db()

    with pytest.raises(InvalidAnswers) as refused:
        services.course_update_settings(
            course=p.course, actor=p.ian, allows_experts=False, expert_invitations="not_allowed"
        )

    message = all_messages(refused.value)
    for stage in EXPERT_STAGES:
        assert stage in message
    p.course.refresh_from_db()
    assert p.course.allows_experts


@pytest.mark.parametrize("who", ["tina", "alice", "erin", "oscar"])
def test_only_an_instructor_changes_the_course_settings(personas, who):
    p = personas
    with pytest.raises(NotAllowed):
        services.course_update_settings(
            course=p.course, actor=getattr(p, who), invitation_expiry_days=30
        )
    p.course.refresh_from_db()
    assert p.course.invitation_expiry_days == 14
    assert not AuditEvent.objects.filter(verb="course.settings").exists()


def test_an_unknown_setting_is_refused(personas):
    p = personas
    with pytest.raises(InvalidAnswers) as refused:
        services.course_update_settings(course=p.course, actor=p.ian, join_code="HACKED")
    assert "join_code" in refused.value.errors


def test_valid_changes_are_audited_with_old_and_new_values(personas):
    p = personas
    services.course_update_settings(
        course=p.course,
        actor=p.ian,
        invitation_expiry_days=7,
        expert_invitations="after_confirmation",
        reminder_limit=2,  # unchanged: not in the event
    )

    p.course.refresh_from_db()
    assert p.course.invitation_expiry_days == 7
    assert p.course.expert_invitations == "after_confirmation"
    [event] = AuditEvent.objects.filter(verb="course.settings")
    assert event.actor == p.ian and event.course_id == p.course.pk
    assert event.old == {"invitation_expiry_days": 14, "expert_invitations": "allowed"}
    assert event.new == {"invitation_expiry_days": 7, "expert_invitations": "after_confirmation"}
    assert verify_chain().intact


def test_a_change_that_changes_nothing_is_not_audited(personas):
    p = personas
    services.course_update_settings(course=p.course, actor=p.ian, invitation_expiry_days=14)
    assert not AuditEvent.objects.filter(verb="course.settings").exists()


def test_turning_experts_off_on_a_staff_only_template_is_allowed_and_audited(personas):
    p = personas
    course = CourseFactory(template=staff_only_template())
    Membership.objects.create(course=course, user=p.ian, role="instructor")
    services.course_update_settings(
        course=course, actor=p.ian, allows_experts=False, expert_invitations="not_allowed"
    )
    [event] = AuditEvent.objects.filter(verb="course.settings", course=course)
    assert event.old == {"allows_experts": True, "expert_invitations": "allowed"}
    assert event.new == {"allows_experts": False, "expert_invitations": "not_allowed"}


def test_the_admin_path_refuses_the_same_course_policy(personas):
    p = personas
    p.course.allows_experts = False
    p.course.expert_invitations = "not_allowed"
    with pytest.raises(ValidationError) as refused:
        p.course.full_clean()
    assert EXPERT_STAGES[0] in " ".join(refused.value.messages)


# --- stage definitions ----------------------------------------------------------------------


def test_a_stage_whose_minimum_is_below_its_role_minimums_is_refused(db):
    stage = StageDefinition(
        template=staff_only_template(),
        order=3,
        key="peer-check",
        title="Peer check",
        min_approvals=1,
        min_staff_approvals=1,
        min_expert_approvals=1,
    )
    with pytest.raises(ValidationError) as refused:
        stage.full_clean()
    messages = " ".join(refused.value.messages)
    assert "“Peer check” asks for 1 staff and 1 expert approvals but only 1" in messages
    assert "at least their sum" in messages


def test_a_stage_that_needs_no_approval_is_refused(db):
    stage = StageDefinition(
        template=staff_only_template(),
        order=3,
        key="rubber-stamp",
        title="Rubber stamp",
        min_approvals=0,
        min_staff_approvals=0,
        min_expert_approvals=0,
    )
    with pytest.raises(ValidationError) as refused:
        stage.full_clean()
    assert "must need at least one approval" in " ".join(refused.value.messages)


def test_a_stage_needing_experts_is_refused_in_a_template_of_a_course_without_experts(db):
    template = staff_only_template()
    course = CourseFactory(
        template=template,
        title="Ethics of ML",
        allows_experts=False,
        expert_invitations="not_allowed",
    )
    stage = StageDefinition(
        template=template,
        order=3,
        key="clinical-review",
        title="Clinical review",
        min_approvals=2,
        min_staff_approvals=1,
        min_expert_approvals=1,
    )

    with pytest.raises(ValidationError) as refused:
        stage.full_clean()

    messages = " ".join(refused.value.messages)
    assert course.title in messages and "3. Clinical review" in messages


def test_an_existing_stage_cannot_start_needing_experts_in_such_a_course(db):
    template = staff_only_template()
    CourseFactory(template=template, allows_experts=False, expert_invitations="not_allowed")
    stage = template.stages.get(order=1)
    stage.min_approvals, stage.min_expert_approvals = 2, 1
    with pytest.raises(ValidationError):
        stage.full_clean()


def test_a_stage_needing_experts_is_fine_where_every_course_allows_experts(db):
    template = staff_only_template()
    CourseFactory(template=template)
    StageDefinition(
        template=template,
        order=3,
        key="clinical-review",
        title="Clinical review",
        min_approvals=2,
        min_staff_approvals=1,
        min_expert_approvals=1,
    ).full_clean()


def test_the_default_template_passes_its_own_policy(db):
    for stage in default_template().stages.all():
        stage.full_clean()


# --- a settings change racing other work in the course --------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_settings_change_and_a_student_joining_at_once_both_go_through(personas, monkeypatch):
    """The settings change holds the course row while it writes its audit event; whoever joins
    the course references that row (membership, audit event) after taking the audit chain. On
    PostgreSQL a plain FOR UPDATE on the course made the two deadlock."""
    import lifecycle.policy

    p = personas
    newcomer = UserFactory(email="newcomer@example.test")
    settings_hold_course = threading.Event()
    join_started = threading.Event()
    real_policy_errors = lifecycle.policy.course_policy_errors

    def slow_policy_errors(*args, **kwargs):
        # Called by course_update_settings once the course row is locked.
        settings_hold_course.set()
        join_started.wait(timeout=10)
        threading.Event().wait(0.5)  # let the join reach its commit
        return real_policy_errors(*args, **kwargs)

    monkeypatch.setattr(lifecycle.policy, "course_policy_errors", slow_policy_errors)
    results: list[object] = [None, None]

    def change_settings() -> None:
        try:
            results[0] = services.course_update_settings(
                course=p.course, actor=p.ian, invitation_expiry_days=21
            )
        except Exception as exc:
            results[0] = exc
        finally:
            connection.close()

    def join() -> None:
        try:
            settings_hold_course.wait(timeout=10)
            join_started.set()
            results[1] = services.course_join(user=newcomer, join_code=p.course.join_code)
        except Exception as exc:
            results[1] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=change_settings), threading.Thread(target=join)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert not any(isinstance(r, Exception) for r in results), results
    p.course.refresh_from_db()
    assert p.course.invitation_expiry_days == 21
    assert Membership.objects.filter(course=p.course, user=newcomer).exists()
    assert verify_chain().intact
