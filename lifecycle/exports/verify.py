"""Verifying an export from the file alone and the server's public key (the rules are in the
package's docstring)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import signing
from ..audit import GENESIS_HASH, HASH_VERSIONS, event_payload, hash_payload
from .formats import COLUMNS, HEAD_FORMAT, HEAD_SUFFIX, filter_mismatch, unescape_cell


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
    """The hashed payload, rebuilt from an exported record by its hash version."""
    version = record["hash_version"]
    if version not in HASH_VERSIONS:
        raise MalformedRow(f"unknown hash version {version!r}")
    if version == 1 and record["actor_name"] != "":
        raise MalformedRow("a version 1 event has no recorded actor_name, yet the cell holds one")
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
        actor_name=record["actor_name"],
        hash_version=version,
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
            "hash_version": int(text["hash_version"]),
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


_JSONL_TYPES: dict[str, Any] = {
    "seq": int,
    "hash_version": int,
    "flagged": bool,
    "at": str,
    "actor_name": str,
    "actor_label": str,
    "verb": str,
    "object_type": str,
    "object_id": str,
    "prev_hash": str,
    "hash": str,
}


def _jsonl_records(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, text in enumerate(lines, start=1):
        try:
            record = json.loads(text)
        except ValueError as error:
            raise MalformedRow(f"line {number}: not JSON ({error})") from error
        if not isinstance(record, dict):
            raise MalformedRow(f"line {number}: not a JSON object")
        if set(record) != set(COLUMNS):
            raise MalformedRow(f"line {number}: the fields are not those of an audit export")
        for column, kind in _JSONL_TYPES.items():
            if not isinstance(record[column], kind) or (
                kind is int and isinstance(record[column], bool)
            ):
                raise MalformedRow(f"line {number}: {column} must be a {kind.__name__}")
        yield number, record


def verify_records(
    numbered: Iterable[tuple[int, Mapping[str, Any]]], *, head: Mapping[str, Any]
) -> FileReport:
    """Check each record's own hash, its place in the chain and the head's filters.

    In a full export (no filters) every event from #1 to the head is there, each linked to
    the one before; in a filtered one a missing seq is a gap (counted), and every row must be
    one the filters select."""
    filters = head.get("filters") or {}
    full = not filters
    last_seq = head.get("last_seq")
    if not isinstance(last_seq, int) or not isinstance(filters, dict):
        return FileReport(0, 0, dict(head), 1, None, "the chain head is malformed")
    rows = gaps = 0
    previous: Mapping[str, Any] | None = None
    line = 0

    def broken(at: int, record: Mapping[str, Any] | None, reason: str) -> FileReport:
        seq = record["seq"] if record is not None else None
        return FileReport(rows, gaps, dict(head), at, seq, reason)

    for line, record in numbered:
        seq = record["seq"]
        try:
            payload = payload_from_record(record)
        except MalformedRow as error:
            return broken(line, record, str(error))
        if hash_payload(payload) != record["hash"]:
            return broken(line, record, "content does not match its hash")
        if seq < 1:
            return broken(line, record, "sequence numbers start at 1")
        if previous is None:
            if (seq == 1) != (record["prev_hash"] == GENESIS_HASH):
                return broken(line, record, "only event #1 links to genesis")
            if full and seq != 1:
                return broken(line, record, "a full export must start at event #1")
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
        if seq > last_seq:
            return broken(line, record, f"is after the chain head #{last_seq}")
        mismatch = filter_mismatch(filters, record)
        if mismatch:
            return broken(line, record, f"does not match the export's filters: {mismatch}")
        rows += 1
        previous = record

    if rows != head.get("rows"):
        return broken(line + 1, None, f"the head says {head.get('rows')} rows, the file has {rows}")
    if previous is not None and previous["seq"] == last_seq:
        if previous["hash"] != head.get("last_hash"):
            return broken(line, previous, "its hash is not the chain head's last_hash")
    elif full and last_seq != (previous["seq"] if previous else 0):
        return broken(line + 1, None, f"the file ends before chain head #{last_seq}")
    return FileReport(rows, gaps, dict(head))


def _sha256_of(path: str, length: int | None = None) -> str:
    digest = hashlib.sha256()
    remaining = length
    with open(path, "rb") as data:
        while remaining is None or remaining > 0:
            block = data.read(1 << 20 if remaining is None else min(1 << 20, remaining))
            if not block:
                break
            digest.update(block)
            if remaining is not None:
                remaining -= len(block)
    return digest.hexdigest()


def verify_export_file(path: str, *, public_key: Any = None) -> FileReport:
    """Verify an export from the file alone (``.csv`` with its ``.head.json``, or ``.jsonl``)
    and the server's public key (default: this server's own)."""
    try:
        if path.endswith(".csv"):
            try:
                with open(path + HEAD_SUFFIX, encoding="utf-8") as head_file:
                    head = json.load(head_file)["chain_head"]
            except (OSError, ValueError, KeyError, TypeError) as error:
                raise MalformedRow(
                    f"cannot read the chain head {path}{HEAD_SUFFIX}: {error}"
                ) from error
            if not isinstance(head, dict):
                raise MalformedRow(f"the chain head {path}{HEAD_SUFFIX} is not an object")
            with open(path, encoding="utf-8", newline="") as export:
                report = verify_records(_csv_records(export), head=head)
            body_length = None
        else:
            head, body_length = _last_jsonl_head(path)
            with open(path, encoding="utf-8", newline="") as export:
                body = io.TextIOWrapper(
                    io.BufferedReader(_Limited(export.buffer, body_length)),
                    encoding="utf-8",
                    newline="",
                )
                report = verify_records(_jsonl_records(body), head=head)
        if not report.intact:
            return report
        if head.get("format") != HEAD_FORMAT:
            return _head_broken(report, "the head is not of a signed export (format 2)")
        if _sha256_of(path, body_length) != head.get("body_sha256"):
            return _head_broken(
                report, "the file's content is not what the head's body_sha256 says was exported"
            )
        problem = signing.signature_problem(head, public_key)
        if problem:
            return _head_broken(report, f"the chain head cannot be trusted: {problem}")
        return report
    except MalformedRow as error:
        text = str(error)
        line = None
        if text.startswith("line "):
            number, _, text = text[5:].partition(": ")
            line = int(number)
        return FileReport(0, 0, None, line or 0, None, text)


def _head_broken(report: FileReport, reason: str) -> FileReport:
    return FileReport(report.rows, report.gaps, report.head, 0, None, reason)


class _Limited(io.RawIOBase):
    """The first ``length`` bytes of a binary file: a JSON Lines export's body."""

    def __init__(self, raw: Any, length: int) -> None:
        self.raw = raw
        self.remaining = length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.remaining <= 0:
            return 0
        data = self.raw.read(min(len(buffer), self.remaining))
        buffer[: len(data)] = data
        self.remaining -= len(data)
        return len(data)


def _last_jsonl_head(path: str) -> tuple[dict[str, Any], int]:
    """The head (the last line) and where it starts: the length of the body before it."""
    with open(path, "rb") as export:
        export.seek(0, 2)
        size = export.tell()
        start = max(0, size - 65536)
        export.seek(start)
        tail = export.read()
    if not tail.endswith(b"\n"):
        raise MalformedRow("the file does not end with its chain head")
    cut = tail.rfind(b"\n", 0, len(tail) - 1)
    if cut < 0 and start > 0:
        raise MalformedRow("the file does not end with its chain head")
    body_length = start + cut + 1
    try:
        head = json.loads(tail[cut + 1 :].decode("utf-8"))
    except ValueError as error:
        raise MalformedRow("the file does not end with its chain head") from error
    if not isinstance(head, dict) or set(head) != {"chain_head"}:
        raise MalformedRow("the file does not end with its chain head")
    if not isinstance(head["chain_head"], dict):
        raise MalformedRow("the file does not end with its chain head")
    return head["chain_head"], body_length
