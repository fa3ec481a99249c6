"""Audit-trail exports an auditor can verify with nothing but the file.

Formats
-------
Both formats carry one record per event with the columns in ``COLUMNS``. Every column except
``actor_name`` is part of the hashed payload (``audit.payload_of``), under these names:

    export column   payload key      export column   payload key
    seq             seq              course_id       course_id
    at              at               project_id      project_id
    actor_id        actor_id         old             old
    actor_label     actor            new             new
    verb            verb             flagged         flagged
    object_type     object_type      prev_hash       prev
    object_id       object_id        hash            (the stored hash itself)

``actor_name`` is the actor's display name *today*, looked up for the reader's convenience. It
is not hashed (names change; the e-mail recorded at the time, ``actor_label``, is), so editing
it does not break verification.

* JSON Lines: one JSON object per event; ``old``/``new`` are JSON values. The last line is
  ``{"chain_head": {...}}`` (see ``head_record``).
* CSV: a header row, then one row per event. ``old``/``new`` hold canonical JSON text
  (``null`` when empty), ``flagged`` is ``true``/``false``, an empty id cell is ``None``. The
  chain head travels beside the file as ``<file>.head.json``.

CSV-injection escaping
----------------------
A spreadsheet runs a cell that starts with ``=``, ``+``, ``-``, ``@``, tab or carriage return
as a formula. Such a cell is written with a single quote ``'`` in front. A cell that itself
starts with ``'`` is also given one more ``'``: without that, the value ``'=1`` and the escaped
value ``=1`` would be the same text and the escaping could not be undone. So the rule, applied
to every cell on writing, is "prefix ``'`` if the cell starts with one of ``= + - @ \\t \\r '``",
and its exact inverse, applied by the verifier before it re-computes a hash, is "drop one
leading ``'``". Integer, boolean and JSON-object cells never start with those characters, so in
practice only text cells (labels, ids, verbs, names) change.

The chain head
--------------
``head_record`` is the head of the WHOLE chain when the export was taken (``count`` events,
the last one ``last_seq`` with ``last_hash``), plus what the file holds (``rows``, and the
``filters`` that selected them). The export only contains events up to ``last_seq``, so events
appended while it streams cannot make file and head disagree. An auditor who has the chain head
from elsewhere (a printed dossier, an earlier export) compares ``last_hash``.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from .audit import GENESIS_HASH, canonical_json, event_payload, format_timestamp, hash_payload
from .models import AuditEvent

CHUNK_SIZE = 2000
FORMATS = ("csv", "jsonl")
COLUMNS = (
    "seq",
    "at",
    "actor_id",
    "actor_name",
    "actor_label",
    "verb",
    "object_type",
    "object_id",
    "course_id",
    "project_id",
    "old",
    "new",
    "flagged",
    "prev_hash",
    "hash",
)
HEAD_SUFFIX = ".head.json"
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")

# What the export reads per event: one query joining the actor, fetched as tuples.
_DB_FIELDS = (
    "seq",
    "created_at",
    "actor_id",
    "actor__display_name",
    "actor__email",
    "actor_label",
    "verb",
    "object_type",
    "object_id",
    "course_id",
    "project_id",
    "old",
    "new",
    "flagged",
    "prev_hash",
    "hash",
)


@dataclass(frozen=True)
class ExportFilters:
    """Which events an export holds. Dates are UTC calendar days, both ends inclusive."""

    course_id: int | None = None
    project_id: int | None = None
    since: dt.date | None = None
    until: dt.date | None = None
    verbs: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        described = {
            "course": self.course_id,
            "project": self.project_id,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "verbs": sorted(self.verbs) or None,
        }
        return {key: value for key, value in described.items() if value is not None}

    def apply(self, events: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
        if self.course_id is not None:
            events = events.filter(course_id=self.course_id)
        if self.project_id is not None:
            events = events.filter(project_id=self.project_id)
        if self.since is not None:
            events = events.filter(created_at__gte=_utc_midnight(self.since))
        if self.until is not None:
            events = events.filter(created_at__lt=_utc_midnight(self.until + dt.timedelta(1)))
        if self.verbs:
            events = events.filter(verb__in=self.verbs)
        return events


def _utc_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=UTC)


@dataclass(frozen=True)
class ChainHead:
    count: int
    last_seq: int
    last_hash: str


def chain_head_at(upto: int | None = None) -> ChainHead:
    """The chain's head now, or as it was when event ``upto`` was the last one."""
    events = AuditEvent.objects.all()
    if upto is not None:
        events = events.filter(seq__lte=upto)
    last = events.order_by("-seq").values_list("seq", "hash").first()
    if last is None:
        return ChainHead(0, 0, GENESIS_HASH)
    return ChainHead(events.count(), last[0], last[1])


