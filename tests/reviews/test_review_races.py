"""Reviewers deciding on one stage at the same moment, with real threads on whichever database
the settings use (SQLite file or PostgreSQL): every decision is recorded, the stage is approved
once and the next stage opens once. The figures go to tests/artifacts/race-figures-<vendor>.txt
for the lead's note."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from concurrency import race
from django.db import connection
from factories import UserFactory, current_stage, declare_no_conflict, enrol, fill_and_submit

from lifecycle.audit import verify_chain
from lifecycle.errors import DomainError, IllegalTransition
from lifecycle.models import AuditEvent, ProjectStage, Role, StageStatus
from reviews import services
from reviews.models import Decision

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = 20
MIXED_ROUNDS = 5
STAFF_REVIEWERS = 10
EXPERT_REVIEWERS = 10
REVIEWERS = STAFF_REVIEWERS + EXPERT_REVIEWERS
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"

FIGURES: dict[str, Any] = {
    "vendor": None,
    "rounds": 0,
    "threads_per_round": REVIEWERS,
    "decisions_recorded": 0,
    "thread_errors": 0,
    "advances": 0,
    "stage_two_openings": 0,
    "seconds": 0.0,
    "mixed_rounds": 0,
    "mixed_outcomes": Counter(),
    "mixed_decisions_recorded": 0,
    "mixed_refused_after_approval": 0,
}


@pytest.fixture(scope="module", autouse=True)
def _write_race_figures():
    yield
    if not FIGURES["rounds"] and not FIGURES["mixed_rounds"]:
        return
    ARTIFACTS.mkdir(exist_ok=True)
    vendor = FIGURES["vendor"]
    mixed = ", ".join(f"{k}: {v}" for k, v in sorted(FIGURES["mixed_outcomes"].items()))
    (ARTIFACTS / f"race-figures-{vendor}.txt").write_text(
        f"backend: {vendor}\n"
        f"approve race: {FIGURES['rounds']} rounds x {REVIEWERS} reviewers "
        f"({STAFF_REVIEWERS} course staff + {EXPERT_REVIEWERS} experts) released at a barrier\n"
        f"decisions recorded: {FIGURES['decisions_recorded']} "
        f"of {FIGURES['rounds'] * REVIEWERS}\n"
        f"thread errors: {FIGURES['thread_errors']}\n"
        f"advances (stage.approve events): {FIGURES['advances']}\n"
        f"next stage opened: {FIGURES['stage_two_openings']}\n"
        f"time in the races: {FIGURES['seconds']:.1f} s\n"
        f"mixed race (10 approve, 10 request changes): {FIGURES['mixed_rounds']} rounds; "
        f"final states: {mixed or 'none'}; decisions recorded: "
        f"{FIGURES['mixed_decisions_recorded']}; requests refused as already approved: "
        f"{FIGURES['mixed_refused_after_approval']}\n",
        encoding="utf-8",
    )


def twenty_reviewers_on_stage_one(p):
    """Stage 1 of Alice's project in review, and 10 TAs and 10 experts assigned to it."""
    stage = current_stage(p.project)
    tas = [UserFactory(display_name=f"TA {i}") for i in range(STAFF_REVIEWERS)]
    for ta in tas:
        enrol(p.course, ta, Role.TA)
    experts = [UserFactory(display_name=f"Expert {i}") for i in range(EXPERT_REVIEWERS)]
    for expert in experts:
        services.assignment_create(
            project=p.project,
            actor=p.ian,
            reviewer=expert,
            role="expert",
            stage_definition=stage.definition,
        )
        declare_no_conflict(p.project, expert)
    revision = fill_and_submit(stage, p.alice)
    # Interleave the roles so that staff and experts arrive at the barrier in every order.
    reviewers = [r for pair in zip(tas, experts, strict=True) for r in pair]
    return stage, revision, reviewers


