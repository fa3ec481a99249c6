"""Each guard of each lifecycle transition, and the audit event and domain event each transition
records, asserted with their payloads."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from factories import advance_to, conclude_not_pursued, current_stage, fill_and_submit

from lifecycle import events, services
from lifecycle.errors import IllegalTransition, InvalidAnswers, NotAllowed
from lifecycle.models import (
    AuditEvent,
    Outcome,
    ProjectStage,
    ProjectStatus,
    StageStatus,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def published(monkeypatch):
    """Every domain event published during the test, as (name, payload)."""
    seen: list[tuple[str, dict]] = []
    for name in (
        events.STAGE_SUBMITTED,
        events.STAGE_CHANGES_REQUESTED,
        events.STAGE_APPROVED,
        events.PROJECT_LOOPED_BACK,
        events.PROJECT_CONCLUDED,
    ):
        monkeypatch.setitem(
            events._subscribers,
            name,
            [*events._subscribers.get(name, ()), lambda _n=name, **kw: seen.append((_n, kw))],
        )
    return seen


def stage1(p) -> ProjectStage:
    return p.project.stages.get(definition__order=1, cycle=1)


def last_event(verb: str) -> AuditEvent:
    return AuditEvent.objects.filter(verb=verb).latest("seq")


def snapshot(project) -> tuple:
    project.refresh_from_db()
    return (
        project.status,
        project.cycle,
        project.current_stage_id,
        sorted(ProjectStage.objects.filter(project=project).values_list("pk", "status")),
        AuditEvent.objects.count(),
    )


# --- loop back -----------------------------------------------------------------------------


def test_looping_back_while_the_iterate_stage_is_in_review_is_refused(personas):
    p = personas
    iterate = advance_to(p.project, 7, team_member=p.alice, reviewer=p.tina)
    fill_and_submit(iterate, p.alice)
    before = snapshot(p.project)
    with pytest.raises(IllegalTransition, match="in review"):
        services.project_loop_back(project=p.project, actor=p.alice, to_order=3, reason="Learnt")
    assert snapshot(p.project) == before


def test_looping_back_after_changes_were_requested_on_iterate_is_allowed(personas):
    p = personas
    iterate = advance_to(p.project, 7, team_member=p.alice, reviewer=p.tina)
    revision = fill_and_submit(iterate, p.alice)
    services.stage_request_changes(stage=iterate, revision=revision, actor=p.tina, reason="More")
    services.project_loop_back(project=p.project, actor=p.alice, to_order=6, reason="Retrain")
    p.project.refresh_from_db()
    assert p.project.cycle == 2
    assert current_stage(p.project).definition.order == 6


def test_the_loop_back_event_and_audit_record_the_cycles_and_stages(personas, published):
    p = personas
    iterate = advance_to(p.project, 7, team_member=p.alice, reviewer=p.tina)
    published.clear()
    services.project_loop_back(
        project=p.project, actor=p.bob, to_order=2, reason="  Rural clinics are missing.  "
    )
    first = current_stage(p.project)
    event = last_event("project.loop_back")
    assert (event.actor, event.project, event.object_id) == (p.bob, p.project, str(p.project.pk))
    assert event.old == {"cycle": 1, "stage": iterate.definition.key}
    assert event.new == {
        "cycle": 2,
        "stage": first.definition.key,
        "reason": "  Rural clinics are missing.  ",
    }
    assert not event.flagged
    assert [name for name, _ in published] == [events.PROJECT_LOOPED_BACK]
    payload = published[0][1]
    assert payload["from_stage"] == iterate and payload["to_stage"] == first
    assert payload["reason"] == "Rural clinics are missing."
    assert payload["actor"] == p.bob
    assert first.opened_at is not None and first.status == StageStatus.DRAFTING
    assert all(s.opened_at is None for s in p.project.stages.filter(cycle=2, status="locked"))


def test_looping_back_to_a_stage_that_does_not_exist_is_refused(personas):
    p = personas
    advance_to(p.project, 7, team_member=p.alice, reviewer=p.tina)
    before = snapshot(p.project)
    for to_order in (0, 8, 99):
        with pytest.raises(InvalidAnswers):
            services.project_loop_back(
                project=p.project, actor=p.alice, to_order=to_order, reason="x"
            )
    assert snapshot(p.project) == before


def test_a_concluded_project_cannot_loop_back(personas):
    p = personas
    advance_to(p.project, 7, team_member=p.alice, reviewer=p.tina)
    conclude_not_pursued(p.project, p.alice, p.tina)
    with pytest.raises(IllegalTransition, match="concluded"):
        services.project_loop_back(project=p.project, actor=p.alice, to_order=3, reason="Again")


# --- conclude ------------------------------------------------------------------------------


def test_concluding_an_already_concluded_project_is_refused(personas):
    p = personas
    conclude_not_pursued(p.project, p.alice, p.tina, reasoning="No data")
    before = snapshot(p.project)
    p.project.refresh_from_db()
    concluded_at = p.project.concluded_at
    for outcome in (Outcome.NOT_PURSUED, Outcome.DEPLOYED):
        with pytest.raises(IllegalTransition, match="concluded"):
            services.project_conclude(
                project=p.project, actor=p.bob, outcome=outcome, reason="Again"
            )
    assert snapshot(p.project) == before
    p.project.refresh_from_db()
    assert p.project.outcome == Outcome.NOT_PURSUED
    assert p.project.outcome_reason.startswith("No data")
    assert p.project.concluded_at == concluded_at


def test_one_member_cannot_conclude_a_project_as_not_pursued(personas, published):
    p = personas
    before = snapshot(p.project)
    with pytest.raises(IllegalTransition, match="proposed to the reviewers"):
        services.project_conclude(
            project=p.project, actor=p.bob, outcome="not_pursued", reason="A rota fits better."
        )
    assert snapshot(p.project) == before
    assert published == []
    assert not AuditEvent.objects.filter(verb="project.conclude").exists()


def test_not_pursued_can_be_proposed_and_approved_at_the_iterate_stage(personas):
    p = personas
    advance_to(p.project, 7, team_member=p.alice, reviewer=p.tina)
    conclude_not_pursued(p.project, p.alice, p.tina)
    p.project.refresh_from_db()
    assert p.project.status == ProjectStatus.CONCLUDED
    assert p.project.outcome == Outcome.NOT_PURSUED


def test_deployed_is_refused_before_the_iterate_stage_even_when_a_stage_is_approved(personas):
    p = personas
    advance_to(p.project, 2, team_member=p.alice, reviewer=p.tina)
    with pytest.raises(IllegalTransition, match="Iterate"):
        services.project_conclude(project=p.project, actor=p.alice, outcome="deployed", reason="x")


def test_an_unknown_outcome_is_refused(personas):
    with pytest.raises(ValueError):
        services.project_conclude(
            project=personas.project, actor=personas.alice, outcome="shipped", reason="x"
        )


# --- request changes -----------------------------------------------------------------------


def test_a_request_for_changes_is_audited_with_its_payload(personas, published):
    p = personas
    stage = stage1(p)
    revision = fill_and_submit(stage, p.alice)
    published.clear()
    services.stage_request_changes(
        stage=stage, revision=revision, actor=p.tina, reason="  Who is 'we'?  "
    )
    stage.refresh_from_db()
    assert stage.status == StageStatus.CHANGES_REQUESTED
    event = last_event("stage.request_changes")
    assert (event.actor, event.project) == (p.tina, p.project)
    assert (event.object_type, event.object_id) == ("lifecycle.projectstage", str(stage.pk))
    assert event.old == {"status": "in_review"}
    assert event.new == {"status": "changes_requested", "revision": 1, "reason": "Who is 'we'?"}
    assert not event.flagged
    assert [name for name, _ in published] == [events.STAGE_CHANGES_REQUESTED]
    payload = published[0][1]
    assert payload["revision"] == revision and payload["actor"] == p.tina
    assert payload["reason"] == "Who is 'we'?"


@pytest.mark.parametrize("reason", ["", "   "])
def test_a_request_for_changes_needs_a_reason(personas, reason):
    p = personas
    stage = stage1(p)
    revision = fill_and_submit(stage, p.alice)
    with pytest.raises(InvalidAnswers):
        services.stage_request_changes(stage=stage, revision=revision, actor=p.tina, reason=reason)
    stage.refresh_from_db()
    assert stage.status == StageStatus.IN_REVIEW


def test_changes_can_be_requested_only_of_a_stage_in_review(personas):
    p = personas
    stage = stage1(p)
    revision = fill_and_submit(stage, p.alice)
    services.stage_request_changes(stage=stage, revision=revision, actor=p.tina, reason="One")
    with pytest.raises(IllegalTransition, match="not in review"):
        services.stage_request_changes(stage=stage, revision=revision, actor=p.ian, reason="Two")
    assert AuditEvent.objects.filter(verb="stage.request_changes").count() == 1


@pytest.mark.parametrize(("who", "message"), [("bob", "own project"), ("anonymous", "Sign in")])
def test_the_team_and_anonymous_cannot_request_changes(personas, who, message):
    p = personas
    stage = stage1(p)
    revision = fill_and_submit(stage, p.alice)
    actor = AnonymousUser() if who == "anonymous" else p.bob
    with pytest.raises(NotAllowed, match=message):
        services.stage_request_changes(stage=stage, revision=revision, actor=actor, reason="x")


def test_changes_cannot_be_requested_on_a_superseded_revision_or_a_concluded_project(personas):
    p = personas
    stage = stage1(p)
    first = fill_and_submit(stage, p.alice)
    services.stage_request_changes(stage=stage, revision=first, actor=p.tina, reason="One")
    fill_and_submit(stage, p.alice)
    with pytest.raises(IllegalTransition, match="superseded by revision 2"):
        services.stage_request_changes(stage=stage, revision=first, actor=p.tina, reason="x")
    conclude_not_pursued(p.project, p.alice, p.tina)
    with pytest.raises(IllegalTransition, match="concluded"):
        services.stage_request_changes(stage=stage, revision=first, actor=p.tina, reason="x")


# --- submit and approve --------------------------------------------------------------------


def test_submitting_and_resubmitting_are_audited_and_published(personas, published):
    p = personas
    stage = stage1(p)
    first = fill_and_submit(stage, p.alice)
    event = last_event("stage.submit")
    assert event.old == {"status": "drafting"}
    assert event.new == {"status": "in_review", "revision": 1, "sha256": first.content_sha256}
    services.stage_request_changes(stage=stage, revision=first, actor=p.tina, reason="More")
    second = fill_and_submit(stage, p.bob)
    event = last_event("stage.submit")
    assert event.actor == p.bob
    assert event.old == {"status": "changes_requested"}
    assert event.new == {"status": "in_review", "revision": 2, "sha256": second.content_sha256}
    submitted = [kw for name, kw in published if name == events.STAGE_SUBMITTED]
    assert [(kw["revision"], kw["resubmission"]) for kw in submitted] == [
        (first, False),
        (second, True),
    ]
    stage.refresh_from_db()
    assert stage.current_revision == second
    assert stage.submitted_at == second.created_at


def test_a_stage_in_review_or_approved_cannot_be_submitted_again(personas):
    p = personas
    stage = stage1(p)
    revision = fill_and_submit(stage, p.alice)
    with pytest.raises(IllegalTransition, match="only a stage"):
        services.stage_submit(stage=stage, actor=p.alice)
    services.stage_mark_approved(stage=stage, revision=revision, actor=p.tina)
    with pytest.raises(IllegalTransition):
        services.stage_submit(stage=stage, actor=p.alice)
    assert stage.revisions.count() == 1


def test_an_approval_is_audited_with_the_gate_summary_and_opens_the_next_stage(personas, published):
    p = personas
    stage = stage1(p)
    revision = fill_and_submit(stage, p.alice)
    published.clear()
    summary = {"satisfied": True, "approvals": 1, "staff": 1, "expert": 0, "approvers": ["Tina"]}
    services.stage_mark_approved(stage=stage, revision=revision, actor=p.tina, gate_summary=summary)
    second = current_stage(p.project)
    event = last_event("stage.approve")
    assert event.old == {"status": "in_review"}
    assert event.new == {
        "status": "approved",
        "revision": 1,
        "sha256": revision.content_sha256,
        "opened": second.definition.key,
        "gate": summary,
    }
    assert not event.flagged
    stage.refresh_from_db()
    assert not stage.approved_by_override and stage.override_justification == ""
    assert second.opened_at == stage.approved_at
    assert [name for name, _ in published] == [events.STAGE_APPROVED]
    payload = published[0][1]
    assert payload["next_stage"] == second and payload["override"] is False


def test_an_override_approval_records_the_justification_and_is_flagged(personas, published):
    p = personas
    stage = stage1(p)
    revision = fill_and_submit(stage, p.alice)
    published.clear()
    services.stage_mark_approved(
        stage=stage, revision=revision, actor=p.ian, override_justification="  Expert is ill  "
    )
    event = last_event("stage.override_approve")
    assert event.flagged
    assert event.new["justification"] == "Expert is ill"
    assert "gate" not in event.new
    stage.refresh_from_db()
    assert stage.approved_by_override and stage.override_justification == "Expert is ill"
    assert published[0][1]["override"] is True


def test_approving_the_last_stage_opens_nothing(personas):
    p = personas
    iterate = advance_to(p.project, 7, team_member=p.alice, reviewer=p.tina)
    revision = fill_and_submit(iterate, p.alice)
    services.stage_mark_approved(stage=iterate, revision=revision, actor=p.tina)
    assert last_event("stage.approve").new["opened"] is None
    p.project.refresh_from_db()
    assert p.project.current_stage == iterate


def test_a_stage_not_in_review_cannot_be_approved(personas):
    p = personas
    stage = stage1(p)
    revision = fill_and_submit(stage, p.alice)
    services.stage_request_changes(stage=stage, revision=revision, actor=p.tina, reason="More")
    with pytest.raises(IllegalTransition, match="not in review"):
        services.stage_mark_approved(stage=stage, revision=revision, actor=p.tina)
    with pytest.raises(NotAllowed, match="Sign in"):
        services.stage_mark_approved(stage=stage, revision=revision, actor=AnonymousUser())


def test_a_revision_of_another_stage_is_not_the_current_revision(personas):
    p = personas
    stage = stage1(p)
    fill_and_submit(stage, p.alice)
    other_revision = fill_and_submit(current_stage(p.other_project), p.carol)
    with pytest.raises(IllegalTransition, match="superseded"):
        services.stage_mark_approved(stage=stage, revision=other_revision, actor=p.tina)


# --- due dates -----------------------------------------------------------------------------


def test_setting_a_due_date_is_audited_once(personas):
    import datetime as dt

    p = personas
    stage = stage1(p)
    day = dt.date(2026, 12, 1)
    services.stage_set_due_date(stage=stage, actor=p.tina, due_date=day)
    services.stage_set_due_date(stage=stage, actor=p.ian, due_date=day)
    events_ = AuditEvent.objects.filter(verb="stage.set_due_date")
    assert events_.count() == 1
    assert events_.get().old == {"due_date": None}
    assert events_.get().new == {"due_date": "2026-12-01"}


# --- drafts --------------------------------------------------------------------------------


def test_a_save_based_on_a_version_from_the_future_is_a_conflict(personas):
    from lifecycle.errors import DraftConflict

    p = personas
    stage = stage1(p)
    key = stage.definition.questions.filter(kind="long_text").first().key
    services.stage_save_draft(stage=stage, actor=p.alice, answers={key: "v1"}, base_version=0)
    with pytest.raises(DraftConflict) as excinfo:
        services.stage_save_draft(stage=stage, actor=p.alice, answers={key: "v?"}, base_version=5)
    assert excinfo.value.current_version == 1
    assert excinfo.value.updated_by == "Alice"
    stage.refresh_from_db()
    assert (stage.draft_version, stage.draft_answers) == (1, {key: "v1"})


def test_a_revision_lists_the_register_in_the_order_it_was_written(personas):
    p = personas
    stage = stage1(p)
    for name in ("Zoe's clinic", "Anna's ward"):
        services.stakeholder_add(project=p.project, actor=p.alice, name=name, kind="other")
    revision = fill_and_submit(stage, p.alice)
    assert [s["name"] for s in revision.stakeholders] == ["Zoe's clinic", "Anna's ward"]
    assert revision.number == 1 and revision.created_by == p.alice


def test_a_stale_save_ignores_what_others_changed_before_the_version_it_was_based_on(personas):
    """Bob's early change is part of the version Alice opened; only Alice changed anything
    since, so her stale tab's save is no conflict."""
    p = personas
    stage = stage1(p)
    keys = [q.key for q in stage.definition.questions.filter(kind__in=["long_text", "short_text"])]
    services.stage_save_draft(stage=stage, actor=p.bob, answers={keys[0]: "Bob"}, base_version=0)
    services.stage_save_draft(stage=stage, actor=p.alice, answers={keys[1]: "A"}, base_version=1)
    services.stage_save_draft(stage=stage, actor=p.alice, answers={keys[2]: "B"}, base_version=2)
    services.stage_save_draft(stage=stage, actor=p.alice, answers={keys[3]: "C"}, base_version=2)
    stage.refresh_from_db()
    assert stage.draft_version == 4
    assert stage.draft_changed_by == {
        keys[0]: p.bob.pk,
        keys[1]: p.alice.pk,
        keys[2]: p.alice.pk,
        keys[3]: p.alice.pk,
    }
    assert stage.draft_changed_at == {keys[0]: 1, keys[1]: 2, keys[2]: 3, keys[3]: 4}
