"""Issue 11: two teammates saving different questions from one version at the same instant,
20 times, real threads on the real database (SQLite file or PostgreSQL): both changes are
kept every time, and neither is told of a conflict."""

from __future__ import annotations

import pytest
from concurrency import outcome_kinds, race

from lifecycle import services
from lifecycle.models import ProjectStage, QuestionKind

pytestmark = pytest.mark.django_db(transaction=True)
ROUNDS = 20


def test_two_teammates_saving_different_questions_at_once_both_keep_their_change(personas):
    stage = personas.project.stages.get(definition__order=1, cycle=1)
    q_alice, q_bob = list(
        stage.definition.questions.filter(kind=QuestionKind.LONG_TEXT)
        .order_by("order")
        .values_list("key", flat=True)[:2]
    )
    team = [personas.alice, personas.bob]
    for n in range(ROUNDS):
        stage = ProjectStage.objects.get(pk=stage.pk)
        base = stage.draft_version
        opened = dict(stage.draft_answers)
        # Each sends the whole form as they opened it, with their one question changed.
        forms = [
            {q_alice: f"Alice, round {n}", q_bob: opened.get(q_bob)},
            {q_alice: opened.get(q_alice), q_bob: f"Bob, round {n}"},
        ]

        def save(i, stage=stage, forms=forms, base=base):
            return services.stage_save_draft_merging(
                stage=stage, actor=team[i], answers=forms[i], base_version=base
            )

        results = race(2, save)

        assert outcome_kinds(results) == {"ok": 2}, (n, results)
        stage = ProjectStage.objects.get(pk=stage.pk)
        assert stage.draft_answers[q_alice] == f"Alice, round {n}", n
        assert stage.draft_answers[q_bob] == f"Bob, round {n}", n
        assert stage.draft_version == base + 2
        # The later of the two was told it merged the other's question.
        merged = sorted(value.merged for _, value in results)
        assert merged in ([[], [q_alice]], [[], [q_bob]]), merged
