"""Domain events for layers above lifecycle.

Services publish inside their transaction; subscribers (the review layer's notifications)
write their rows in that same transaction, so an event and what it causes commit together or
not at all. lifecycle knows nothing of its subscribers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

STAGE_SUBMITTED = "stage.submitted"
REVISION_RECORDED = "stage.revision_recorded"
STAGE_CHANGES_REQUESTED = "stage.changes_requested"
STAGE_APPROVED = "stage.approved"
PROJECT_LOOPED_BACK = "project.looped_back"
PROJECT_CONCLUDED = "project.concluded"
PROPOSAL_SUBMITTED = "proposal.submitted"
PROPOSAL_CHANGES_REQUESTED = "proposal.changes_requested"
PROPOSAL_WITHDRAWN = "proposal.withdrawn"
PROPOSAL_APPROVED = "proposal.approved"
# A roster upload enrolled people and invited others (payload: course, actor, invited, enrolled).
ROSTER_APPLIED = "course.roster_applied"

Subscriber = Callable[..., None]
_subscribers: dict[str, list[Subscriber]] = defaultdict(list)


def subscribe(event: str, subscriber: Subscriber) -> None:
    if subscriber not in _subscribers[event]:
        _subscribers[event].append(subscriber)


def publish(event: str, **payload: Any) -> None:
    for subscriber in list(_subscribers.get(event, ())):
        subscriber(**payload)
