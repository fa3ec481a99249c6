"""Races with real threads on a real database (SQLite file or PostgreSQL): each thread has
its own connection and they start together at a barrier."""

from __future__ import annotations

import pytest
from concurrency import outcome_kinds as kinds
from concurrency import race
from django.core.management import call_command
from factories import UserFactory, complete_answers, enrol

from lifecycle import services
from lifecycle.audit import verify_chain
from lifecycle.errors import DraftConflict, IllegalTransition
from lifecycle.models import AuditEvent, StageRevision, StageStatus

pytestmark = pytest.mark.django_db(transaction=True)
THREADS = 20


@pytest.mark.parametrize("round_", range(3))
def test_twenty_simultaneous_submits_make_exactly_one_revision(personas, round_):
    stage = personas.project.stages.get(definition__order=1, cycle=1)
    services.stage_save_draft(
        stage=stage, actor=personas.alice, answers=complete_answers(stage), base_version=0
    )
    services.stakeholder_add(
        project=personas.project, actor=personas.bob, name="Nurses", kind="operator"
    )
    submitters = [personas.alice, personas.bob]

    results = race(THREADS, lambda i: services.stage_submit(stage=stage, actor=submitters[i % 2]))

    assert kinds(results) == {"ok": 1, "IllegalTransition": THREADS - 1}
    assert StageRevision.objects.filter(stage=stage).count() == 1
    stage.refresh_from_db()
    assert stage.status == StageStatus.IN_REVIEW
    assert AuditEvent.objects.filter(verb="stage.submit").count() == 1
    assert all(isinstance(v, IllegalTransition) for s, v in results if s == "error")


def test_twenty_simultaneous_draft_saves_on_one_version_let_exactly_one_win(personas):
    team = [UserFactory() for _ in range(THREADS)]
    for student in team:
        enrol(personas.course, student)
    project = services.project_create(
        course=personas.course, actor=team[0], title="Twenty", members=team[1:]
    )
    stage = project.stages.get(definition__order=1, cycle=1)
    key = stage.definition.questions.filter(kind="long_text").first().key

    results = race(
        THREADS,
        lambda i: services.stage_save_draft(
            stage=stage, actor=team[i], answers={key: f"writer {i}"}, base_version=0
        ),
    )

    assert kinds(results) == {"ok": 1, "DraftConflict": THREADS - 1}
    winner = next(i for i, (status, _) in enumerate(results) if status == "ok")
    stage.refresh_from_db()
    assert stage.draft_version == 1
    assert stage.draft_answers == {key: f"writer {winner}"}
    for status, value in results:
        if status == "error":
            assert isinstance(value, DraftConflict)
            assert value.changed_questions == [key]
            assert value.current_version == 1


def test_twenty_concurrent_audited_actions_keep_one_intact_chain(personas, capsys):
    newcomers = [UserFactory() for _ in range(THREADS)]
    before = AuditEvent.objects.count()
    code = personas.course.join_code

    results = race(THREADS, lambda i: services.course_join(user=newcomers[i], join_code=code))

    assert kinds(results) == {"ok": THREADS}
    assert AuditEvent.objects.count() == before + THREADS
    seqs = list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    report = verify_chain()
    assert report.intact and report.count == before + THREADS
    call_command("verify_audit")
    assert f"intact: {before + THREADS} events" in capsys.readouterr().out
