"""Two tabs of one team member rating (or flagging) the same review at the same moment, with
real threads on whichever database the settings use (SQLite file or PostgreSQL): one rating
row, one open flag, no error but the domain's own refusal, and an intact audit chain."""

from __future__ import annotations

import pytest
from concurrency import outcome_kinds, race
from factories import current_stage, declare_no_conflict, fill_and_submit

from lifecycle.audit import verify_chain
from lifecycle.models import AuditEvent
from reviews import quality, services
from reviews.models import FlagState, ReviewFlag, ReviewRating

pytestmark = pytest.mark.django_db(transaction=True)

TABS = 6
ROUNDS = 5


@pytest.fixture
def decision(personas):
    p = personas
    stage = current_stage(p.project)
    services.assignment_create(
        project=p.project,
        actor=p.ian,
        reviewer=p.erin,
        role="expert",
        stage_definition=stage.definition,
    )
    declare_no_conflict(p.project, p.erin)
    revision = fill_and_submit(stage, p.alice)
    return services.decision_record(
        revision=revision, reviewer=p.erin, outcome="approve", comment="Clear."
    )


def test_tabs_rating_one_review_at_once_leave_one_rating(personas, decision):
    for n in range(ROUNDS):
        results = race(
            TABS,
            lambda i, n=n: quality.review_rate(
                decision=decision, rater=personas.alice, helpfulness=1 + (i + n) % 5
            ),
        )
        assert outcome_kinds(results) == {"ok": TABS}, results
        assert ReviewRating.objects.filter(decision=decision, rater=personas.alice).count() == 1
    rating = ReviewRating.objects.get()
    # Every change of value is one audit event, the first a "set".
    events = list(AuditEvent.objects.filter(verb__startswith="review.rating").order_by("seq"))
    assert events[0].verb == "review.rating_set"
    assert all(e.verb == "review.rating_change" for e in events[1:])
    assert events[-1].new["helpfulness"] == rating.helpfulness
    assert verify_chain().intact


def test_tabs_flagging_one_review_at_once_leave_one_open_flag(personas, decision):
    results = race(
        TABS,
        lambda i: quality.review_flag(decision=decision, actor=personas.alice, reason=f"Tab {i}"),
    )
    assert outcome_kinds(results) == {"ok": 1, "IllegalTransition": TABS - 1}, results
    assert ReviewFlag.objects.filter(state=FlagState.OPEN).count() == 1
    assert AuditEvent.objects.filter(verb="review.flag_raise").count() == 1
