"""The lifecycle services: permissions, validation, drafts, loop back and conclusion."""

from __future__ import annotations

import pytest
from factories import (
    advance_to,
    complete_answers,
    conclude_not_pursued,
    current_stage,
    fill_and_submit,
)

from lifecycle import proposals, services
from lifecycle.audit import verify_chain
from lifecycle.errors import DraftConflict, IllegalTransition, InvalidAnswers, NotAllowed
from lifecycle.models import (
    AuditEvent,
    Outcome,
    ProjectStage,
    ProjectStatus,
    QuestionKind,
    StageRevision,
    StageStatus,
)


def questions_of(stage, kind):
    return list(stage.definition.questions.filter(kind=kind))


# --- creating projects ----------------------------------------------------------------------


def test_a_new_project_opens_stage_one_and_locks_the_rest(personas):
    project = personas.project
    stages = list(project.stages.order_by("definition__order"))
    assert [s.definition.order for s in stages] == [1, 2, 3, 4, 5, 6, 7]
    assert [s.status for s in stages] == ["drafting"] + ["locked"] * 6
    assert project.current_stage == stages[0]
    assert project.template == personas.course.template
    assert set(project.members.all()) == {personas.alice, personas.bob}
    event = AuditEvent.objects.filter(verb="project.create", object_id=str(project.pk)).get()
    assert event.actor == personas.alice


@pytest.mark.parametrize("who", ["tina", "ian", "erin", "oscar"])
def test_only_students_of_the_course_start_projects(personas, who):
    with pytest.raises(NotAllowed):
        services.project_create(course=personas.course, actor=getattr(personas, who), title="X")


def test_teammates_must_be_students_of_the_course(personas):
    with pytest.raises(InvalidAnswers) as excinfo:
        services.project_create(
            course=personas.course, actor=personas.alice, title="X", members=[personas.oscar]
        )
    assert "oscar@example.test" in excinfo.value.errors["members"][0]


def test_a_project_needs_a_title(personas):
    with pytest.raises(InvalidAnswers) as excinfo:
        services.project_create(course=personas.course, actor=personas.alice, title="   ")
    assert "title" in excinfo.value.errors


# --- drafts -------------------------------------------------------------------------------


def stage1(personas) -> ProjectStage:
    return personas.project.stages.get(definition__order=1, cycle=1)


def text_key(stage) -> str:
    return questions_of(stage, QuestionKind.LONG_TEXT)[0].key


def test_saving_a_draft_bumps_its_version_and_records_who(personas):
    stage = stage1(personas)
    key = text_key(stage)
    saved = services.stage_save_draft(
        stage=stage, actor=personas.bob, answers={key: "Referrals pile up."}, base_version=0
    )
    saved.refresh_from_db()
    assert saved.draft_version == 1
    assert saved.draft_answers == {key: "Referrals pile up."}
    assert saved.draft_updated_by == personas.bob
    event = AuditEvent.objects.filter(verb="stage.draft_save").latest("seq")
    assert event.old == {"version": 0, "answers": {key: None}}
    assert event.new == {"version": 1, "answers": {key: "Referrals pile up."}}


def test_saving_the_same_answers_again_changes_nothing(personas):
    stage = stage1(personas)
    key = text_key(stage)
    services.stage_save_draft(stage=stage, actor=personas.bob, answers={key: "A"}, base_version=0)
    count = AuditEvent.objects.count()
    services.stage_save_draft(stage=stage, actor=personas.bob, answers={key: "A"}, base_version=1)
    stage.refresh_from_db()
    assert stage.draft_version == 1
    assert AuditEvent.objects.count() == count


