"""The review services: assignments, decisions on exact revisions, the gate on the default
template, the instructor override and comment threads. Races live in test_review_races.py,
invitations in test_invitations.py."""

from __future__ import annotations

import pytest
from factories import (
    UserFactory,
    conclude_not_pursued,
    current_stage,
    declare_no_conflict,
    fill_and_submit,
)

from lifecycle import services as lifecycle_services
from lifecycle.audit import verify_chain
from lifecycle.errors import IllegalTransition, InvalidAnswers, NotAllowed
from lifecycle.models import AuditEvent, ProjectStage, StageStatus
from reviews import services
from reviews.models import AssignmentState, Comment, Decision, ReviewAssignment

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _the_audit_chain_stays_intact(db):
    yield
    report = verify_chain()
    assert report.intact, f"audit chain broken at #{report.broken_at}: {report.reason}"


def stage_of(project, order: int) -> ProjectStage:
    return ProjectStage.objects.select_related("definition", "project").get(
        project=project, cycle=1, definition__order=order
    )


def assign_expert(p, stage: ProjectStage, expert=None) -> ReviewAssignment:
    assignment = services.assignment_create(
        project=stage.project,
        actor=p.tina,
        reviewer=expert or p.erin,
        role="expert",
        stage_definition=stage.definition,
    )
    declare_no_conflict(stage.project, expert or p.erin)
    return assignment


def submitted_stage_one(p):
    """Stage 1 of Alice's project in review, with Erin assigned as its expert."""
    stage = current_stage(p.project)
    assign_expert(p, stage)
    revision = fill_and_submit(stage, p.alice)
    stage.refresh_from_db()
    return stage, revision


def events(verb: str, **filters) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(verb=verb, **filters).order_by("seq"))


# --- assignments ----------------------------------------------------------------------------


def test_course_staff_assign_an_expert_to_one_stage_and_it_is_audited(personas):
    p = personas
    stage = current_stage(p.project)

    assignment = assign_expert(p, stage)

    assert assignment.state == AssignmentState.ACTIVE
    assert (assignment.role, assignment.stage_definition, assignment.assigned_by) == (
        "expert",
        stage.definition,
        p.tina,
    )
    [event] = events("review.assign", object_id=str(assignment.pk))
    assert event.actor == p.tina and event.project_id == p.project.pk
    assert event.new["reviewer"] == p.erin.email
    assert event.new["role"] == "expert"
    assert event.new["stage"] == stage.definition.key


@pytest.mark.parametrize("who", ["alice", "carol", "erin", "oscar"])
def test_only_course_staff_assign_reviewers(personas, who):
    p = personas
    with pytest.raises(NotAllowed):
        services.assignment_create(
            project=p.project, actor=getattr(p, who), reviewer=p.erin, role="expert"
        )
    assert not ReviewAssignment.objects.exists()
    assert not events("review.assign")


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_a_team_member_cannot_be_assigned_to_review_their_own_project(personas, who):
    p = personas
    with pytest.raises(InvalidAnswers) as refused:
        services.assignment_create(
            project=p.project, actor=p.ian, reviewer=getattr(p, who), role="expert"
        )
    assert "own project" in refused.value.errors["reviewer"][0]
    assert not ReviewAssignment.objects.exists()


@pytest.mark.parametrize("who", ["erin", "carol", "oscar"])
def test_the_staff_role_needs_a_member_of_the_course_staff(personas, who):
    p = personas
    with pytest.raises(InvalidAnswers) as refused:
        services.assignment_create(
            project=p.project, actor=p.ian, reviewer=getattr(p, who), role="staff"
        )
    assert "staff" in refused.value.errors["reviewer"][0]
    assert not ReviewAssignment.objects.exists()


def test_course_staff_can_be_assigned_in_the_staff_role(personas):
    p = personas
    assignment = services.assignment_create(
        project=p.project, actor=p.ian, reviewer=p.tina, role="staff"
    )
    assert assignment.role == "staff" and assignment.stage_definition is None


