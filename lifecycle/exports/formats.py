"""The export formats: which events, which columns, and how the Python path writes them."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from .. import signing
from ..audit import GENESIS_HASH, format_timestamp
from ..models import AuditEvent

CHUNK_SIZE = 2000
HEAD_FORMAT = 2
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
    "hash_version",
    "prev_hash",
    "hash",
)
# A JSON line's keys in the order it writes them: the values PostgreSQL prints as they are,
# then the text values, which its fast path escapes with one json_object() call (pg_copy).
JSONL_TEXT_KEYS = (
    "actor_name",
    "actor_label",
    "verb",
    "object_type",
    "object_id",
    "prev_hash",
    "hash",
)
JSONL_KEYS = (
    "seq",
    "at",
    "actor_id",
    "course_id",
    "project_id",
    "old",
    "new",
    "flagged",
    "hash_version",
    *JSONL_TEXT_KEYS,
)
HEAD_SUFFIX = ".head.json"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")

# What the Python path reads per event, fetched as tuples (no ORM object per row).
_DB_FIELDS = tuple("created_at" if column == "at" else column for column in COLUMNS)


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
            events = events.filter(created_at__gte=utc_midnight(self.since))
        if self.until is not None:
            events = events.filter(created_at__lt=utc_midnight(self.until + dt.timedelta(1)))
        if self.verbs:
            events = events.filter(verb__in=self.verbs)
        return events


def utc_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=UTC)


def filter_mismatch(filters: Mapping[str, Any], record: Mapping[str, Any]) -> str:
    """Empty if the exported record is one the described filters (``as_dict``) select;
    otherwise which filter it fails. The day is the UTC day of its ``at``."""
    if "course" in filters and record["course_id"] != filters["course"]:
        return f"course {record['course_id']}, not course {filters['course']}"
    if "project" in filters and record["project_id"] != filters["project"]:
        return f"project {record['project_id']}, not project {filters['project']}"
    day = str(record["at"])[:10]
    if "since" in filters and day < str(filters["since"]):
        return f"dated {day}, before {filters['since']}"
    if "until" in filters and day > str(filters["until"]):
        return f"dated {day}, after {filters['until']}"
    if "verbs" in filters and record["verb"] not in filters["verbs"]:
        return f"a {record['verb']!r} event, not one of {', '.join(filters['verbs'])}"
    return ""


@dataclass
class Tally:
    """How many rows an export's body held, known once the body has been read to its end."""

    rows: int = 0


@dataclass(frozen=True)
class ChainHead:
    """The chain's head: ``count`` events, the last one ``last_seq`` with ``last_hash``. The
    count (a scan of every event's index entry: a third of a second at 10,000,000 events) is
    None until an export needs it (``chain_count``)."""

    count: int | None
    last_seq: int
    last_hash: str


def chain_head_at(upto: int | None = None, *, counted: bool = True) -> ChainHead:
    """The chain's head now, or as it was when event ``upto`` was the last one: one query.
    ``counted=False`` leaves the count out (None)."""
    table = AuditEvent._meta.db_table
    bound, params = ("WHERE seq <= %s", [upto]) if upto is not None else ("", [])
    count, count_params = "NULL", list[Any]()
    if counted:
        # One statement, one snapshot: nothing lies between the last event and ``upto``, so
        # the count up to ``upto`` is the count up to the head.
        count, count_params = _count_upto_sql(upto)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT seq, hash, {count} FROM {table} {bound} ORDER BY seq DESC LIMIT 1",
            count_params + params,
        )
        row = cursor.fetchone()
    if row is None:
        return ChainHead(0, 0, GENESIS_HASH)
    return ChainHead(row[2], row[0], row[1])


def chain_count(head: ChainHead, *, filters: ExportFilters, rows: int) -> int:
    """The head's count. An unfiltered export of ``rows`` rows held every event up to the
    head: that is the count, with no second look at the table."""
    if head.count is not None:
        return head.count
    if not filters.as_dict():
        return rows
    count, params = _count_upto_sql(head.last_seq)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {count}", params)
        return int(cursor.fetchone()[0])


def _count_upto_sql(upto: int | None) -> tuple[str, list[Any]]:
    """SQL for the number of events up to ``upto`` (all if None), and its parameters.

    Counted as all events less those after ``upto`` (two subqueries of one statement: one
    snapshot), because a count of all can read the smallest index (a deduplicated one, such
    as course_id's: 66 MB at 10,000,000 events) where ``seq <= upto`` walks seq's (214 MB):
    0.42 s against 0.69-0.89 s. The events after ``upto`` are few, found along seq."""
    table = AuditEvent._meta.db_table
    everything = f"(SELECT count(*) FROM {table})"
    if upto is None:
        return everything, []
    return f"({everything} - (SELECT count(*) FROM {table} WHERE seq > %s))", [upto]