def test_a_stale_draft_save_merges_other_questions_and_conflicts_only_on_shared_ones(personas):
    """Merge per question (issue 11): a save based on an older version keeps a teammate's
    change to another question and conflicts only where both changed the same question."""
    stage = stage1(personas)
    texts = questions_of(stage, QuestionKind.LONG_TEXT) + questions_of(
        stage, QuestionKind.SHORT_TEXT
    )
    first, second = texts[0].key, texts[1].key
    services.stage_save_draft(
        stage=stage, actor=personas.alice, answers={first: "v1"}, base_version=0
    )
    services.stage_save_draft(
        stage=stage, actor=personas.bob, answers={second: "Bob's"}, base_version=1
    )
    # Alice, still on version 1, changes the first question: Bob's answer is kept.
    services.stage_save_draft(
        stage=stage, actor=personas.alice, answers={first: "mine"}, base_version=1
    )
    stage.refresh_from_db()
    assert stage.draft_answers == {first: "mine", second: "Bob's"}
    # Alice, still on version 1, changes Bob's question too: that one conflicts.
    with pytest.raises(DraftConflict) as excinfo:
        services.stage_save_draft(
            stage=stage, actor=personas.alice, answers={second: "Alice's"}, base_version=1
        )
    conflict = excinfo.value
    assert conflict.changed_questions == [second]
    assert conflict.current_answers[second] == "Bob's"
    assert texts[1].prompt in conflict.message  # named by its text, not its key
    stage.refresh_from_db()
    assert stage.draft_answers == {first: "mine", second: "Bob's"}


def test_a_stale_save_by_the_person_who_saved_since_is_no_conflict(personas):
    """An autosave racing the same person's Save click must not show them a conflict."""
    stage = stage1(personas)
    first, second = text_keys(stage)[:2]
    services.stage_save_draft(
        stage=stage, actor=personas.alice, answers={first: "autosaved"}, base_version=0
    )
    services.stage_save_draft(
        stage=stage,
        actor=personas.alice,
        answers={first: "clicked save", second: "more"},
        base_version=0,
    )
    stage.refresh_from_db()
    assert stage.draft_version == 2
    assert stage.draft_answers == {first: "clicked save", second: "more"}
    with pytest.raises(DraftConflict):  # but Bob, on version 0, must see Alice's work first
        services.stage_save_draft(
            stage=stage, actor=personas.bob, answers={first: "Bob"}, base_version=0
        )


def text_keys(stage) -> list[str]:
    return [
        q.key
        for q in stage.definition.questions.all()
        if q.kind in (QuestionKind.LONG_TEXT, QuestionKind.SHORT_TEXT)
    ]


def test_clearing_an_answer_removes_it_from_the_draft(personas):
    stage = stage1(personas)
    key = text_key(stage)
    services.stage_save_draft(stage=stage, actor=personas.alice, answers={key: "x"}, base_version=0)
    services.stage_save_draft(stage=stage, actor=personas.alice, answers={key: ""}, base_version=1)
    stage.refresh_from_db()
    assert key not in stage.draft_answers


def test_a_draft_rejects_answers_of_the_wrong_type_and_unknown_questions(personas):
    stage = stage1(personas)
    yes_no = questions_of(stage, QuestionKind.YES_NO_UNSURE)[0].key
    with pytest.raises(InvalidAnswers) as excinfo:
        services.stage_save_draft(
            stage=stage,
            actor=personas.alice,
            answers={yes_no: "maybe", "no-such-question": "x"},
            base_version=0,
        )
    assert set(excinfo.value.errors) == {yes_no, "no-such-question"}
    stage.refresh_from_db()
    assert stage.draft_version == 0


@pytest.mark.parametrize("who", ["carol", "tina", "ian", "erin", "oscar"])
def test_only_the_team_edits_a_draft(personas, who):
    stage = stage1(personas)
    with pytest.raises(NotAllowed):
        services.stage_save_draft(
            stage=stage,
            actor=getattr(personas, who),
            answers={text_key(stage): "x"},
            base_version=0,
        )


def test_a_locked_stage_cannot_be_drafted(personas):
    stage = personas.project.stages.get(definition__order=2)
    with pytest.raises(IllegalTransition):
        services.stage_save_draft(stage=stage, actor=personas.alice, answers={}, base_version=0)


# --- submission ---------------------------------------------------------------------------


def test_submitting_freezes_the_draft_into_a_hashed_revision(personas):
    stage = stage1(personas)
    revision = fill_and_submit(stage, personas.alice)
    stage.refresh_from_db()
    assert stage.status == StageStatus.IN_REVIEW
    assert stage.current_revision == revision
    assert revision.number == 1
    assert revision.answers == stage.draft_answers
    assert revision.stakeholders[0]["name"] == "Teachers"
    assert revision.content_sha256 == services.sha256_hex(
        services.revision_content(revision.answers, revision.stakeholders)
    )


