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
    chain_head_at,
    count_rows,
    head_record,
    python_body,
)
from .pg_copy import copy_body, use_copy


def export_body(
    fmt: str,
    filters: ExportFilters,
    head: ChainHead,
    *,
    chunk_size: int = CHUNK_SIZE,
    fast: bool | None = None,
) -> Iterator[bytes]:
    """The export's bytes before any head, in chunks: COPY on PostgreSQL, Python elsewhere."""
    if fmt not in FORMATS:
        raise ValueError(f"Unknown export format {fmt!r}; use one of {', '.join(FORMATS)}.")
    if use_copy() if fast is None else fast:
        return copy_body(fmt, filters, head)
    return python_body(fmt, filters, head, chunk_size)


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
    body = export_body(fmt, filters, head, chunk_size=chunk_size, fast=fast)
    if fmt == "csv":
        return body
    return _with_jsonl_head(body, filters, head)


def _with_jsonl_head(
    body: Iterator[bytes], filters: ExportFilters, head: ChainHead
) -> Iterator[bytes]:
    digest = hashlib.sha256()
    rows = 0
    for chunk in body:
        digest.update(chunk)
        rows += chunk.count(b"\n")  # JSON text holds no raw line break
        yield chunk
    record = head_record(head, rows=rows, filters=filters, body_sha256=digest.hexdigest())
    yield (json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8")


def csv_head_record(
    filters: ExportFilters, head: ChainHead, *, body_sha256: str | None = None
) -> dict[str, Any]:
    """The head of a CSV export (its ``.head.json``). Without the body's digest, the body is
    generated again to compute it (the download and its head are two requests)."""
    if body_sha256 is None:
        digest = hashlib.sha256()
        for chunk in export_body("csv", filters, head):
            digest.update(chunk)
        body_sha256 = digest.hexdigest()
    return head_record(
        head, rows=count_rows(filters, head), filters=filters, body_sha256=body_sha256
    )


def head_json(record: Mapping[str, Any]) -> str:
    return json.dumps(record, indent=2) + "\n"


def write_export(
    path: str, fmt: str, filters: ExportFilters, *, fast: bool | None = None
) -> dict[str, Any]:
    """Write the export to ``path`` (and ``path + HEAD_SUFFIX`` for CSV); return the head."""
    head = chain_head_at()
    digest = hashlib.sha256()
    last = b""
    with open(path, "wb") as out:
        for chunk in stream_export(fmt, filters, head, fast=fast):
            out.write(chunk)
            digest.update(chunk)
            last = chunk
    if fmt == "csv":
        record = csv_head_record(filters, head, body_sha256=digest.hexdigest())
        with open(path + HEAD_SUFFIX, "w", encoding="utf-8") as out:
            out.write(head_json(record))
        return record
    return json.loads(last.rstrip(b"\n").rsplit(b"\n", 1)[-1])