def head_record(
    head: ChainHead, *, rows: int, filters: ExportFilters, body_sha256: str
) -> dict[str, Any]:
    """The signed head of an export whose body (the bytes before the head) has that SHA-256."""
    return {
        "chain_head": signing.signed(
            {
                "format": HEAD_FORMAT,
                "count": chain_count(head, filters=filters, rows=rows),
                "last_seq": head.last_seq,
                "last_hash": head.last_hash,
                "exported_at": format_timestamp(timezone.now()),
                "rows": rows,
                "filters": filters.as_dict(),
                "body_sha256": body_sha256,
            }
        )
    }


def selected_events(filters: ExportFilters, head: ChainHead) -> QuerySet[AuditEvent]:
    return filters.apply(AuditEvent.objects.filter(seq__lte=head.last_seq)).order_by("seq")


def count_rows(filters: ExportFilters, head: ChainHead) -> int:
    if not filters.as_dict() and head.count is not None:
        return head.count
    return selected_events(filters, head).count()


def export_records(
    filters: ExportFilters, head: ChainHead, *, chunk_size: int = CHUNK_SIZE
) -> Iterator[dict[str, Any]]:
    """One dict per event (keys ``COLUMNS``), streamed in seq order with constant memory."""
    rows = selected_events(filters, head).values_list(*_DB_FIELDS)
    for row in rows.iterator(chunk_size=chunk_size):
        record = dict(zip(_DB_FIELDS, row, strict=True))
        record["at"] = format_timestamp(record.pop("created_at"))
        yield {column: record[column] for column in COLUMNS}


# --- Writing (the Python path, every database) ----------------------------------------------

# PostgreSQL's escape_json: these escapes, other control characters as \\u00xx, the rest as is.
_PG_JSON_ESCAPES = {i: f"\\u{i:04x}" for i in range(32)} | {
    ord('"'): '\\"',
    ord("\\"): "\\\\",
    ord("\b"): "\\b",
    ord("\f"): "\\f",
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
}


def _pg_json_string(text: str) -> str:
    return '"' + text.translate(_PG_JSON_ESCAPES) + '"'


def _jsonb_key(key: str) -> tuple[int, bytes]:
    encoded = key.encode("utf-8")
    return (len(encoded), encoded)


def jsonb_text(value: Any) -> str:
    """JSON text exactly as PostgreSQL prints a ``jsonb`` value: ``", "`` and ``": "``
    separators, object keys shortest first (then by bytes), non-ASCII kept. (Floats print as
    Python prints them; PostgreSQL's numeric may differ for exponents, which the app never
    stores. Verification is unaffected: hashes are over canonical JSON.)"""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _pg_json_string(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Mapping):
        items = sorted(value.items(), key=lambda item: _jsonb_key(item[0]))
        return "{" + ", ".join(f"{_pg_json_string(k)}: {jsonb_text(v)}" for k, v in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(jsonb_text(v) for v in value) + "]"
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def jsonl_line(record: Mapping[str, Any]) -> str:
    """One event as a JSON object with the keys in ``JSONL_KEYS`` order, ``" : "`` and ``", "``
    between them (as PostgreSQL's json_object() writes them), and a line break."""
    return "{" + ", ".join(f'"{c}" : {jsonb_text(record[c])}' for c in JSONL_KEYS) + "}\n"


def escape_cell(text: str) -> str:
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def unescape_cell(text: str) -> str:
    return text[1:] if text.startswith("'") else text


def _csv_text(column: str, value: Any) -> str:
    if column in ("old", "new"):
        return jsonb_text(value)
    if column == "flagged":
        return "true" if value else "false"
    return "" if value is None else str(value)


class _Echo:
    """A file-like object whose write() hands the line back, so csv.writer can feed a generator."""

    def write(self, text: str) -> str:
        return text


def csv_lines(records: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    # QUOTE_MINIMAL quotes a cell holding a delimiter, a quote or a character of the line
    # terminator: with "\r\n" that is exactly what COPY ... CSV quotes. COPY ends lines with
    # "\n" alone, so each row's terminator is cut back to it.
    writer = csv.writer(_Echo(), lineterminator="\r\n")
    yield writer.writerow(COLUMNS)[:-2] + "\n"
    for record in records:
        row = writer.writerow([escape_cell(_csv_text(c, record[c])) for c in COLUMNS])
        yield row[:-2] + "\n"


def _tallied(records: Iterator[dict[str, Any]], tally: Tally) -> Iterator[dict[str, Any]]:
    for record in records:
        tally.rows += 1
        yield record


def python_body(
    fmt: str,
    filters: ExportFilters,
    head: ChainHead,
    chunk_size: int,
    tally: Tally | None = None,
) -> Iterator[bytes]:
    records = export_records(filters, head, chunk_size=chunk_size)
    if tally is not None:
        records = _tallied(records, tally)
    lines: Iterator[str] = csv_lines(records) if fmt == "csv" else map(jsonl_line, records)
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= chunk_size:
            yield "".join(batch).encode("utf-8")
            batch = []
    if batch:
        yield "".join(batch).encode("utf-8")