def head_record(head: ChainHead, *, rows: int, filters: ExportFilters) -> dict[str, Any]:
    return {
        "chain_head": {
            "count": head.count,
            "last_seq": head.last_seq,
            "last_hash": head.last_hash,
            "exported_at": format_timestamp(timezone.now()),
            "rows": rows,
            "filters": filters.as_dict(),
        }
    }


def selected_events(filters: ExportFilters, head: ChainHead) -> QuerySet[AuditEvent]:
    return filters.apply(AuditEvent.objects.filter(seq__lte=head.last_seq)).order_by("seq")


def count_rows(filters: ExportFilters, head: ChainHead) -> int:
    return selected_events(filters, head).count()


def export_records(
    filters: ExportFilters, head: ChainHead, *, chunk_size: int = CHUNK_SIZE
) -> Iterator[dict[str, Any]]:
    """One dict per event (keys ``COLUMNS``), streamed in seq order with constant memory."""
    rows = selected_events(filters, head).values_list(*_DB_FIELDS)
    for (
        seq,
        created_at,
        actor_id,
        display_name,
        email,
        actor_label,
        verb,
        object_type,
        object_id,
        course_id,
        project_id,
        old,
        new,
        flagged,
        prev_hash,
        stored_hash,
    ) in rows.iterator(chunk_size=chunk_size):
        # Mirrors accounts.User.name without loading a User per event.
        actor_name = (display_name or email.split("@")[0]) if email else ""
        yield {
            "seq": seq,
            "at": format_timestamp(created_at),
            "actor_id": actor_id,
            "actor_name": actor_name,
            "actor_label": actor_label,
            "verb": verb,
            "object_type": object_type,
            "object_id": object_id,
            "course_id": course_id,
            "project_id": project_id,
            "old": old,
            "new": new,
            "flagged": flagged,
            "prev_hash": prev_hash,
            "hash": stored_hash,
        }


# --- Writing --------------------------------------------------------------------------------


