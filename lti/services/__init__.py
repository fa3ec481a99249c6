"""Every write of the LTI app: launches, context links, roster sync (NRPS) and grade passback
(AGS) through the outbox of scores.

The grading app hands grades over through ``queue_score`` and ``queue_project_total``; nothing
here imports it.
"""

from .launches import (
    DEPLOYMENT,
    PROJECT_TOTAL,
    LaunchOutcome,
    PrivilegedAccount,
    connector,
    context_create_course,
    context_link,
    launch_accept,
    problem_record,
    used_nonces_purge,
)
from .passback import (
    due_score_ids,
    line_item_ensure,
    queue_project_total,
    queue_score,
    score_deliver,
    score_retry,
    scores_url,
)
from .roster import RosterResult, RosterSyncFailed, roster_sync, roster_sync_request

__all__ = [
    "DEPLOYMENT",
    "PROJECT_TOTAL",
    "LaunchOutcome",
    "PrivilegedAccount",
    "RosterResult",
    "RosterSyncFailed",
    "connector",
    "context_create_course",
    "context_link",
    "due_score_ids",
    "launch_accept",
    "line_item_ensure",
    "problem_record",
    "queue_project_total",
    "queue_score",
    "roster_sync",
    "roster_sync_request",
    "score_deliver",
    "score_retry",
    "scores_url",
    "used_nonces_purge",
]
