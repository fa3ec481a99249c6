"""Reads of evidence used by several pages: always for one stage or revision the caller may
already see, in one query, with each file's URLs computed once in Python."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.http import Http404
from django.urls import reverse

from lifecycle.models import ProjectStage, StageRevision

from .models import DraftEvidence, EvidenceBlob, FileType, RevisionEvidence
from .permissions import can_see_draft_files, can_see_revision_files

INLINE_TYPES = {FileType.IMAGE, FileType.SVG, FileType.PDF, FileType.NOTEBOOK}


@dataclass
class FileRow:
    pk: int
    question_key: str
    name: str
    blob: EvidenceBlob
    view_url: str
    download_url: str

    @property
    def sha256(self) -> str:
        return self.blob.sha256

    @property
    def file_type(self) -> str:
        return self.blob.file_type

    @property
    def size_label(self) -> str:
        size = self.blob.size
        if size < 1024:
            return f"{size} B"
        if size < 1024 * 1024:
            return f"{size / 1024:.0f} KB"
        return f"{size / (1024 * 1024):.1f} MB"

    @property
    def preview_header(self) -> list[str]:
        return self.blob.preview[0] if self.blob.preview else []

    @property
    def preview_rows(self) -> list[list[str]]:
        return self.blob.preview[1:]


def _rows(files: Iterable[Any], url_name: str) -> dict[str, list[FileRow]]:
    grouped: dict[str, list[FileRow]] = defaultdict(list)
    for f in files:
        grouped[f.question_key].append(
            FileRow(
                pk=f.pk,
                question_key=f.question_key,
                name=f.name,
                blob=f.blob,
                view_url=reverse(url_name, args=[f.pk, "view"]),
                download_url=reverse(url_name, args=[f.pk, "download"]),
            )
        )
    return dict(grouped)


def draft_files_by_question(stage: ProjectStage) -> dict[str, list[FileRow]]:
    files = DraftEvidence.objects.filter(stage=stage).select_related("blob")
    return _rows(files, "evidence:draft_file")


def revision_files_by_question(revision: StageRevision | None) -> dict[str, list[FileRow]]:
    if revision is None or not revision.evidence:
        return {}
    files = RevisionEvidence.objects.filter(revision=revision).select_related("blob")
    return _rows(files, "evidence:revision_file")


def get_draft_file_for_user(user: Any, pk: int) -> DraftEvidence:
    attachment = (
        DraftEvidence.objects.select_related("blob", "stage__project__course", "stage__definition")
        .filter(pk=pk)
        .first()
    )
    if attachment is None or not can_see_draft_files(user, attachment.stage):
        raise Http404("No such file.")
    return attachment


def get_revision_file_for_user(user: Any, pk: int) -> RevisionEvidence:
    frozen = (
        RevisionEvidence.objects.select_related(
            "blob", "revision__stage__project__course", "revision__stage__definition"
        )
        .filter(pk=pk)
        .first()
    )
    if frozen is None or not can_see_revision_files(user, frozen.revision.stage):
        raise Http404("No such file.")
    return frozen


@dataclass
class FileChange:
    question_key: str
    name: str
    change: str  # "added", "removed" or "replaced"
    old_sha256: str = ""
    new_sha256: str = ""


def evidence_changes(
    old: list[dict[str, Any]] | None, new: list[dict[str, Any]] | None
) -> list[FileChange]:
    """Which files a revision added, removed or replaced (same question and name, new bytes)
    compared with an earlier one."""
    before = {(f["question"], f["name"]): f["sha256"] for f in old or []}
    after = {(f["question"], f["name"]): f["sha256"] for f in new or []}
    changes = []
    for key in sorted(set(before) | set(after)):
        if key not in before:
            changes.append(FileChange(*key, "added", new_sha256=after[key]))
        elif key not in after:
            changes.append(FileChange(*key, "removed", old_sha256=before[key]))
        elif before[key] != after[key]:
            changes.append(FileChange(*key, "replaced", before[key], after[key]))
    return changes
