"""Domain events of the review layer, for layers above it (notifications).

Published inside the service's transaction through lifecycle's registry, so a subscriber's
rows commit with the change or not at all. reviews knows nothing of its subscribers."""

from __future__ import annotations

from lifecycle.events import publish, subscribe

# payload: assignment (a new active ReviewAssignment)
ASSIGNMENT_CREATED = "review.assignment_created"
# payload: project, actor, stage (the project's current stage or None), message, day
PROJECT_NUDGED = "project.nudged"
# payload: comment (a new thread, or a reply when comment.parent is set)
COMMENT_ADDED = "review.comment_added"
# payload: invitation (a team's invitation held until course staff confirm it; not yet sent)
INVITATION_AWAITING_CONFIRMATION = "review.invitation_awaiting_confirmation"
# payload: assignment (an expert a team proposed accepted; their decisions count once confirmed)
EXPERT_AWAITING_CONFIRMATION = "review.expert_awaiting_confirmation"
# payload: flag (a team member flagged a decision as unfair), project
REVIEW_FLAGGED = "review.flagged"

__all__ = [
    "ASSIGNMENT_CREATED",
    "COMMENT_ADDED",
    "EXPERT_AWAITING_CONFIRMATION",
    "INVITATION_AWAITING_CONFIRMATION",
    "PROJECT_NUDGED",
    "REVIEW_FLAGGED",
    "publish",
    "subscribe",
]