def test_a_revision_cannot_be_changed_once_written(personas):
    revision = fill_and_submit(stage1(personas), personas.alice)
    revision.answers = {"tampered": True}
    with pytest.raises(ValueError, match="immutable"):
        revision.save()


def test_submitting_lists_every_unanswered_required_question(personas):
    stage = stage1(personas)
    services.stakeholder_add(
        project=personas.project, actor=personas.alice, name="Parents", kind="affected_community"
    )
    with pytest.raises(InvalidAnswers) as excinfo:
        services.stage_submit(stage=stage, actor=personas.alice)
    required = {q.key for q in stage.definition.questions.filter(required=True)}
    assert required
    assert required <= set(excinfo.value.errors)
    assert StageRevision.objects.count() == 0


def test_a_yes_no_unsure_answer_needs_its_justification_to_be_submitted(personas):
    stage = stage1(personas)
    key = questions_of(stage, QuestionKind.YES_NO_UNSURE)[0].key
    with pytest.raises(InvalidAnswers) as excinfo:
        fill_and_submit(stage, personas.alice, **{key: {"choice": "yes", "justification": ""}})
    assert list(excinfo.value.errors) == [key]


def test_stage_one_cannot_be_submitted_without_a_stakeholder(personas):
    stage = stage1(personas)
    services.stage_save_draft(
        stage=stage, actor=personas.alice, answers=complete_answers(stage), base_version=0
    )
    with pytest.raises(InvalidAnswers) as excinfo:
        services.stage_submit(stage=stage, actor=personas.alice)
    assert "stakeholder" in excinfo.value.errors["__all__"][0]


def test_submit_with_a_stale_version_is_a_conflict(personas):
    stage = stage1(personas)
    services.stage_save_draft(
        stage=stage, actor=personas.bob, answers=complete_answers(stage), base_version=0
    )
    with pytest.raises(DraftConflict):
        services.stage_submit(stage=stage, actor=personas.alice, base_version=0)


# --- review outcomes ------------------------------------------------------------------------


def test_approval_opens_the_next_stage(personas):
    stage = stage1(personas)
    revision = fill_and_submit(stage, personas.alice)
    services.stage_mark_approved(stage=stage, revision=revision, actor=personas.tina)
    nxt = current_stage(personas.project)
    assert nxt.definition.order == 2
    assert nxt.status == StageStatus.DRAFTING
    assert nxt.opened_at is not None


def test_nobody_approves_their_own_project(personas):
    stage = stage1(personas)
    revision = fill_and_submit(stage, personas.alice)
    with pytest.raises(NotAllowed):
        services.stage_mark_approved(stage=stage, revision=revision, actor=personas.bob)


def test_a_decision_on_a_superseded_revision_is_refused(personas):
    stage = stage1(personas)
    first = fill_and_submit(stage, personas.alice)
    services.stage_request_changes(
        stage=stage, revision=first, actor=personas.tina, reason="Who is 'we'?"
    )
    key = text_key(stage)
    stage.refresh_from_db()
    services.stage_save_draft(
        stage=stage,
        actor=personas.alice,
        answers={key: "Revised"},
        base_version=stage.draft_version,
    )
    second = services.stage_submit(stage=stage, actor=personas.alice)
    assert second.number == 2
    with pytest.raises(IllegalTransition, match="superseded"):
        services.stage_mark_approved(stage=stage, revision=first, actor=personas.tina)
    stage.refresh_from_db()
    assert stage.status == StageStatus.IN_REVIEW


def test_an_override_needs_an_instructor_and_a_justification_and_is_flagged(personas):
    stage = stage1(personas)
    revision = fill_and_submit(stage, personas.alice)
    with pytest.raises(NotAllowed):
        services.stage_mark_approved(
            stage=stage,
            revision=revision,
            actor=personas.tina,
            override_justification="Expert unavailable",
        )
    with pytest.raises(InvalidAnswers):
        services.stage_mark_approved(
            stage=stage, revision=revision, actor=personas.ian, override_justification="   "
        )
    services.stage_mark_approved(
        stage=stage,
        revision=revision,
        actor=personas.ian,
        override_justification="Expert unavailable this term",
    )
    stage.refresh_from_db()
    assert stage.approved_by_override
    event = AuditEvent.objects.get(verb="stage.override_approve")
    assert event.flagged
    assert event.new["justification"] == "Expert unavailable this term"


