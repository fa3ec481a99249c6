"""Signed checkpoints of the audit chain's head, kept outside the database.

The hash chain proves that no event in the middle was changed or removed, but someone who can
delete the newest events leaves a shorter chain that is still intact. A checkpoint records the
head (count, last seq, last hash, time) signed with the server's key (``lifecycle.signing``);
it is written daily to storage the database cannot touch (``settings.AUDIT_CHECKPOINT_STORAGE``,
a folder under var/ on the embedded default) and e-mailed to course staff (the reviews app's
beat task). ``verify_audit --checkpoint FILE`` then refuses a chain that no longer holds the
event the checkpoint names, with the same hash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages
from django.utils import timezone

from . import signing
from .audit import chain_head, format_timestamp
from .models import AuditEvent

CHECKPOINT_KEY = "audit_checkpoint"


def checkpoint_storage() -> Storage:
    return storages.create_storage(settings.AUDIT_CHECKPOINT_STORAGE)


def checkpoint_record(now: datetime | None = None) -> dict[str, Any]:
    """The chain's head now, signed."""
    last_seq, last_hash = chain_head()
    return {
        CHECKPOINT_KEY: signing.signed(
            {
                "count": AuditEvent.objects.filter(seq__lte=last_seq).count(),
                "last_seq": last_seq,
                "last_hash": last_hash,
                "at": format_timestamp(now or timezone.now()),
            }
        )
    }


def checkpoint_text(record: dict[str, Any]) -> str:
    return json.dumps(record, indent=2) + "\n"


def checkpoint_write(now: datetime | None = None) -> tuple[str, dict[str, Any]]:
    """Write a checkpoint to the checkpoint storage; return its name there and the record."""
    record = checkpoint_record(now)
    stamp = record[CHECKPOINT_KEY]["at"].replace("-", "").replace(":", "").split(".")[0]
    name = checkpoint_storage().save(
        f"audit-checkpoint-{stamp}Z.json", ContentFile(checkpoint_text(record).encode())
    )
    return name, record


class CheckpointError(ValueError):
    pass


def read_checkpoint(text: str, public_key: Any = None) -> dict[str, Any]:
    """The checkpoint's fields, once its signature is proven; CheckpointError otherwise."""
    try:
        record = json.loads(text)[CHECKPOINT_KEY]
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError("not an audit checkpoint") from error
    if not isinstance(record, dict):
        raise CheckpointError("not an audit checkpoint")
    problem = signing.signature_problem(record, public_key)
    if problem:
        raise CheckpointError(f"the checkpoint cannot be trusted: {problem}")
    if not isinstance(record.get("last_seq"), int) or not isinstance(record.get("count"), int):
        raise CheckpointError("the checkpoint is malformed")
    return record


@dataclass(frozen=True)
class CheckpointReport:
    problem: str = ""

    @property
    def holds(self) -> bool:
        return not self.problem


def check_against_database(checkpoint: dict[str, Any]) -> CheckpointReport:
    """Does the database still hold the checkpoint's head? (Run after verify_chain.)"""
    last_seq, last_hash, count = (
        checkpoint["last_seq"],
        checkpoint["last_hash"],
        checkpoint["count"],
    )
    at = checkpoint.get("at")
    if last_seq == 0:
        return CheckpointReport()
    head_seq, _ = chain_head()
    if head_seq < last_seq:
        return CheckpointReport(
            f"the chain ends at event #{head_seq}, but the checkpoint of {at} recorded event "
            f"#{last_seq}: events #{head_seq + 1}-#{last_seq} were removed from the end"
        )
    stored = AuditEvent.objects.filter(seq=last_seq).values_list("hash", flat=True).first()
    if stored != last_hash:
        return CheckpointReport(
            f"event #{last_seq} is not the one the checkpoint of {at} recorded (hash differs)"
        )
    held = AuditEvent.objects.filter(seq__lte=last_seq).count()
    if held != count:
        return CheckpointReport(
            f"the checkpoint of {at} counted {count} events up to #{last_seq}; the database has "
            f"{held}"
        )
    return CheckpointReport()
