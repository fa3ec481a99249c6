"""The hash-chained audit trail.

Each event's hash is SHA-256 over a canonical JSON serialisation of its content and the previous
event's hash, so changing, removing or reordering any event breaks every hash after it. Appends
are serialised (an advisory lock on PostgreSQL, the IMMEDIATE write lock on SQLite) so that
concurrent transactions extend one linear chain; the unique prev_hash makes a fork impossible
even if that serialisation were bypassed.

Hash versions
-------------
An event's ``hash_version`` says which fields its hash covers; an event is always verified with
the version it was written with, so no stored event is ever re-hashed.

* Version 1 (events written before version 2 existed): ``seq``, ``at`` (the UTC timestamp,
  ``format_timestamp``), ``actor_id``, ``actor`` (the actor's e-mail at the time), ``verb``,
  ``object_type``, ``object_id``, ``course_id``, ``project_id``, ``old``, ``new``, ``flagged``
  and ``prev`` (the previous event's hash).
* Version 2 (every new event): all of version 1, plus ``actor_name`` (the actor's display name
  at the time) and ``v`` (the version itself, so an event cannot be passed off as another
  version's). Every field an export shows is now hashed.

The public function to compute a hash from an event's fields (used by the benchmark seeder) is::

    event_hash(*, hash_version, seq, created_at, actor_id, actor_label, actor_name, verb,
               object_type, object_id, course_id, project_id, old, new, flagged,
               prev_hash) -> str   # 64 lowercase hex digits

``created_at`` is the text ``format_timestamp`` makes of the stored time; ``old``/``new`` are
JSON-able values as stored (``jsonable``); ``actor_name`` is ignored for version 1.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models
from django.db.models.signals import post_save
from django.utils import timezone

from .models import AuditEvent, Course, Project

GENESIS_HASH = "0" * 64
HASH_VERSION = 2  # what new events are written with
HASH_VERSIONS = (1, 2)
# Any constant distinct from other advisory locks in the database.
_PG_CHAIN_LOCK_KEY = 0x4C52_4241_5544  # "LRBAUD"


def canonical_json(value: Any) -> str:
    """Stable JSON: sorted keys, no whitespace, UTF-8 characters kept as they are."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, cls=DjangoJSONEncoder
    )


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def jsonable(value: Any) -> Any:
    """What the value will look like after a round trip through a JSON column."""
    if value is None:
        return None
    return json.loads(canonical_json(value))


def format_timestamp(moment: datetime) -> str:
    """UTC ISO-8601 with microseconds, the form hashed and exported."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_payload(
    *,
    seq: int,
    created_at: str,
    actor_id: int | None,
    actor_label: str,
    verb: str,
    object_type: str,
    object_id: str,
    course_id: int | None,
    project_id: int | None,
    old: Any,
    new: Any,
    flagged: bool,
    prev_hash: str,
    actor_name: str = "",
    hash_version: int = 1,
) -> dict[str, Any]:
    """The hashed payload of an event, by the rule of its ``hash_version``."""
    if hash_version not in HASH_VERSIONS:
        raise ValueError(f"unknown audit hash version {hash_version!r}")
    payload = {
        "seq": seq,
        "at": created_at,
        "actor_id": actor_id,
        "actor": actor_label,
        "verb": verb,
        "object_type": object_type,
        "object_id": object_id,
        "course_id": course_id,
        "project_id": project_id,
        "old": old,
        "new": new,
        "flagged": flagged,
        "prev": prev_hash,
    }
    if hash_version >= 2:
        payload["actor_name"] = actor_name
        payload["v"] = hash_version
    return payload


def payload_of(event: AuditEvent) -> dict[str, Any]:
    return event_payload(
        seq=event.seq,
        created_at=format_timestamp(event.created_at),
        actor_id=event.actor_id,
        actor_label=event.actor_label,
        verb=event.verb,
        object_type=event.object_type,
        object_id=event.object_id,
        course_id=event.course_id,
        project_id=event.project_id,
        old=event.old,
        new=event.new,
        flagged=event.flagged,
        prev_hash=event.prev_hash,
        actor_name=event.actor_name,
        hash_version=event.hash_version,
    )


def event_hash(
    *,
    hash_version: int,
    seq: int,
    created_at: str,
    actor_id: int | None,
    actor_label: str,
    actor_name: str,
    verb: str,
    object_type: str,
    object_id: str,
    course_id: int | None,
    project_id: int | None,
    old: Any,
    new: Any,
    flagged: bool,
    prev_hash: str,
) -> str:
    """An event's hash from its fields (see the module's docstring for their forms)."""
    return hash_payload(
        event_payload(
            seq=seq,
            created_at=created_at,
            actor_id=actor_id,
            actor_label=actor_label,
            verb=verb,
            object_type=object_type,
            object_id=object_id,
            course_id=course_id,
            project_id=project_id,
            old=old,
            new=new,
            flagged=flagged,
            prev_hash=prev_hash,
            actor_name=actor_name,
            hash_version=hash_version,
        )
    )


def hash_payload(payload: Mapping[str, Any]) -> str:
    return sha256_hex(canonical_json(payload))


def _lock_chain() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_PG_CHAIN_LOCK_KEY])
    # SQLite: every transaction here starts with BEGIN IMMEDIATE, which already holds the one
    # write lock of the database until commit.


def _locked_head() -> tuple[int, str]:
    """Take the chain's lock, then read its head: (last seq, last hash), (0, genesis) if empty.

    On PostgreSQL both statements go in one round trip; each statement of a READ COMMITTED
    transaction takes its own snapshot, so the SELECT, which runs after the lock is granted,
    sees every event committed by whoever held the lock before."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s); "
                f"SELECT seq, hash FROM {AuditEvent._meta.db_table} ORDER BY seq DESC LIMIT 1",
                [_PG_CHAIN_LOCK_KEY],
            )
            row = cursor.fetchone()
        return (row[0], row[1]) if row else (0, GENESIS_HASH)
    _lock_chain()
    return chain_head()


