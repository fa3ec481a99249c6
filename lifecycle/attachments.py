"""Extension point for what a revision freezes beside the answers and the stakeholder register.

The evidence layer registers a source (in its AppConfig.ready) that lists the files attached
to a stage's draft; stage_submit freezes that list into the revision, its SHA-256 covers the
files' hashes, and the audit event names them. lifecycle never imports the layer above.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# A source takes the (locked) stage and returns one dict per attached file, at least
# {"question": key, "name": file name, "sha256": hex digest, "size": bytes}.
RevisionSource = Callable[[Any], list[dict[str, Any]]]
_sources: list[RevisionSource] = []


def register_revision_source(source: RevisionSource) -> RevisionSource:
    if source not in _sources:
        _sources.append(source)
    return source


def frozen_attachments(stage: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for source in _sources:
        found.extend(source(stage))
    # One order whatever the sources' order, so the same files always hash the same.
    return sorted(found, key=lambda f: (str(f["question"]), str(f["name"]), str(f["sha256"])))