def test_due_dates_are_set_by_course_staff_only(personas):
    import datetime as dt

    stage = stage1(personas)
    with pytest.raises(NotAllowed):
        services.stage_set_due_date(stage=stage, actor=personas.alice, due_date=dt.date.today())
    services.stage_set_due_date(stage=stage, actor=personas.tina, due_date=dt.date(2026, 12, 1))
    stage.refresh_from_db()
    assert stage.due_date == dt.date(2026, 12, 1)


# --- iterate: loop back and conclude ------------------------------------------------------


def test_looping_back_opens_a_new_cycle_prefilled_and_leaves_the_old_cycle_untouched(personas):
    p = personas
    iterate = advance_to(p.project, 7, team_member=p.alice, reviewer=p.tina)
    cycle1 = {
        r.pk: (r.answers, r.content_sha256)
        for r in StageRevision.objects.filter(stage__project=p.project)
    }
    cycle1_stages = {
        s.pk: (s.status, s.draft_answers)
        for s in ProjectStage.objects.filter(project=p.project, cycle=1)
    }
    services.project_loop_back(
        project=p.project,
        actor=p.bob,
        to_order=3,
        reason="Our data under-represents rural clinics.",
    )
    p.project.refresh_from_db()
    assert p.project.cycle == 2
    cycle2 = list(p.project.stages.filter(cycle=2).order_by("definition__order"))
    assert [s.definition.order for s in cycle2] == [3, 4, 5, 6, 7]
    assert [s.status for s in cycle2] == ["drafting"] + ["locked"] * 4
    assert p.project.current_stage == cycle2[0]
    for stage in cycle2[:4]:  # stages 3..6 were approved in cycle 1
        old = ProjectStage.objects.get(project=p.project, cycle=1, definition=stage.definition)
        assert stage.prefilled_from == old.current_revision
        assert stage.draft_answers == old.current_revision.answers
    assert cycle2[4].prefilled_from is None  # Iterate was never approved
    assert {
        r.pk: (r.answers, r.content_sha256)
        for r in StageRevision.objects.filter(stage__project=p.project)
    } == cycle1
    assert {
        s.pk: (s.status, s.draft_answers)
        for s in ProjectStage.objects.filter(project=p.project, cycle=1)
    } == cycle1_stages
    assert iterate.pk in cycle1_stages
    assert verify_chain().intact


def test_looping_back_is_only_possible_from_the_iterate_stage(personas):
    with pytest.raises(IllegalTransition):
        services.project_loop_back(
            project=personas.project, actor=personas.alice, to_order=1, reason="Because"
        )


def test_looping_back_needs_a_reason_and_an_earlier_stage(personas):
    p = personas
    advance_to(p.project, 7, team_member=p.alice, reviewer=p.tina)
    with pytest.raises(InvalidAnswers):
        services.project_loop_back(project=p.project, actor=p.alice, to_order=3, reason=" ")
    with pytest.raises(InvalidAnswers):
        services.project_loop_back(project=p.project, actor=p.alice, to_order=7, reason="x")
    with pytest.raises(NotAllowed):
        services.project_loop_back(project=p.project, actor=p.tina, to_order=3, reason="x")


def test_a_second_loop_back_prefills_from_the_latest_approval(personas):
    p = personas
    advance_to(p.project, 7, team_member=p.alice, reviewer=p.tina)
    services.project_loop_back(project=p.project, actor=p.alice, to_order=5, reason="Retest")
    stage5 = current_stage(p.project)
    key = text_key(stage5)
    revision = fill_and_submit(stage5, p.alice, **{key: "Cycle 2 answer"})
    services.stage_mark_approved(stage=stage5, revision=revision, actor=p.tina)
    advance_to(p.project, 7, team_member=p.alice, reviewer=p.tina)
    services.project_loop_back(project=p.project, actor=p.alice, to_order=4, reason="Relabel")
    p.project.refresh_from_db()
    assert p.project.cycle == 3
    stage5_cycle3 = p.project.stages.get(cycle=3, definition__order=5)
    assert stage5_cycle3.draft_answers[key] == "Cycle 2 answer"
    assert stage5_cycle3.prefilled_from.stage.cycle == 2