def test_nobody_holds_two_active_assignments_for_the_same_scope(personas):
    p = personas
    stage = current_stage(p.project)
    assign_expert(p, stage)
    with pytest.raises(InvalidAnswers):
        assign_expert(p, stage)
    services.assignment_create(project=p.project, actor=p.tina, reviewer=p.erin, role="expert")
    with pytest.raises(InvalidAnswers):
        services.assignment_create(project=p.project, actor=p.tina, reviewer=p.erin, role="expert")
    assert ReviewAssignment.objects.filter(reviewer=p.erin, state="active").count() == 2
    assert len(events("review.assign")) == 2


def test_withdrawing_an_assignment_is_audited_with_old_and_new_state(personas):
    p = personas
    assignment = assign_expert(p, current_stage(p.project))

    services.assignment_withdraw(assignment=assignment, actor=p.ian)

    assignment.refresh_from_db()
    assert assignment.state == AssignmentState.WITHDRAWN and assignment.withdrawn_at
    [event] = events("review.withdraw", object_id=str(assignment.pk))
    assert event.old == {"state": "active", "reviewer": p.erin.email}
    assert event.new == {"state": "withdrawn"}
    with pytest.raises(IllegalTransition):
        services.assignment_withdraw(assignment=assignment, actor=p.ian)
    assert len(events("review.withdraw")) == 1


@pytest.mark.parametrize("who", ["alice", "erin", "oscar"])
def test_only_course_staff_withdraw_an_assignment(personas, who):
    p = personas
    assignment = assign_expert(p, current_stage(p.project))
    with pytest.raises(NotAllowed):
        services.assignment_withdraw(assignment=assignment, actor=getattr(p, who))
    assignment.refresh_from_db()
    assert assignment.is_active


def test_a_withdrawn_expert_can_no_longer_decide(personas):
    p = personas
    _stage, revision = submitted_stage_one(p)
    services.assignment_withdraw(assignment=ReviewAssignment.objects.get(), actor=p.tina)
    with pytest.raises(NotAllowed):
        services.decision_record(revision=revision, reviewer=p.erin, outcome="approve")
    assert not Decision.objects.exists()


def test_reassigning_withdraws_the_old_reviewer_and_assigns_the_new_one(personas):
    p = personas
    stage, revision = submitted_stage_one(p)
    expert = UserFactory(email="dr.okafor@example.test", display_name="Dr Okafor")
    old = ReviewAssignment.objects.get(reviewer=p.erin)

    new = services.assignment_reassign(assignment=old, actor=p.tina, reviewer=expert)

    old.refresh_from_db()
    assert old.state == AssignmentState.WITHDRAWN
    assert (new.reviewer, new.role, new.stage_definition_id, new.state) == (
        expert,
        "expert",
        stage.definition_id,
        AssignmentState.ACTIVE,
    )
    [withdrawn] = events("review.withdraw")
    assert withdrawn.old["reviewer"] == p.erin.email
    [_, assigned] = events("review.assign")
    assert assigned.new["reviewer"] == expert.email
    with pytest.raises(NotAllowed):
        services.decision_record(revision=revision, reviewer=p.erin, outcome="approve")
    declare_no_conflict(p.project, expert)
    services.decision_record(revision=revision, reviewer=expert, outcome="approve")


def test_reassigning_to_a_team_member_changes_nothing(personas):
    p = personas
    old = assign_expert(p, current_stage(p.project))
    with pytest.raises(InvalidAnswers):
        services.assignment_reassign(assignment=old, actor=p.tina, reviewer=p.bob)
    old.refresh_from_db()
    assert old.is_active
    assert not events("review.withdraw")
    assert ReviewAssignment.objects.count() == 1


# --- who decides ----------------------------------------------------------------------------


