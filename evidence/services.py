"""Every write of the evidence layer: attach a file to a draft, remove it, freeze the draft's
files into a revision.

An upload is checked (evidence.checks) and its bytes written to storage under their hash
*before* the transaction opens, so a slow or failing object store never holds a row lock and a
refused file never reaches storage. The transaction then locks the project and the stage (the
same order as lifecycle's services), counts the question's files under that lock (twenty
teammates uploading at once cannot exceed the template's limit), writes the rows and the audit
event.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from lifecycle import permissions
from lifecycle.audit import audit_record
from lifecycle.errors import DomainError, IllegalTransition, NotAllowed
from lifecycle.models import ProjectStage, StageRevision

from .checks import EvidenceRefused, Inspected, inspect_upload
from .models import DraftEvidence, EvidenceBlob, RevisionEvidence
from .slots import slot_for
from .storage import StorageUnavailable, blob_name, write_object


class EvidenceError(DomainError):
    """An upload that is refused: the message says why."""

    status_code = 400


class EvidenceStorageDown(DomainError):
    status_code = 503


def _lock(stage: ProjectStage) -> tuple[Any, ProjectStage]:
    from lifecycle.services import _lock_project_and_stage

    return _lock_project_and_stage(stage)


def _require_team_draft(actor: Any, project: Any, stage: ProjectStage) -> None:
    if not permissions.is_project_member(actor, project):
        raise NotAllowed("Only members of this project's team can attach evidence.")
    if not project.is_active:
        raise IllegalTransition("This project was concluded; nothing more can change.")
    if not stage.is_editable:
        raise IllegalTransition(
            f"{stage.definition.title} is {stage.get_status_display().lower()}: its evidence "
            "cannot change now. Files frozen into a revision stay exactly as submitted."
        )


def _store_blob(data: bytes, inspected: Inspected) -> EvidenceBlob:
    """Write the bytes (and a notebook's rendering) under their hash, then the row. An existing
    row means the bytes are already stored: nothing is written twice."""
    sha256 = hashlib.sha256(data).hexdigest()
    found = EvidenceBlob.objects.filter(sha256=sha256).first()
    if found is not None:
        return found
    name = blob_name(sha256)
    rendered = blob_name(sha256, ".html") if inspected.rendered_html is not None else ""
    try:
        write_object(name, data)
        if inspected.rendered_html is not None:
            write_object(rendered, inspected.rendered_html)
    except StorageUnavailable:
        raise EvidenceStorageDown(
            "The file store is not answering, so the file was not attached. Your draft is "
            "saved; try the upload again in a few minutes."
        ) from None
    try:
        with transaction.atomic():
            return EvidenceBlob.objects.create(
                sha256=sha256,
                size=len(data),
                file_type=inspected.file_type,
                content_type=inspected.content_type,
                storage_name=name,
                rendered_name=rendered,
                width=inspected.width,
                height=inspected.height,
                preview=inspected.preview,
            )
    except IntegrityError:
        # Someone stored the same bytes a moment ago: theirs is the same blob.
        return EvidenceBlob.objects.get(sha256=sha256)


def evidence_attach(
    *, stage: ProjectStage, actor: Any, question_key: str, name: str, data: bytes
) -> DraftEvidence:
    """Attach a file to a question of the stage's draft. A file of the same name on the same
    question is replaced (a diff then says "replaced")."""
    project = stage.project
    _require_team_draft(actor, project, stage)
    slot = slot_for(project.template, stage.definition.key, question_key)
    if slot is None:
        raise EvidenceError("This question does not take files.")
    try:
        inspected = inspect_upload(name, data, slot.types)
    except EvidenceRefused as refused:
        raise EvidenceError(refused.message) from None
    # Refuse a full question before writing anything; the count under the lock below decides.
    others = DraftEvidence.objects.filter(stage=stage, question_key=question_key).exclude(
        name=inspected.name
    )
    if others.count() >= slot.max_files:
        raise EvidenceError(_full_message(slot.max_files))
    blob = _store_blob(data, inspected)
    return _attach_row(
        stage=stage,
        actor=actor,
        question_key=question_key,
        blob=blob,
        name=inspected.name,
        max_files=slot.max_files,
    )


def _full_message(max_files: int) -> str:
    return (
        f"This question takes at most {max_files} file{'s' if max_files != 1 else ''}; "
        "remove one before adding another."
    )


@transaction.atomic
def _attach_row(
    *,
    stage: ProjectStage,
    actor: Any,
    question_key: str,
    blob: EvidenceBlob,
    name: str,
    max_files: int,
) -> DraftEvidence:
    project, stage = _lock(stage)
    _require_team_draft(actor, project, stage)
    existing = list(DraftEvidence.objects.filter(stage=stage, question_key=question_key))
    same_name = next((f for f in existing if f.name == name), None)
    old: dict[str, Any] | None = None
    if same_name is not None:
        if same_name.blob_id == blob.pk:
            return same_name
        old = {"name": same_name.name, "sha256": same_name.blob.sha256}
        same_name.delete()
    elif len(existing) >= max_files:
        raise EvidenceError(_full_message(max_files))
    attached = DraftEvidence.objects.create(
        stage=stage,
        question_key=question_key,
        name=name,
        blob=blob,
        added_by=actor,
        added_at=timezone.now(),
    )
    audit_record(
        actor=actor,
        verb="evidence.replace" if old else "evidence.attach",
        obj=attached,
        project=project,
        old=old,
        new={
            "stage": stage.definition.key,
            "cycle": stage.cycle,
            "question": question_key,
            "name": name,
            "sha256": blob.sha256,
            "size": blob.size,
        },
    )
    return attached


@transaction.atomic
def evidence_remove(*, attachment: DraftEvidence, actor: Any) -> None:
    """Detach a file from the draft. Its bytes stay: a revision may hold them."""
    project, stage = _lock(attachment.stage)
    _require_team_draft(actor, project, stage)
    attachment = DraftEvidence.objects.select_related("blob").get(pk=attachment.pk)
    old = {
        "stage": stage.definition.key,
        "cycle": stage.cycle,
        "question": attachment.question_key,
        "name": attachment.name,
        "sha256": attachment.blob.sha256,
    }
    audit_record(actor=actor, verb="evidence.remove", obj=attachment, project=project, old=old)
    attachment.delete()


# --- hooks lifecycle calls inside stage_submit ------------------------------------------------


def draft_files_for_revision(stage: ProjectStage) -> list[dict[str, Any]]:
    """The draft's files, as the revision freezes them (called under the stage's lock)."""
    return [
        f.snapshot()
        for f in DraftEvidence.objects.filter(stage=stage)
        .select_related("blob")
        .order_by("question_key", "name")
    ]


def freeze_revision_files(*, revision: StageRevision, **_: Any) -> None:
    """Subscriber of STAGE_SUBMITTED: one row per frozen file, in the submit's transaction."""
    if not revision.evidence:
        return
    blobs = {
        b.sha256: b
        for b in EvidenceBlob.objects.filter(sha256__in=[f["sha256"] for f in revision.evidence])
    }
    RevisionEvidence.objects.bulk_create(
        RevisionEvidence(
            revision=revision,
            question_key=f["question"],
            name=f["name"],
            blob=blobs[f["sha256"]],
        )
        for f in revision.evidence
    )


def evidence_link_risk(
    *, attachment: DraftEvidence, risk: Any, actor: Any, linked: bool = True
) -> Any:
    """Name (or stop naming) a file of the project as evidence that addresses a risk."""
    from lifecycle.risks import risk_set_evidence

    if risk.project_id != attachment.stage.project_id:
        raise NotAllowed("That risk belongs to another project.")
    entry = {"name": attachment.name, "sha256": attachment.blob.sha256}
    files = [f for f in risk.evidence if f != entry]
    if linked:
        files.append(entry)
    return risk_set_evidence(risk=risk, actor=actor, files=files)