def stage_events(stage: ProjectStage, verb: str) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(
            verb=verb, object_type="lifecycle.projectstage", object_id=str(stage.pk)
        ).order_by("seq")
    )


def openings(project, key: str) -> int:
    """Audit events of the project that say they opened the stage ``key``."""
    return sum(
        1
        for new in AuditEvent.objects.filter(project=project).values_list("new", flat=True)
        if isinstance(new, dict) and new.get("opened") == key
    )


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_twenty_reviewers_approving_at_once_approve_the_stage_once_and_open_the_next_once(
    personas, round_
):
    p = personas
    stage, revision, reviewers = twenty_reviewers_on_stage_one(p)
    stage_two = ProjectStage.objects.get(project=p.project, cycle=1, definition__order=2)

    started = time.monotonic()
    results = race(
        REVIEWERS,
        lambda i: services.decision_record(
            revision=revision, reviewer=reviewers[i], outcome="approve"
        ),
    )
    elapsed = time.monotonic() - started

    errors = [value for status, value in results if status != "ok"]
    recorded = Decision.objects.filter(revision=revision).count()
    approvals = stage_events(stage, "stage.approve")
    opened = openings(p.project, stage_two.definition.key)
    FIGURES["vendor"] = connection.vendor
    FIGURES["rounds"] += 1
    FIGURES["decisions_recorded"] += recorded
    FIGURES["thread_errors"] += len(errors)
    FIGURES["advances"] += len(approvals)
    FIGURES["stage_two_openings"] += opened
    FIGURES["seconds"] += elapsed

    assert errors == []
    assert recorded == REVIEWERS
    assert (
        Decision.objects.filter(revision=revision, replaced_at__isnull=True)
        .values("reviewer")
        .distinct()
        .count()
        == REVIEWERS
    )
    assert AuditEvent.objects.filter(verb="decision.record", project=p.project).count() == (
        REVIEWERS
    )
    assert len(approvals) == 1
    assert not stage_events(stage, "stage.override_approve")
    stage.refresh_from_db()
    stage_two.refresh_from_db()
    assert stage.status == StageStatus.APPROVED
    assert stage_two.status == StageStatus.DRAFTING and stage_two.opened_at == stage.approved_at
    assert opened == 1
    assert current_stage(p.project) == stage_two
    assert ProjectStage.objects.get(project=p.project, cycle=1, definition__order=3).status == (
        StageStatus.LOCKED
    )
    # The approving decision is the one just before the approval in the chain, and it is the
    # first moment the gate held: one staff and one expert approval before it, no fewer.
    decided = AuditEvent.objects.get(seq=approvals[0].seq - 1)
    assert decided.verb == "decision.record" and decided.actor_id == approvals[0].actor_id
    gate = approvals[0].new["gate"]
    assert gate["staff"] >= 1 and gate["expert"] >= 1
    assert gate[decided.new["role"]] == 1
    assert gate["approvals"] == gate["staff"] + gate["expert"]
    report = verify_chain()
    assert report.intact, report.reason