def audit_record(
    *,
    actor: Any,
    verb: str,
    obj: models.Model,
    course: Course | None = None,
    project: Project | None = None,
    old: Mapping[str, Any] | None = None,
    new: Mapping[str, Any] | None = None,
    flagged: bool = False,
) -> AuditEvent:
    """Append one event to the chain. Must run inside the caller's transaction, so the event
    commits or rolls back with the change it records.

    Inside ``audit_batch()`` the event is only queued: it gets its place in the chain (seq,
    time, hashes) and its row when the batch ends, and until then has no ``pk`` or ``seq``."""
    if not connection.in_atomic_block:
        raise RuntimeError("audit_record() must be called inside transaction.atomic().")
    # The project's course by its id: no query for a project read without its course.
    course_id = course.pk if course is not None else getattr(project, "course_id", None)
    actor_label = getattr(actor, "email", "") if actor is not None else "system"
    actor_name = str(getattr(actor, "name", "") or "") if actor is not None else ""
    event = AuditEvent(
        actor_id=getattr(actor, "pk", None),
        actor_label=actor_label,
        actor_name=actor_name[:150],
        verb=verb,
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk),
        course_id=course_id,
        project_id=project.pk if project else None,
        old=jsonable(old),
        new=jsonable(new),
        flagged=flagged,
        hash_version=HASH_VERSION,
    )
    pending = getattr(connection, _PENDING_ATTR, None)
    if pending is not None:
        pending.append(event)
    else:
        _append([event])
    return event


# Set on the (per-thread) database connection while an audit_batch() is open.
_PENDING_ATTR = "_lrb_audit_pending"


@contextmanager
def audit_batch() -> Iterator[None]:
    """Write the audit events recorded in the block together, when it ends.

    The chain's lock is global and held until the transaction commits, so every audited write
    waits for whoever holds it. Recorded as they happen, a service's first event takes the
    lock and keeps it through all the work that follows (gate evaluation, notification rows,
    the next event); batched, the lock is taken once, as the transaction's last statements, and
    held only for one read of the head, one INSERT and the COMMIT.

    Use it inside the service's transaction (it checks) and around code that lets its errors
    propagate: an exception leaving the block drops the queued events (the transaction rolls
    back), but one caught inside it does not take back what was recorded before it. Nested
    batches belong to the outermost one."""
    if not connection.in_atomic_block:
        raise RuntimeError("audit_batch() must be used inside transaction.atomic().")
    if getattr(connection, _PENDING_ATTR, None) is not None:
        yield
        return
    pending: list[AuditEvent] = []
    setattr(connection, _PENDING_ATTR, pending)
    try:
        yield
    finally:
        setattr(connection, _PENDING_ATTR, None)
    if pending:  # not reached when the block raised
        _append(pending)


