"""Domain events of the review layer, for layers above it (notifications).

Published inside the service's transaction through lifecycle's registry, so a subscriber's
rows commit with the change or not at all. reviews knows nothing of its subscribers."""

from __future__ import annotations

from lifecycle.events import publish, subscribe

# payload: assignment (a new active ReviewAssignment)
ASSIGNMENT_CREATED = "review.assignment_created"
# payload: project, actor, stage (the project's current stage or None), message, day
PROJECT_NUDGED = "project.nudged"

__all__ = ["ASSIGNMENT_CREATED", "PROJECT_NUDGED", "publish", "subscribe"]