def test_an_assigned_expert_and_course_staff_decide_in_their_roles(personas):
    p = personas
    _stage, revision = submitted_stage_one(p)

    by_tina = services.decision_record(revision=revision, reviewer=p.tina, outcome="approve")
    by_erin = services.decision_record(revision=revision, reviewer=p.erin, outcome="approve")

    assert (by_tina.role, by_tina.assignment) == ("staff", None)
    assert (by_erin.role, by_erin.assignment) == ("expert", ReviewAssignment.objects.get())
    [record_tina, record_erin] = events("decision.record")
    assert record_tina.new["role"] == "staff" and record_erin.new["role"] == "expert"
    assert record_erin.new["sha256"] == revision.content_sha256
    assert record_erin.new["revision"] == revision.number


def test_an_instructor_decides_as_course_staff_without_an_assignment(personas):
    p = personas
    _stage, revision = submitted_stage_one(p)
    decision = services.decision_record(revision=revision, reviewer=p.ian, outcome="approve")
    assert decision.role == "staff"


def test_an_unassigned_expert_cannot_decide(personas):
    p = personas
    stage = current_stage(p.project)
    revision = fill_and_submit(stage, p.alice)
    with pytest.raises(NotAllowed):
        services.decision_record(revision=revision, reviewer=p.erin, outcome="approve")
    assert not Decision.objects.exists()
    assert not events("decision.record")


@pytest.mark.parametrize("who", ["alice", "bob", "carol", "oscar"])
def test_team_members_students_and_outsiders_cannot_decide(personas, who):
    p = personas
    _stage, revision = submitted_stage_one(p)
    with pytest.raises(NotAllowed):
        services.decision_record(revision=revision, reviewer=getattr(p, who), outcome="approve")
    assert not Decision.objects.exists()


def test_a_team_member_assigned_by_mistake_still_cannot_decide(personas):
    """Even a stray assignment row never lets someone judge their own project."""
    p = personas
    stage = current_stage(p.project)
    ReviewAssignment.objects.create(
        project=p.project, reviewer=p.bob, role="expert", assigned_by=p.tina
    )
    revision = fill_and_submit(stage, p.alice)
    with pytest.raises(NotAllowed):
        services.decision_record(revision=revision, reviewer=p.bob, outcome="approve")


# --- the gate on the default template -------------------------------------------------------


def test_a_staff_approval_alone_leaves_stage_one_in_review(personas):
    p = personas
    stage, revision = submitted_stage_one(p)

    services.decision_record(revision=revision, reviewer=p.tina, outcome="approve")

    stage.refresh_from_db()
    assert stage.status == StageStatus.IN_REVIEW
    assert services.gate_for_stage(stage).missing == ["needs 1 more domain-expert approval"]
    assert stage_of(p.project, 2).status == StageStatus.LOCKED
    assert not events("stage.approve")


def test_two_staff_approvals_do_not_replace_the_expert_on_stage_one(personas):
    p = personas
    stage, revision = submitted_stage_one(p)
    services.decision_record(revision=revision, reviewer=p.tina, outcome="approve")
    services.decision_record(revision=revision, reviewer=p.ian, outcome="approve")
    stage.refresh_from_db()
    assert stage.status == StageStatus.IN_REVIEW


def test_expert_and_staff_approvals_approve_stage_one_and_open_stage_two(personas):
    p = personas
    stage, revision = submitted_stage_one(p)
    services.decision_record(revision=revision, reviewer=p.erin, outcome="approve")
    stage.refresh_from_db()
    assert stage.status == StageStatus.IN_REVIEW

    services.decision_record(revision=revision, reviewer=p.tina, outcome="approve")

    stage.refresh_from_db()
    second = stage_of(p.project, 2)
    assert stage.status == StageStatus.APPROVED and not stage.approved_by_override
    assert second.status == StageStatus.DRAFTING
    assert second.opened_at == stage.approved_at
    assert current_stage(p.project) == second
    [decided, approved] = AuditEvent.objects.filter(
        verb__in=["decision.record", "stage.approve"], actor=p.tina
    ).order_by("seq")
    assert (decided.verb, approved.verb) == ("decision.record", "stage.approve")
    assert approved.seq == decided.seq + 1
    assert approved.new["opened"] == second.definition.key
    assert approved.new["gate"]["staff"] == 1 and approved.new["gate"]["expert"] == 1


