"""The PostgreSQL fast path: the export's body straight from ``COPY (SELECT …) TO STDOUT``, in
chunks, with the same bytes the Python path writes (``formats``)."""

from __future__ import annotations

import datetime as dt
import queue
import threading
from collections.abc import Iterator
from typing import Any

from django.db import connection

from ..models import AuditEvent
from .formats import COLUMNS, ChainHead, ExportFilters, utc_midnight

COPY_CHUNK_ROWS = 1000  # about 0.4-0.6 MB of export


def _sql_cell(expression: str) -> str:
    """escape_cell in SQL, for a text expression (NULL stays NULL: an empty CSV cell)."""
    return (
        f"CASE WHEN left({expression}, 1) IN ('=', '+', '-', '@', E'\\t', E'\\r', '''') "
        f"THEN '''' || {expression} ELSE {expression} END"
    )


_SQL_AT = "to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

_SQL_CSV_COLUMNS = {
    "seq": "e.seq",
    "at": _SQL_AT,
    "actor_id": "e.actor_id",
    "actor_name": _sql_cell("nullif(e.actor_name, '')"),
    "actor_label": _sql_cell("nullif(e.actor_label, '')"),
    "verb": _sql_cell("nullif(e.verb, '')"),
    "object_type": _sql_cell("nullif(e.object_type, '')"),
    "object_id": _sql_cell("nullif(e.object_id, '')"),
    "course_id": "e.course_id",
    "project_id": "e.project_id",
    "old": _sql_cell("coalesce(e.old::text, 'null')"),
    "new": _sql_cell("coalesce(e.new::text, 'null')"),
    "flagged": "CASE WHEN e.flagged THEN 'true' ELSE 'false' END",
    "hash_version": "e.hash_version",
    "prev_hash": "e.prev_hash",
    "hash": "e.hash",
}

# Each value as JSON text, exactly as json_build_object() prints it: numbers and null, booleans,
# strings escaped by to_json() (PostgreSQL's one escape_json), jsonb as jsonb prints itself.
_SQL_JSON_VALUES = {
    **{column: f"coalesce(to_json(e.{column})::text, 'null')" for column in COLUMNS},
    **{
        column: f"coalesce(e.{column}::text, 'null')"
        for column in ("seq", "actor_id", "course_id", "project_id", "hash_version", "old", "new")
    },
    "at": f"'\"' || {_SQL_AT} || '\"'",
    "flagged": "CASE WHEN e.flagged THEN 'true' ELSE 'false' END",
}


def _sql_where(filters: ExportFilters, head: ChainHead) -> tuple[str, list[Any]]:
    clauses: list[str] = ["e.seq <= %s"]
    params: list[Any] = [head.last_seq]
    if filters.course_id is not None:
        clauses.append("e.course_id = %s")
        params.append(filters.course_id)
    if filters.project_id is not None:
        clauses.append("e.project_id = %s")
        params.append(filters.project_id)
    if filters.since is not None:
        clauses.append("e.created_at >= %s")
        params.append(utc_midnight(filters.since))
    if filters.until is not None:
        clauses.append("e.created_at < %s")
        params.append(utc_midnight(filters.until + dt.timedelta(1)))
    if filters.verbs:
        clauses.append("e.verb = ANY(%s)")
        params.append(list(filters.verbs))
    return " AND ".join(clauses), params


def copy_statement(fmt: str, filters: ExportFilters, head: ChainHead) -> tuple[str, list[Any]]:
    """The COPY whose output is the export's body, byte for byte, and its parameters."""
    where, params = _sql_where(filters, head)
    source = f"FROM {AuditEvent._meta.db_table} e WHERE {where} ORDER BY e.seq"
    if fmt == "csv":
        select = ", ".join(f'{sql} AS "{column}"' for column, sql in _SQL_CSV_COLUMNS.items())
        return f"COPY (SELECT {select} {source}) TO STDOUT WITH (FORMAT csv, HEADER)", params
    # The line json_build_object(...)::text would print, concatenated by hand: the same bytes
    # in half the time (json_build_object looks up every argument's type on every row).
    line = (
        "'{' || "
        + " || ', ' || ".join(
            f"'\"{column}\" : ' || {_SQL_JSON_VALUES[column]}" for column in COLUMNS
        )
        + " || '}'"
    )
    # CSV with a delimiter and quote that JSON text never holds raw: the line comes out as is
    # (text format would double every backslash).
    return (
        f"COPY (SELECT {line} {source}) "
        "TO STDOUT WITH (FORMAT csv, DELIMITER E'\\x02', QUOTE E'\\x01')",
        params,
    )


_DONE = object()


class _CopyPipe:
    """The file COPY writes into (one call per row, so the call is kept to an append): rows
    gathered into chunks of COPY_CHUNK_ROWS handed over a bounded queue, so memory stays
    constant. Once the consumer has gone (``stop``), rows are dropped until the cancelled
    statement ends."""

    def __init__(self, chunks: queue.Queue[Any], stop: threading.Event) -> None:
        self.chunks = chunks
        self.stop = stop
        self.parts: list[bytes] = []
        self.append = self.parts.append

    def write(self, data: bytes) -> None:
        self.append(data)
        if len(self.parts) >= COPY_CHUNK_ROWS:
            self.flush()

    def flush(self) -> None:
        chunk = b"".join(self.parts)
        self.parts.clear()
        while chunk and not self.stop.is_set():
            try:
                self.chunks.put(chunk, timeout=0.5)
                return
            except queue.Full:
                continue


def copy_body(fmt: str, filters: ExportFilters, head: ChainHead) -> Iterator[bytes]:
    """Stream COPY's output. psycopg2's copy_expert only pushes into a file, so it runs in a
    thread on this connection while this generator (the only user of the connection until it
    finishes) hands the chunks on. A consumer that goes away cancels the statement."""
    connection.ensure_connection()
    raw = connection.connection
    with connection.cursor() as cursor:
        statement, params = copy_statement(fmt, filters, head)
        sql = cursor.mogrify(statement, params).decode("utf-8")
    chunks: queue.Queue[Any] = queue.Queue(maxsize=8)
    stop = threading.Event()
    pipe = _CopyPipe(chunks, stop)

    # Inside a transaction, a cancelled COPY would abort it: a savepoint keeps it usable.
    savepoint = connection.in_atomic_block

    def run() -> None:
        outcome: Any = _DONE
        try:
            with raw.cursor() as cursor:
                if savepoint:
                    cursor.execute("SAVEPOINT lrb_audit_copy")
                try:
                    cursor.copy_expert(sql, pipe)
                except BaseException:
                    if savepoint:
                        cursor.execute("ROLLBACK TO SAVEPOINT lrb_audit_copy")
                    raise
                if savepoint:
                    cursor.execute("RELEASE SAVEPOINT lrb_audit_copy")
            pipe.flush()
        except BaseException as error:  # handed to the consumer, raised there
            outcome = error
        while not stop.is_set():
            try:
                chunks.put(outcome, timeout=0.5)
                return
            except queue.Full:
                continue

    worker = threading.Thread(target=run, name="audit-export-copy", daemon=True)
    worker.start()
    finished = False
    try:
        while True:
            item = chunks.get()
            if item is _DONE:
                finished = True
                return
            if isinstance(item, BaseException):
                finished = True
                raise item
            yield item
    finally:
        if not finished:
            stop.set()
            raw.cancel()
        worker.join()


def use_copy() -> bool:
    return connection.vendor == "postgresql"