def _append(events: list[AuditEvent]) -> None:
    """Give the events their places at the head of the chain, in order, and insert them."""
    last_seq, prev_hash = _locked_head()
    for event in events:
        last_seq += 1
        event.seq = last_seq
        # Taken under the lock, so times never go backwards along the chain. Microsecond
        # precision survives both databases; the hash is computed on the stored value.
        event.created_at = timezone.now().astimezone(UTC)
        event.prev_hash = prev_hash
        event.hash = hash_payload(payload_of(event))
        prev_hash = event.hash
    if len(events) == 1:
        events[0].save(force_insert=True)
        return
    AuditEvent.objects.bulk_create(events)
    # bulk_create sends no signals; whoever listens to new events (lifecycle.freshness replaces
    # the tokens of their project and course) hears of each as if it had been saved alone.
    for event in events:
        post_save.send(
            sender=AuditEvent,
            instance=event,
            created=True,
            update_fields=None,
            raw=False,
            using=connection.alias,
        )


@dataclass(frozen=True)
class ChainReport:
    count: int
    head: str
    broken_at: int | None = None  # seq of the first event that does not verify
    reason: str = ""

    @property
    def intact(self) -> bool:
        return self.broken_at is None


def verify_payloads(
    rows: Iterable[tuple[Mapping[str, Any], str]], *, start_prev: str | None = GENESIS_HASH
) -> ChainReport:
    """Check (payload, stored hash) pairs in order: each links to the one before, carries the
    next sequence number (a chain from genesis starts at #1), and matches its hash.
    ``start_prev=None`` accepts whatever the first event links to (a chain checked from the
    middle)."""
    count = 0
    expected_prev = start_prev
    head = start_prev or ""
    expected_seq: int | None = 1 if start_prev == GENESIS_HASH else None
    for payload, stored_hash in rows:
        count += 1
        seq = payload.get("seq")
        if expected_prev is not None and payload.get("prev") != expected_prev:
            return ChainReport(count - 1, head, seq, "does not link to the event before it")
        if expected_seq is not None and seq != expected_seq:
            return ChainReport(count - 1, head, seq, f"expected event #{expected_seq} here")
        if hash_payload(payload) != stored_hash:
            return ChainReport(count - 1, head, seq, "its content does not match its hash")
        expected_prev = stored_hash
        expected_seq = int(seq) + 1 if isinstance(seq, int) else None
        head = stored_hash
    return ChainReport(count, head)


def _stored_payloads(
    events: models.QuerySet[AuditEvent],
) -> Iterator[tuple[Mapping[str, Any], str]]:
    for event in events.order_by("seq").iterator(chunk_size=2000):
        try:
            payload = payload_of(event)
        except ValueError:
            # An unknown hash version can only come from an edit: make it fail its hash.
            payload = {"seq": event.seq, "prev": event.prev_hash, "v": event.hash_version}
        yield payload, event.hash


def verify_chain(queryset: models.QuerySet[AuditEvent] | None = None) -> ChainReport:
    """Verify the whole chain in the database, streaming in seq order."""
    events = queryset if queryset is not None else AuditEvent.objects.all()
    return verify_payloads(_stored_payloads(events))


def chain_head() -> tuple[int, str]:
    last = AuditEvent.objects.order_by("-seq").only("seq", "hash").first()
    return (last.seq, last.hash) if last else (0, GENESIS_HASH)


def register_sqlite_functions(sender: Any, connection: Any, **kwargs: Any) -> None:
    """The SQLite DELETE trigger asks lrb_audit_purge_allowed(); it answers 1 only in the test
    settings, where the test runner must empty tables between transactional tests. Outside
    Django (the sqlite3 shell) the function does not exist, so a DELETE fails there too."""
    if connection.vendor != "sqlite":
        return
    connection.connection.create_function(
        "lrb_audit_purge_allowed",
        0,
        lambda: 1 if getattr(settings, "AUDIT_ALLOW_TEST_FLUSH", False) else 0,
        deterministic=False,
    )