def escape_cell(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def unescape_cell(text: str) -> str:
    return text[1:] if text.startswith("'") else text


def _csv_text(column: str, value: Any) -> str:
    if column in ("old", "new"):
        return canonical_json(value)
    if column == "flagged":
        return "true" if value else "false"
    return "" if value is None else str(value)


class _Echo:
    """A file-like object whose write() hands the line back, so csv.writer can feed a generator."""

    def write(self, text: str) -> str:
        return text


def csv_lines(records: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(COLUMNS)
    for record in records:
        yield writer.writerow([escape_cell(_csv_text(c, record[c])) for c in COLUMNS])


def jsonl_line(record: Mapping[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def jsonl_lines(
    records: Iterable[Mapping[str, Any]], head: ChainHead, filters: ExportFilters
) -> Iterator[str]:
    rows = 0
    for record in records:
        rows += 1
        yield jsonl_line(record)
    yield jsonl_line(head_record(head, rows=rows, filters=filters))


def stream_export(
    fmt: str, filters: ExportFilters, head: ChainHead, *, chunk_size: int = CHUNK_SIZE
) -> Iterator[str]:
    """The lines of an export. For CSV the head is a separate file: ``head_record``."""
    records = export_records(filters, head, chunk_size=chunk_size)
    if fmt == "csv":
        return csv_lines(records)
    if fmt == "jsonl":
        return jsonl_lines(records, head, filters)
    raise ValueError(f"Unknown export format {fmt!r}; use one of {', '.join(FORMATS)}.")


def write_export(path: str, fmt: str, filters: ExportFilters) -> dict[str, Any]:
    """Write the export to ``path`` (and ``path + HEAD_SUFFIX`` for CSV); return the head."""
    head = chain_head_at()
    rows = 0
    with open(path, "w", encoding="utf-8", newline="") as out:
        for line in stream_export(fmt, filters, head):
            out.write(line)
            rows += 1
    if fmt == "csv":
        record = head_record(head, rows=rows - 1, filters=filters)  # minus the header
        with open(path + HEAD_SUFFIX, "w", encoding="utf-8") as out:
            out.write(json.dumps(record, indent=2) + "\n")
        return record
    rows -= 1  # the head line
    return head_record(head, rows=rows, filters=filters)


# --- Verifying ------------------------------------------------------------------------------


class MalformedRow(ValueError):
    pass


@dataclass(frozen=True)
class FileReport:
    rows: int
    gaps: int
    head: dict[str, Any] | None
    broken_line: int | None = None
    broken_seq: int | None = None
    reason: str = ""

    @property
    def intact(self) -> bool:
        return self.broken_line is None

    def describe_break(self) -> str:
        if not self.broken_line:
            return self.reason
        event = f" (event #{self.broken_seq})" if self.broken_seq is not None else ""
        return f"line {self.broken_line}{event}: {self.reason}"


def payload_from_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """The hashed payload, rebuilt from an exported record (``actor_name`` left out)."""
    return event_payload(
        seq=record["seq"],
        created_at=record["at"],
        actor_id=record["actor_id"],
        actor_label=record["actor_label"],
        verb=record["verb"],
        object_type=record["object_type"],
        object_id=record["object_id"],
        course_id=record["course_id"],
        project_id=record["project_id"],
        old=record["old"],
        new=record["new"],
        flagged=record["flagged"],
        prev_hash=record["prev_hash"],
    )


def _optional_int(text: str) -> int | None:
    return None if text == "" else int(text)


def record_from_csv(cells: Sequence[str]) -> dict[str, Any]:
    if len(cells) != len(COLUMNS):
        raise MalformedRow(f"expected {len(COLUMNS)} cells, found {len(cells)}")
    text = {column: unescape_cell(cell) for column, cell in zip(COLUMNS, cells, strict=True)}
    if text["flagged"] not in ("true", "false"):
        raise MalformedRow(f"flagged must be true or false, not {text['flagged']!r}")
    try:
        return {
            **text,
            "seq": int(text["seq"]),
            "actor_id": _optional_int(text["actor_id"]),
            "course_id": _optional_int(text["course_id"]),
            "project_id": _optional_int(text["project_id"]),
            "old": json.loads(text["old"]),
            "new": json.loads(text["new"]),
            "flagged": text["flagged"] == "true",
        }
    except ValueError as error:
        raise MalformedRow(str(error)) from error


def _csv_records(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None or tuple(header) != COLUMNS:
        raise MalformedRow("line 1: not an audit export (unexpected header row)")
    line = reader.line_num + 1
    for cells in reader:
        try:
            yield line, record_from_csv(cells)
        except MalformedRow as error:
            raise MalformedRow(f"line {line}: {error}") from error
        line = reader.line_num + 1


def _jsonl_records(
    lines: Iterable[str], head_holder: dict[str, Any]
) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, text in enumerate(lines, start=1):
        if "chain_head" in head_holder:
            raise MalformedRow(f"line {number}: text after the chain head")
        try:
            record = json.loads(text)
        except ValueError as error:
            raise MalformedRow(f"line {number}: not JSON ({error})") from error
        if not isinstance(record, dict):
            raise MalformedRow(f"line {number}: not a JSON object")
        if set(record) == {"chain_head"}:
            head_holder["chain_head"] = record["chain_head"]
            continue
        if set(record) != set(COLUMNS):
            raise MalformedRow(f"line {number}: the fields are not those of an audit export")
        if not isinstance(record["seq"], int) or not isinstance(record["hash"], str):
            raise MalformedRow(f"line {number}: seq must be a number and hash a string")
        yield number, record


def verify_records(
    numbered: Iterable[tuple[int, Mapping[str, Any]]], *, full: bool, head: Mapping[str, Any]
) -> FileReport:
    """Check each record's own hash and, where seqs are consecutive, its link to the one before.

    In a full export a missing seq is a break; in a filtered one it is a gap (counted)."""
    rows = gaps = 0
    previous: Mapping[str, Any] | None = None
    line = 0

    def broken(at: int, record: Mapping[str, Any] | None, reason: str) -> FileReport:
        seq = record["seq"] if record is not None else None
        return FileReport(rows, gaps, dict(head), at, seq, reason)

    for line, record in numbered:
        seq = record["seq"]
        if hash_payload(payload_from_record(record)) != record["hash"]:
            return broken(line, record, "content does not match its hash")
        if previous is None:
            if full and (seq != 1 or record["prev_hash"] != GENESIS_HASH):
                return broken(line, record, "the first event of a full export must link to genesis")
        elif seq <= previous["seq"]:
            return broken(line, record, f"out of order: follows event #{previous['seq']}")
        elif seq == previous["seq"] + 1 or full:
            if record["prev_hash"] != previous["hash"]:
                missing = ""
                if seq != previous["seq"] + 1:
                    missing = f" (events #{previous['seq'] + 1}-#{seq - 1} are missing)"
                return broken(line, record, f"does not link to the event before it{missing}")
            if seq != previous["seq"] + 1:
                return broken(line, record, f"expected event #{previous['seq'] + 1} here")
        else:
            gaps += 1
        if seq > head.get("last_seq", seq):
            return broken(line, record, f"is after the chain head #{head['last_seq']}")
        rows += 1
        previous = record

    if rows != head.get("rows"):
        return broken(line + 1, None, f"the head says {head.get('rows')} rows, the file has {rows}")
    if previous is not None and previous["seq"] == head.get("last_seq"):
        if previous["hash"] != head.get("last_hash"):
            return broken(line, previous, "its hash is not the chain head's last_hash")
    elif full and head.get("last_seq", 0) != (previous["seq"] if previous else 0):
        return broken(line + 1, None, f"the file ends before chain head #{head.get('last_seq')}")
    return FileReport(rows, gaps, dict(head))


def verify_export_file(path: str) -> FileReport:
    """Verify an export from the file alone (``.csv`` with its ``.head.json``, or ``.jsonl``)."""
    try:
        if path.endswith(".csv"):
            try:
                with open(path + HEAD_SUFFIX, encoding="utf-8") as head_file:
                    head = json.load(head_file)["chain_head"]
            except (OSError, ValueError, KeyError) as error:
                raise MalformedRow(
                    f"cannot read the chain head {path}{HEAD_SUFFIX}: {error}"
                ) from error
            with open(path, encoding="utf-8", newline="") as export:
                return verify_records(_csv_records(export), full=not head.get("filters"), head=head)
        holder: dict[str, Any] = {}
        # The head is the last line, but whether gaps are breaks depends on it: read it first,
        # from the end of the file, without loading the rest.
        head = _last_jsonl_head(path)
        with open(path, encoding="utf-8") as export:
            report = verify_records(
                _jsonl_records(export, holder), full=not head.get("filters"), head=head
            )
        if report.intact and "chain_head" not in holder:
            raise MalformedRow("the file does not end with its chain head")
        return report
    except MalformedRow as error:
        text = str(error)
        line = None
        if text.startswith("line "):
            number, _, text = text[5:].partition(": ")
            line = int(number)
        return FileReport(0, 0, None, line or 0, None, text)


def _last_jsonl_head(path: str) -> dict[str, Any]:
    with open(path, "rb") as export:
        export.seek(0, 2)
        export.seek(max(0, export.tell() - 65536))
        tail = export.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
    try:
        head = json.loads(tail.decode("utf-8"))["chain_head"]
    except (ValueError, KeyError, TypeError) as error:
        raise MalformedRow("the file does not end with its chain head") from error
    if not isinstance(head, dict):
        raise MalformedRow("the file does not end with its chain head")
    return head
