"""Audit-trail exports an auditor can verify with nothing but the file and the server's public
key.

Formats
-------
Both formats carry one record per event with the columns in ``COLUMNS``. Every column is part of
the event's hashed payload (``audit.payload_of``) under these names, except ``actor_name`` for
events of hash version 1, which have none (the cell is empty, and a verifier refuses a v1 row
whose ``actor_name`` is not):

    export column   payload key      export column   payload key
    seq             seq              course_id       course_id
    at              at               project_id      project_id
    actor_id        actor_id         old             old
    actor_name      actor_name (v2)  new             new
    actor_label     actor            flagged         flagged
    verb            verb             hash_version    v (v2)
    object_type     object_type      prev_hash       prev
    object_id       object_id        hash            (the stored hash itself)

* JSON Lines: one JSON object per event, its keys in ``JSONL_KEYS`` order (the numbers, time,
  ``old``/``new``, flag and hash version first, the text values last: the COPY fast path
  escapes those with one ``json_object`` call), ``" : "`` and ``", "`` between them as
  ``json_object`` writes them, ``old``/``new`` as ``jsonb`` prints them
  (``{"seq" : 1, "at" : "…", "actor_id" : 5, …, "hash" : "…"}``), so that the COPY fast path
  and the Python path produce the same bytes. A reader takes the object's keys, not their
  order. The last line is ``{"chain_head": {...}}`` (see ``head_record``).
* CSV: a header row, then one row per event, lines ending in ``\\n``. ``old``/``new`` hold JSON
  text (``null`` when empty), ``flagged`` is ``true``/``false``, an empty id cell is ``None``.
  The chain head travels beside the file as ``<file>.head.json``.

CSV-injection escaping
----------------------
A spreadsheet runs a cell that starts with ``=``, ``+``, ``-``, ``@``, tab or carriage return
as a formula. Such a cell is written with a single quote ``'`` in front. A cell that itself
starts with ``'`` is also given one more ``'``: without that, the value ``'=1`` and the escaped
value ``=1`` would be the same text and the escaping could not be undone. So the rule, applied
to every cell on writing, is "prefix ``'`` if the cell starts with one of ``= + - @ \\t \\r '``",
and its exact inverse, applied by the verifier before it re-computes a hash, is "drop one
leading ``'``". Integer, boolean and JSON-object cells never start with those characters, so in
practice only text cells (labels, ids, verbs, names, a negative JSON number) change.

The chain head and why an edited file never verifies
----------------------------------------------------
``head_record`` is the head of the WHOLE chain when the export was taken (``count`` events,
the last one ``last_seq`` with ``last_hash``), what the file holds (``rows``, and the
``filters`` that selected them), the SHA-256 of the file's bytes (``body_sha256``: every line
before the head in JSON Lines, the whole CSV file), and an Ed25519 ``signature`` by the server's
key (``lifecycle.signing``) over all of that. The verifier (``verify_export_file``) checks:

1. every row: its hash re-computed by its hash version; strictly increasing ``seq``, none after
   the head; consecutive rows link (``prev_hash`` is the hash before); every row matches the
   head's ``filters`` (course, project, UTC days, verbs); a full export runs #1…``last_seq``
   without a gap from genesis and ends on ``last_hash``;
2. the row count and the body's SHA-256 against the head;
3. the head's signature against the server's public key (published at ``/audit/public-key/``
   and printed by ``manage.py audit_public_key``).

A removed, reordered, altered or added line changes the body's SHA-256; a head edited to match
(a new count, a claimed filter, a new digest) no longer matches its signature. The hash chain
itself ties every row to the database's chain: ``last_hash`` can be compared with the
database, a checkpoint (``verify_audit --checkpoint``) or an earlier export.

Gaps: in a filtered export the events between two rows belong to other courses, projects, days
or verbs. A gap is the run of sequence numbers between two consecutive rows; the hash of its last
event is the next row's ``prev_hash``, so the chain's continuity is visible without the skipped
events' content, and the signed ``rows``/``body_sha256`` say the server left out exactly those.
"""

from .formats import (
    CHUNK_SIZE,
    COLUMNS,
    FORMATS,
    HEAD_FORMAT,
    HEAD_SUFFIX,
    JSONL_KEYS,
    ChainHead,
    ExportFilters,
    Tally,
    chain_head_at,
    count_rows,
    csv_lines,
    escape_cell,
    export_records,
    filter_mismatch,
    head_record,
    jsonb_text,
    jsonl_line,
    selected_events,
    unescape_cell,
)
from .pg_copy import COPY_CHUNK_ROWS, copy_statement, copy_to, use_copy
from .streams import csv_head_record, export_body, head_json, stream_export, write_export
from .verify import (
    FileReport,
    MalformedRow,
    payload_from_record,
    record_from_csv,
    verify_export_file,
    verify_records,
)

__all__ = [
    "CHUNK_SIZE",
    "COLUMNS",
    "COPY_CHUNK_ROWS",
    "FORMATS",
    "HEAD_FORMAT",
    "HEAD_SUFFIX",
    "JSONL_KEYS",
    "ChainHead",
    "ExportFilters",
    "FileReport",
    "MalformedRow",
    "Tally",
    "chain_head_at",
    "copy_statement",
    "copy_to",
    "count_rows",
    "csv_head_record",
    "csv_lines",
    "escape_cell",
    "export_body",
    "export_records",
    "filter_mismatch",
    "head_json",
    "head_record",
    "jsonb_text",
    "jsonl_line",
    "payload_from_record",
    "record_from_csv",
    "selected_events",
    "stream_export",
    "unescape_cell",
    "use_copy",
    "verify_export_file",
    "verify_records",
    "write_export",
]