def test_the_approval_that_satisfies_the_gate_takes_the_audit_chain_lock_last(
    personas, monkeypatch
):
    """The chain's lock is global and held to the commit: the decision and the stage's
    approval are recorded together at the end, after the gate, the next stage and the
    notifications, so nothing but the events' INSERT runs while it is held."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from lifecycle import audit

    p = personas
    _stage, revision = submitted_stage_one(p)
    services.decision_record(revision=revision, reviewer=p.erin, outcome="approve")
    taken_at: list[int] = []
    real_locked_head = audit._locked_head

    def locked_head():
        taken_at.append(len(captured))
        return real_locked_head()

    monkeypatch.setattr(audit, "_locked_head", locked_head)
    with CaptureQueriesContext(connection) as captured:
        services.decision_record(revision=revision, reviewer=p.tina, outcome="approve")

    assert len(taken_at) == 1  # one taking of the lock for both events
    after = [q["sql"] for q in captured.captured_queries[taken_at[0] :]]
    held = [sql for sql in after if "lifecycle_auditevent" not in sql]
    assert all(sql.split()[0].upper() in ("RELEASE", "COMMIT") for sql in held), held
    assert any(sql.startswith("INSERT INTO") for sql in after)
    verbs = list(
        AuditEvent.objects.filter(actor=p.tina).order_by("seq").values_list("verb", flat=True)
    )
    assert verbs[-2:] == ["decision.record", "stage.approve"]
    assert verify_chain().intact


def test_the_approval_that_satisfies_the_gate_commits_with_the_stage_approval(
    personas, monkeypatch
):
    """If approving the stage fails, the decision that satisfied the gate is not recorded
    either: they are one transaction."""
    p = personas
    stage, revision = submitted_stage_one(p)
    services.decision_record(revision=revision, reviewer=p.tina, outcome="approve")
    real_audit = lifecycle_services.audit_record

    def failing_on_approve(**kwargs):
        if kwargs["verb"] == "stage.approve":
            raise RuntimeError("disk full")
        return real_audit(**kwargs)

    monkeypatch.setattr(lifecycle_services, "audit_record", failing_on_approve)
    with pytest.raises(RuntimeError):
        services.decision_record(revision=revision, reviewer=p.erin, outcome="approve")

    assert not Decision.objects.filter(reviewer=p.erin).exists()
    stage.refresh_from_db()
    assert stage.status == StageStatus.IN_REVIEW
    assert stage_of(p.project, 2).status == StageStatus.LOCKED


def test_stage_two_needs_one_course_staff_approval_only(personas):
    p = personas
    _stage, revision = submitted_stage_one(p)
    services.decision_record(revision=revision, reviewer=p.erin, outcome="approve")
    services.decision_record(revision=revision, reviewer=p.tina, outcome="approve")
    second = current_stage(p.project)
    assert second.definition.order == 2
    assert (second.definition.min_staff_approvals, second.definition.min_expert_approvals) == (
        1,
        0,
    )
    revision2 = fill_and_submit(second, p.bob)

    services.decision_record(revision=revision2, reviewer=p.tina, outcome="approve")

    second.refresh_from_db()
    assert second.status == StageStatus.APPROVED
    assert current_stage(p.project).definition.order == 3


def test_an_expert_approval_alone_does_not_pass_stage_two(personas):
    p = personas
    _stage, revision = submitted_stage_one(p)
    services.decision_record(revision=revision, reviewer=p.erin, outcome="approve")
    services.decision_record(revision=revision, reviewer=p.tina, outcome="approve")
    second = current_stage(p.project)
    assign_expert(p, second)
    revision2 = fill_and_submit(second, p.bob)

    services.decision_record(revision=revision2, reviewer=p.erin, outcome="approve")

    second.refresh_from_db()
    assert second.status == StageStatus.IN_REVIEW
    assert services.gate_for_stage(second).missing == ["needs 1 more course-staff approval"]


# --- requests for changes and revisions -----------------------------------------------------


@pytest.mark.parametrize("comment", ["", "   \n"])
def test_a_request_for_changes_needs_a_comment(personas, comment):
    p = personas
    stage, revision = submitted_stage_one(p)
    with pytest.raises(InvalidAnswers) as refused:
        services.decision_record(
            revision=revision, reviewer=p.erin, outcome="request_changes", comment=comment
        )
    assert "comment" in refused.value.errors
    assert not Decision.objects.exists()
    stage.refresh_from_db()
    assert stage.status == StageStatus.IN_REVIEW


def test_a_request_for_changes_sends_the_stage_back_to_the_team(personas):
    p = personas
    stage, revision = submitted_stage_one(p)

    decision = services.decision_record(
        revision=revision,
        reviewer=p.erin,
        outcome="request_changes",
        comment="Which clinics are in scope?",
        question_key="problem-statement",
    )

    stage.refresh_from_db()
    assert stage.status == StageStatus.CHANGES_REQUESTED and stage.is_editable
    assert (decision.outcome, decision.question_key) == ("request_changes", "problem-statement")
    [event] = events("stage.request_changes")
    assert event.actor == p.erin
    assert event.new == {
        "status": "changes_requested",
        "revision": revision.number,
        "reason": "Which clinics are in scope?",
    }


def test_the_next_revision_makes_earlier_approvals_stale(personas):
    p = personas
    stage, first = submitted_stage_one(p)
    services.decision_record(revision=first, reviewer=p.tina, outcome="approve")
    services.decision_record(
        revision=first, reviewer=p.erin, outcome="request_changes", comment="Name the clinics."
    )

    second = fill_and_submit(stage, p.alice, **{"problem-statement": "Rural clinics in Kent"})

    stage.refresh_from_db()
    assert stage.status == StageStatus.IN_REVIEW and stage.current_revision == second
    gate = services.gate_for_stage(stage)
    assert (gate.approvals, gate.staff_approvals, gate.expert_approvals) == (0, 0, 0)
    assert not gate.blocking  # the request for changes was answered by the new revision
    assert Decision.objects.filter(revision=first).count() == 2  # kept in history
    assert not Decision.objects.filter(revision=second).exists()


def test_nobody_decides_twice_on_one_revision_without_changing_their_decision(personas):
    p = personas
    stage, revision = submitted_stage_one(p)
    services.decision_record(revision=revision, reviewer=p.tina, outcome="approve")
    for outcome, comment in (("approve", ""), ("request_changes", "Second thoughts.")):
        with pytest.raises(IllegalTransition) as refused:
            services.decision_record(
                revision=revision, reviewer=p.tina, outcome=outcome, comment=comment
            )
        assert "change my decision" in refused.value.message
    assert Decision.objects.count() == 1
    assert len(events("decision.record")) == 1
    stage.refresh_from_db()
    assert stage.status == StageStatus.IN_REVIEW


def test_changing_a_decision_replaces_the_old_one_and_is_audited(personas):
    p = personas
    stage, revision = submitted_stage_one(p)
    first = services.decision_record(revision=revision, reviewer=p.tina, outcome="approve")

    second = services.decision_record(
        revision=revision,
        reviewer=p.tina,
        outcome="request_changes",
        comment="Missed the consent question.",
        change=True,
    )

    first.refresh_from_db()
    assert first.replaced_at is not None and second.replaced_at is None
    assert Decision.objects.filter(revision=revision, reviewer=p.tina).count() == 2
    [event] = events("decision.change")
    assert event.old == {"outcome": "approve", "comment": ""}
    assert event.new["outcome"] == "request_changes"
    assert event.new["comment"] == "Missed the consent question."
    stage.refresh_from_db()
    assert stage.status == StageStatus.CHANGES_REQUESTED


def test_a_changed_approval_no_longer_counts_towards_the_gate(personas):
    p = personas
    stage, revision = submitted_stage_one(p)
    services.decision_record(revision=revision, reviewer=p.erin, outcome="approve")
    services.decision_record(
        revision=revision,
        reviewer=p.erin,
        outcome="request_changes",
        comment="On reflection: no.",
        change=True,
    )
    gate = services.gate_for_stage(stage)
    assert gate.expert_approvals == 0
    assert gate.blocking == ["Dr Erin Chen requested changes"]


def test_a_decision_on_a_superseded_revision_is_refused_and_records_nothing(personas):
    p = personas
    stage, first = submitted_stage_one(p)
    services.decision_record(
        revision=first, reviewer=p.tina, outcome="request_changes", comment="More detail."
    )
    second = fill_and_submit(stage, p.alice, **{"problem-statement": "More detail."})
    decisions_before = Decision.objects.count()
    last_event = AuditEvent.objects.order_by("-seq").first()

    with pytest.raises(IllegalTransition) as refused:
        services.decision_record(revision=first, reviewer=p.erin, outcome="approve")

    assert f"superseded by revision {second.number}" in refused.value.message
    assert Decision.objects.count() == decisions_before
    assert not Decision.objects.filter(reviewer=p.erin).exists()
    assert AuditEvent.objects.order_by("-seq").first() == last_event


def test_a_late_approval_after_the_stage_was_approved_is_recorded_but_changes_nothing(
    personas,
):
    p = personas
    stage, revision = submitted_stage_one(p)
    services.decision_record(revision=revision, reviewer=p.erin, outcome="approve")
    services.decision_record(revision=revision, reviewer=p.tina, outcome="approve")
    stage.refresh_from_db()
    approved_at = stage.approved_at

    late = services.decision_record(revision=revision, reviewer=p.ian, outcome="approve")

    assert Decision.objects.filter(pk=late.pk).exists()
    stage.refresh_from_db()
    assert (stage.status, stage.approved_at) == (StageStatus.APPROVED, approved_at)
    assert len(events("stage.approve")) == 1
    assert stage_of(p.project, 2).status == StageStatus.DRAFTING
    assert stage_of(p.project, 3).status == StageStatus.LOCKED
    assert current_stage(p.project).definition.order == 2


def test_a_request_for_changes_on_an_approved_stage_is_refused(personas):
    p = personas
    stage, revision = submitted_stage_one(p)
    services.decision_record(revision=revision, reviewer=p.erin, outcome="approve")
    services.decision_record(revision=revision, reviewer=p.tina, outcome="approve")

    with pytest.raises(IllegalTransition) as refused:
        services.decision_record(
            revision=revision, reviewer=p.ian, outcome="request_changes", comment="Too late?"
        )

    assert "already approved" in refused.value.message
    assert not Decision.objects.filter(reviewer=p.ian).exists()
    stage.refresh_from_db()
    assert stage.status == StageStatus.APPROVED
    assert not events("stage.request_changes")


def test_decisions_on_a_concluded_project_are_refused(personas):
    p = personas
    _stage, revision = submitted_stage_one(p)
    conclude_not_pursued(p.project, p.alice, p.ian, reasoning="We should not build it.")
    for reviewer in (p.tina, p.erin):
        with pytest.raises(IllegalTransition) as refused:
            services.decision_record(revision=revision, reviewer=reviewer, outcome="approve")
        assert "concluded" in refused.value.message
    assert not Decision.objects.exists()


# --- the instructor override ----------------------------------------------------------------


def test_a_ta_cannot_override_the_gate(personas):
    p = personas
    stage, _revision = submitted_stage_one(p)
    with pytest.raises(NotAllowed):
        services.stage_override(stage=stage, actor=p.tina, justification="Deadline tomorrow.")
    stage.refresh_from_db()
    assert stage.status == StageStatus.IN_REVIEW
    assert not events("stage.override_approve")


@pytest.mark.parametrize("justification", ["", "  \n "])
def test_an_override_needs_a_justification(personas, justification):
    p = personas
    stage, _revision = submitted_stage_one(p)
    with pytest.raises(InvalidAnswers) as refused:
        services.stage_override(stage=stage, actor=p.ian, justification=justification)
    assert "justification" in refused.value.errors
    stage.refresh_from_db()
    assert stage.status == StageStatus.IN_REVIEW


def test_an_instructor_override_approves_and_is_flagged_in_the_audit_trail(personas):
    p = personas
    stage, revision = submitted_stage_one(p)
    services.decision_record(revision=revision, reviewer=p.tina, outcome="approve")

    services.stage_override(
        stage=stage, actor=p.ian, justification="The expert fell ill; I read it myself."
    )

    stage.refresh_from_db()
    assert stage.status == StageStatus.APPROVED and stage.approved_by_override
    assert stage.override_justification == "The expert fell ill; I read it myself."
    assert current_stage(p.project).definition.order == 2
    [event] = events("stage.override_approve")
    assert event.flagged and event.actor == p.ian
    assert event.new["justification"] == "The expert fell ill; I read it myself."
    assert event.new["gate"]["satisfied"] is False
    assert not events("stage.approve")


def test_an_override_needs_a_submitted_revision(personas):
    p = personas
    with pytest.raises(IllegalTransition):
        services.stage_override(
            stage=current_stage(p.project), actor=p.ian, justification="Nothing to read."
        )


# --- comments -------------------------------------------------------------------------------


def test_the_team_and_the_reviewers_comment_on_the_revision_and_on_one_question(personas):
    p = personas
    _stage, revision = submitted_stage_one(p)

    general = services.comment_add(revision=revision, author=p.erin, body="Thoughtful work.")
    on_question = services.comment_add(
        revision=revision,
        author=p.tina,
        body="Who are the *clinicians* here?",
        question_key="problem-statement",
    )
    from_team = services.comment_add(revision=revision, author=p.bob, body="Thanks!")

    assert (general.question_key, on_question.question_key) == ("", "problem-statement")
    assert from_team.author == p.bob
    added = events("comment.add")
    assert [e.object_id for e in added] == [str(c.pk) for c in (general, on_question, from_team)]
    assert added[1].new["question"] == "problem-statement"
    assert added[1].new["revision"] == revision.number


def test_a_reply_joins_the_thread_of_its_parent(personas):
    p = personas
    _stage, revision = submitted_stage_one(p)
    thread = services.comment_add(
        revision=revision, author=p.erin, body="Whose data?", question_key="problem-statement"
    )

    reply = services.comment_add(
        revision=revision, author=p.alice, body="The NHS's.", parent=thread
    )

    assert reply.parent == thread and reply.question_key == "problem-statement"
    assert list(thread.replies.all()) == [reply]
    assert events("comment.add")[-1].new["parent"] == thread.pk


def test_a_reply_on_another_revision_is_refused(personas):
    p = personas
    stage, first = submitted_stage_one(p)
    thread = services.comment_add(revision=first, author=p.tina, body="Shorter, please.")
    services.decision_record(
        revision=first, reviewer=p.tina, outcome="request_changes", comment="Shorter."
    )
    second = fill_and_submit(stage, p.alice)
    with pytest.raises(InvalidAnswers):
        services.comment_add(revision=second, author=p.alice, body="Done.", parent=thread)


def test_a_comment_on_an_unknown_question_is_refused(personas):
    p = personas
    _stage, revision = submitted_stage_one(p)
    with pytest.raises(InvalidAnswers) as refused:
        services.comment_add(
            revision=revision, author=p.tina, body="Hm.", question_key="no-such-question"
        )
    assert "question_key" in refused.value.errors
    assert not Comment.objects.exists()


@pytest.mark.parametrize("body", ["", "   "])
def test_an_empty_comment_is_refused(personas, body):
    p = personas
    _stage, revision = submitted_stage_one(p)
    with pytest.raises(InvalidAnswers):
        services.comment_add(revision=revision, author=p.tina, body=body)


@pytest.mark.parametrize("who", ["oscar", "carol"])
def test_outsiders_and_other_teams_cannot_comment(personas, who):
    p = personas
    _stage, revision = submitted_stage_one(p)
    with pytest.raises(NotAllowed):
        services.comment_add(revision=revision, author=getattr(p, who), body="Hello")
    assert not Comment.objects.exists()
    assert not events("comment.add")


def test_an_expert_without_an_assignment_for_the_stage_cannot_comment(personas):
    p = personas
    revision = fill_and_submit(current_stage(p.project), p.alice)
    with pytest.raises(NotAllowed):
        services.comment_add(revision=revision, author=p.erin, body="Hello")


def test_only_the_team_resolves_a_thread_and_only_once(personas):
    p = personas
    _stage, revision = submitted_stage_one(p)
    thread = services.comment_add(revision=revision, author=p.erin, body="Cite the source.")
    reply = services.comment_add(revision=revision, author=p.bob, body="Added.", parent=thread)

    for who in (p.erin, p.tina, p.ian, p.carol, p.oscar):
        with pytest.raises(NotAllowed):
            services.comment_resolve(comment=thread, actor=who)
    with pytest.raises(IllegalTransition):
        services.comment_resolve(comment=reply, actor=p.alice)

    services.comment_resolve(comment=thread, actor=p.alice)

    thread.refresh_from_db()
    assert thread.resolved_at and thread.resolved_by == p.alice
    with pytest.raises(IllegalTransition):
        services.comment_resolve(comment=thread, actor=p.bob)
    [event] = events("comment.resolve")
    assert event.actor == p.alice and event.object_id == str(thread.pk)


# --- the audit trail ------------------------------------------------------------------------


def test_every_review_action_is_an_audit_event_on_one_intact_chain(personas):
    p = personas
    stage = current_stage(p.project)
    start = AuditEvent.objects.order_by("-seq").first().seq
    staff_assignment = services.assignment_create(
        project=p.project, actor=p.ian, reviewer=p.tina, role="staff"
    )
    services.assignment_withdraw(assignment=staff_assignment, actor=p.ian)
    _invitation, token = services.invitation_create(
        actor=p.tina,
        course=p.course,
        email="dr.patel@example.test",
        project=p.project,
        stage_definition=stage.definition,
    )
    services.invitation_accept_new_user(token=token, display_name="Dr Patel", password="x-9f!Qa")
    revoked, _ = services.invitation_create(
        actor=p.alice, course=p.course, email="x@example.test", project=p.project
    )
    services.invitation_revoke(invitation=revoked, actor=p.tina)
    revision = fill_and_submit(stage, p.alice)
    services.decision_record(revision=revision, reviewer=p.tina, outcome="approve")
    services.decision_record(
        revision=revision, reviewer=p.tina, outcome="approve", comment="Still yes.", change=True
    )
    comment = services.comment_add(revision=revision, author=p.tina, body="Nice register.")
    services.comment_resolve(comment=comment, actor=p.alice)
    services.stage_override(stage=stage, actor=p.ian, justification="Expert unavailable.")

    verbs = list(
        AuditEvent.objects.filter(seq__gt=start)
        .exclude(verb__in=["stage.draft_save", "stakeholder.add", "stage.submit"])
        .order_by("seq")
        .values_list("verb", flat=True)
    )
    assert verbs == [
        "review.assign",
        "review.withdraw",
        "invitation.create",
        "invitation.accept",
        "invitation.create",
        "invitation.revoke",
        "decision.record",
        "decision.change",
        "comment.add",
        "comment.resolve",
        "stage.override_approve",
    ]
    report = verify_chain()
    assert report.intact and report.count == AuditEvent.objects.count()
