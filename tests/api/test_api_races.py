"""Twenty reviewers approve one stage through the API at the same instant, with real threads on
whichever database the settings use: every decision is recorded once, the stage advances once
and the next stage opens once."""

from __future__ import annotations

import pytest
from api_support import ApiClient
from concurrency import race
from factories import UserFactory, current_stage, declare_no_conflict, enrol, fill_and_submit

from api import services as api_services
from lifecycle.audit import verify_chain
from lifecycle.models import AuditEvent, ProjectStage, Role, StageStatus
from reviews.models import Decision
from reviews.services import assignment_create

pytestmark = pytest.mark.django_db(transaction=True)

REVIEWERS = 20


def test_twenty_simultaneous_api_approvals_advance_the_stage_exactly_once(personas):
    p = personas
    stage = current_stage(p.project)
    secrets = []
    for i in range(REVIEWERS // 2):
        # Staff and experts interleaved, so they reach the barrier in every order.
        ta = UserFactory(display_name=f"TA {i}")
        enrol(p.course, ta, Role.TA)
        expert = UserFactory(display_name=f"Expert {i}")
        assignment_create(
            project=p.project,
            actor=p.ian,
            reviewer=expert,
            role="expert",
            stage_definition=stage.definition,
        )
        declare_no_conflict(p.project, expert)
        for reviewer in (ta, expert):
            token = api_services.token_create(user=reviewer, name="ci", scopes=["read", "review"])
            secrets.append(token[1])
    revision = fill_and_submit(stage, p.alice)
    url = f"/api/v1/revisions/{revision.pk}/decisions/"

    def approve(i: int) -> int:
        return ApiClient(secrets[i]).post(url, {"outcome": "approve"}).status_code

    results = race(REVIEWERS, approve)
    codes = [value for status, value in results]
    assert all(status == "ok" for status, _ in results), results
    assert codes == [201] * REVIEWERS, codes
    assert Decision.objects.filter(revision=revision, replaced_at__isnull=True).count() == REVIEWERS
    assert AuditEvent.objects.filter(verb="stage.approve", project=p.project).count() == 1
    stage.refresh_from_db()
    assert stage.status == StageStatus.APPROVED
    opened = ProjectStage.objects.filter(
        project=p.project, cycle=stage.cycle, definition__order=stage.definition.order + 1
    ).exclude(status=StageStatus.LOCKED)
    assert opened.count() == 1
    assert verify_chain().intact
