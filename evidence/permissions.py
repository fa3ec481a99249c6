"""Who may see evidence files. A draft's files: whoever may see the project (its team and
course staff). A revision's files: exactly whoever may see that revision, which the review layer
widens to the stage's assigned reviewers through ``register_stage_viewer`` (evidence never
imports reviews). Everyone else gets a 404."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lifecycle import permissions as lifecycle_permissions

StageViewer = Callable[[Any, Any], bool]
_stage_viewers: list[StageViewer] = []


def register_stage_viewer(viewer: StageViewer) -> StageViewer:
    if viewer not in _stage_viewers:
        _stage_viewers.append(viewer)
    return viewer


def can_see_draft_files(user: Any, stage: Any) -> bool:
    return lifecycle_permissions.can_view_project(user, stage.project)


def can_see_revision_files(user: Any, stage: Any) -> bool:
    if not getattr(user, "is_authenticated", False):
        return False
    if lifecycle_permissions.can_view_project(user, stage.project):
        return True
    return any(viewer(user, stage) for viewer in _stage_viewers)