def test_not_pursued_is_a_legitimate_outcome_once_reviewers_approve_it(personas):
    project = conclude_not_pursued(
        personas.project,
        personas.alice,
        personas.tina,
        reasoning="A social solution fits better: more staff, not a model.",
    )
    assert project.status == ProjectStatus.CONCLUDED
    assert project.outcome == Outcome.NOT_PURSUED
    with pytest.raises(IllegalTransition, match="concluded"):
        services.stage_save_draft(
            stage=stage1(personas), actor=personas.alice, answers={}, base_version=0
        )


def test_not_pursued_can_be_proposed_at_stage_three_too(personas):
    p = personas
    advance_to(p.project, 3, team_member=p.alice, reviewer=p.tina)
    project = conclude_not_pursued(p.project, p.alice, p.tina)
    assert project.outcome == Outcome.NOT_PURSUED


def test_deployed_needs_an_approved_iterate_stage(personas):
    p = personas
    iterate = advance_to(p.project, 7, team_member=p.alice, reviewer=p.tina)
    with pytest.raises(IllegalTransition):
        services.project_conclude(
            project=p.project, actor=p.alice, outcome=Outcome.DEPLOYED, reason="Works"
        )
    revision = fill_and_submit(iterate, p.alice)
    services.stage_mark_approved(stage=iterate, revision=revision, actor=p.tina)
    p.project.refresh_from_db()
    assert p.project.current_stage == iterate  # nothing after Iterate to open
    services.project_conclude(
        project=p.project,
        actor=p.alice,
        outcome=Outcome.DEPLOYED,
        reason="Monitored weekly; rollback plan tested.",
    )
    p.project.refresh_from_db()
    assert p.project.outcome == Outcome.DEPLOYED
    assert p.project.concluded_at is not None


def test_conclusion_needs_a_reason_and_a_team_member(personas):
    with pytest.raises(InvalidAnswers):
        proposals.proposal_submit(
            project=personas.project,
            actor=personas.alice,
            answers={"reasons": ["social"], "reasoning": "  "},
        )
    with pytest.raises(NotAllowed):
        services.project_conclude(
            project=personas.project, actor=personas.ian, outcome=Outcome.NOT_PURSUED, reason="x"
        )


# --- stakeholder register -----------------------------------------------------------------


def test_the_team_keeps_the_stakeholder_register_with_an_audit_trail(personas):
    p = personas
    s = services.stakeholder_add(
        project=p.project, actor=p.alice, name="Clinicians", kind="operator", interests="Time"
    )
    services.stakeholder_update(
        stakeholder=s, actor=p.bob, consulted=True, consultation="Two interviews"
    )
    s.refresh_from_db()
    assert s.consulted and s.consultation == "Two interviews"
    update = AuditEvent.objects.get(verb="stakeholder.update")
    assert update.old == {"consulted": False, "consultation": ""}
    services.stakeholder_remove(stakeholder=s, actor=p.alice)
    assert not p.project.stakeholders.exists()
    assert AuditEvent.objects.filter(verb="stakeholder.remove").count() == 1


def test_a_stakeholder_needs_a_name_and_a_known_kind(personas):
    with pytest.raises(InvalidAnswers) as excinfo:
        services.stakeholder_add(
            project=personas.project, actor=personas.alice, name=" ", kind="alien"
        )
    assert set(excinfo.value.errors) == {"name", "kind"}


def test_other_teams_cannot_touch_the_register(personas):
    with pytest.raises(NotAllowed):
        services.stakeholder_add(
            project=personas.project, actor=personas.carol, name="X", kind="other"
        )


def test_a_student_joins_a_course_with_its_code_once(personas):
    membership = services.course_join(
        user=personas.oscar, join_code=personas.course.join_code.lower()
    )
    again = services.course_join(user=personas.oscar, join_code=personas.course.join_code)
    assert membership == again
    assert AuditEvent.objects.filter(verb="membership.join").count() == 1
    with pytest.raises(IllegalTransition):
        services.course_join(user=personas.oscar, join_code="NOPE")
