"""An export's bytes, its signed head, and writing both to files."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

from .formats import (
    CHUNK_SIZE,
    FORMATS,
    HEAD_SUFFIX,
    ChainHead,
    ExportFilters,
    Tally,
    chain_head_at,
    count_rows,
    head_record,
    python_body,
)
from .pg_copy import copy_body, copy_to, use_copy


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"Unknown export format {fmt!r}; use one of {', '.join(FORMATS)}.")


def export_body(
    fmt: str,
    filters: ExportFilters,
    head: ChainHead,
    *,
    chunk_size: int = CHUNK_SIZE,
    fast: bool | None = None,
    tally: Tally | None = None,
) -> Iterator[bytes]:
    """The export's bytes before any head, in chunks: COPY on PostgreSQL, Python elsewhere.
    ``tally.rows`` is the number of rows once the last chunk has been read."""
    _check_format(fmt)
    if use_copy() if fast is None else fast:
        return copy_body(fmt, filters, head, tally)
    return python_body(fmt, filters, head, chunk_size, tally)


def stream_export(
    fmt: str,
    filters: ExportFilters,
    head: ChainHead,
    *,
    chunk_size: int = CHUNK_SIZE,
    fast: bool | None = None,
) -> Iterator[bytes]:
    """The bytes of an export. JSON Lines end with the signed head; for CSV the head is a
    separate file (``csv_head_record``)."""
    if fmt == "csv":
        return export_body(fmt, filters, head, chunk_size=chunk_size, fast=fast)
    tally = Tally()
    body = export_body(fmt, filters, head, chunk_size=chunk_size, fast=fast, tally=tally)
    return _with_jsonl_head(body, filters, head, tally)


def _with_jsonl_head(
    body: Iterator[bytes], filters: ExportFilters, head: ChainHead, tally: Tally
) -> Iterator[bytes]:
    digest = hashlib.sha256()
    for chunk in body:
        digest.update(chunk)
        yield chunk
    yield _jsonl_head_line(filters, head, rows=tally.rows, body_sha256=digest.hexdigest())


def _jsonl_head_line(
    filters: ExportFilters, head: ChainHead, *, rows: int, body_sha256: str
) -> bytes:
    record = head_record(head, rows=rows, filters=filters, body_sha256=body_sha256)
    return (json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8")


def csv_head_record(
    filters: ExportFilters,
    head: ChainHead,
    *,
    body_sha256: str | None = None,
    rows: int | None = None,
) -> dict[str, Any]:
    """The head of a CSV export (its ``.head.json``). Without the body's digest, the body is
    generated again to compute it (the download and its head are two requests), and counted
    on the way."""
    if body_sha256 is None:
        digest = hashlib.sha256()
        tally = Tally()
        for chunk in export_body("csv", filters, head, tally=tally):
            digest.update(chunk)
        body_sha256, rows = digest.hexdigest(), tally.rows
    if rows is None:
        rows = count_rows(filters, head)
    return head_record(head, rows=rows, filters=filters, body_sha256=body_sha256)


def head_json(record: Mapping[str, Any]) -> str:
    return json.dumps(record, indent=2) + "\n"


def write_export(
    path: str, fmt: str, filters: ExportFilters, *, fast: bool | None = None
) -> dict[str, Any]:
    """Write the export to ``path`` (and ``path + HEAD_SUFFIX`` for CSV); return the head.

    On PostgreSQL, COPY writes into the file through this thread (no generator, no queue); the
    body's digest and row count are taken on the way."""
    _check_format(fmt)
    # A filtered export's head counts the whole chain (in the same query); an unfiltered one
    # is counted by its own rows (chain_count).
    head = chain_head_at(counted=bool(filters.as_dict()))
    digest = hashlib.sha256()
    with open(path, "wb") as out:

        def emit(chunk: bytes) -> None:
            digest.update(chunk)
            out.write(chunk)

        if use_copy() if fast is None else fast:
            rows = copy_to(fmt, filters, head, emit)
        else:
            tally = Tally()
            for chunk in python_body(fmt, filters, head, CHUNK_SIZE, tally):
                emit(chunk)
            rows = tally.rows
        if fmt == "jsonl":
            line = _jsonl_head_line(filters, head, rows=rows, body_sha256=digest.hexdigest())
            out.write(line)
            return json.loads(line)
    record = csv_head_record(filters, head, body_sha256=digest.hexdigest(), rows=rows)
    with open(path + HEAD_SUFFIX, "w", encoding="utf-8") as head_file:
        head_file.write(head_json(record))
    return record