@pytest.mark.parametrize("round_", range(MIXED_ROUNDS))
def test_ten_approving_and_ten_requesting_changes_at_once_leave_one_consistent_outcome(
    personas, round_
):
    p = personas
    stage, revision, reviewers = twenty_reviewers_on_stage_one(p)
    asks_for_changes = {i for i in range(REVIEWERS) if i % 4 in (1, 2)}  # 5 TAs, 5 experts

    def decide(i: int):
        if i in asks_for_changes:
            return services.decision_record(
                revision=revision,
                reviewer=reviewers[i],
                outcome="request_changes",
                comment=f"Reviewer {i}: the stakeholder register misses the patients.",
            )
        return services.decision_record(revision=revision, reviewer=reviewers[i], outcome="approve")

    results = race(REVIEWERS, decide)

    stage.refresh_from_db()
    approvals = stage_events(stage, "stage.approve")
    requests = stage_events(stage, "stage.request_changes")
    refused = [i for i, (status, _) in enumerate(results) if status != "ok"]
    FIGURES["vendor"] = connection.vendor
    FIGURES["mixed_rounds"] += 1
    FIGURES["mixed_outcomes"][stage.status] += 1
    FIGURES["mixed_decisions_recorded"] += Decision.objects.filter(revision=revision).count()
    FIGURES["mixed_refused_after_approval"] += len(refused)

    # Only a domain error, and only "already approved" for a request arriving after approval.
    for i in refused:
        error = results[i][1]
        assert isinstance(error, IllegalTransition), repr(error)
        assert i in asks_for_changes
        assert "already approved" in error.message
    assert all(isinstance(v, DomainError) for s, v in results if s != "ok")
    # Every decision recorded or refused: nothing lost, nothing doubled.
    recorded = Decision.objects.filter(revision=revision)
    assert recorded.count() + len(refused) == REVIEWERS
    assert recorded.values("reviewer").distinct().count() == recorded.count()
    # Exactly one transition out of review, whichever came first.
    assert len(approvals) + len(requests) == 1
    stage_two = ProjectStage.objects.get(project=p.project, cycle=1, definition__order=2)
    if stage.status == StageStatus.APPROVED:
        assert requests == []
        assert not recorded.filter(outcome="request_changes").exists()
        assert len(refused) == len(asks_for_changes)
        assert stage_two.status == StageStatus.DRAFTING
        assert current_stage(p.project) == stage_two
    else:
        assert stage.status == StageStatus.CHANGES_REQUESTED
        assert approvals == [] and refused == []
        assert stage_two.status == StageStatus.LOCKED
        assert current_stage(p.project) == stage
        # The request that sent the stage back was recorded just before it.
        moved_by = AuditEvent.objects.get(seq=requests[0].seq - 1)
        assert moved_by.verb == "decision.record"
        assert moved_by.new["outcome"] == "request_changes"
    report = verify_chain()
    assert report.intact, report.reason


def test_gate_completing_approvals_on_many_stages_at_once_advance_each_project_once(personas):
    """The benchmark's "sign-off under load": one TA completes the gate of eight projects'
    stage 1 at the same moment. The audit chain's lock is global; each approval records its
    events last, in one batch, so they serialise only there, and the chain stays one line."""
    from lifecycle import services as lifecycle_services

    p = personas
    n = 8
    armed = []
    for i in range(n):
        student = UserFactory(display_name=f"Student {i}")
        enrol(p.course, student)
        project = lifecycle_services.project_create(
            course=p.course, actor=student, title=f"Sign-off {i}"
        )
        stage = current_stage(project)
        services.assignment_create(
            project=project,
            actor=p.ian,
            reviewer=p.erin,
            role="expert",
            stage_definition=stage.definition,
        )
        declare_no_conflict(project, p.erin)
        revision = fill_and_submit(stage, student)
        services.decision_record(revision=revision, reviewer=p.erin, outcome="approve")
        armed.append((project, stage, revision))

    results = race(
        n,
        lambda i: services.decision_record(
            revision=armed[i][2], reviewer=p.tina, outcome="approve"
        ),
    )

    assert [status for status, _ in results] == ["ok"] * n, results
    for project, stage, _revision in armed:
        stage.refresh_from_db()
        assert stage.status == StageStatus.APPROVED
        assert len(stage_events(stage, "stage.approve")) == 1
        assert current_stage(project).definition.order == 2
        # Each approval's two events sit together in the chain, the decision first.
        approved = stage_events(stage, "stage.approve")[0]
        decided = AuditEvent.objects.get(seq=approved.seq - 1)
        assert (decided.verb, decided.actor_id, decided.project_id) == (
            "decision.record",
            p.tina.pk,
            project.pk,
        )
    report = verify_chain()
    assert report.intact, report.reason
