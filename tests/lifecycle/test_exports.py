"""Audit-trail exports: streamed CSV and JSON Lines that an auditor verifies from the file alone.

Personas (tests/conftest.py): Alice and Bob are one team, Carol a student on another team,
Tina a TA, Ian the instructor, Erin an outside expert, Oscar an outsider. Only course staff
download a course's trail; everyone else gets a 404.
"""

from __future__ import annotations

import csv
import hashlib
import json
import tracemalloc
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from factories import CourseFactory, UserFactory, enrol, fill_and_submit
from reauth import confirm_password

from lifecycle import exports, services
from lifecycle.audit import GENESIS_HASH, hash_payload, payload_of
from lifecycle.models import AuditEvent, Role

pytestmark = pytest.mark.django_db

FORMATS = ["csv", "jsonl"]
INJECTION_CORPUS = ["=cmd|' /C calc'!A0", "+1", "-1+1", "@SUM(1)", "\t=1", "\r=1"]


# --- Helpers ------------------------------------------------------------------------------


def append_events(specs: Iterable[Mapping[str, Any]], *, batch_size: int = 5000) -> int:
    """Bulk-insert events with a correct chain computed here (an INSERT, which the append-only
    triggers allow). Each spec gives the event's fields except seq, hashes and time."""
    last = AuditEvent.objects.order_by("-seq").values_list("seq", "hash").first()
    seq, prev = last if last else (0, GENESIS_HASH)
    at = timezone.now()
    batch: list[AuditEvent] = []
    for spec in specs:
        seq += 1
        event = AuditEvent(
            seq=seq, created_at=at, prev_hash=prev, **{"flagged": False, "old": None, **spec}
        )
        event.hash = prev = hash_payload(payload_of(event))
        batch.append(event)
        if len(batch) == batch_size:
            AuditEvent.objects.bulk_create(batch)
            batch = []
    AuditEvent.objects.bulk_create(batch)
    return seq


def draft_saves(personas: Any, n: int) -> Iterable[dict[str, Any]]:
    project = personas.project
    for i in range(n):
        yield {
            "actor_id": personas.alice.pk,
            "actor_label": personas.alice.email,
            "verb": "stage.draft_save",
            "object_type": "lifecycle.project",
            "object_id": str(project.pk),
            "course_id": project.course_id,
            "project_id": project.pk,
            "new": {"answer": f"draft {i}"},
        }


def some_history(personas: Any) -> None:
    """Both teams' projects change in turns, so one project's events are not consecutive."""
    fill_and_submit(personas.project.stages.get(definition__order=1), personas.alice)
    fill_and_submit(personas.other_project.stages.get(definition__order=1), personas.carol)
    services.stakeholder_add(
        project=personas.project,
        actor=personas.alice,
        name="Nurses",
        kind="direct_user",
        interests="Shorter queues",
    )


def export(tmp_path: Path, fmt: str, *args: str) -> tuple[Path, str]:
    path = tmp_path / f"trail.{fmt}"
    call_command("export_audit", "--format", fmt, "--output", str(path), *args)
    return path, verify(path)


def verify(path: Path) -> str:
    from io import StringIO

    out = StringIO()
    call_command("verify_audit", "--file", str(path), stdout=out)
    return out.getvalue()


def data_lines(path: Path, fmt: str = "") -> list[str]:
    """The file's physical lines (CSV rows of this test data hold no line breaks)."""
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


# --- Round trip -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_full_export_verifies_from_the_file_with_its_count_and_head(personas, tmp_path, fmt):
    some_history(personas)
    path, out = export(tmp_path, fmt)
    last = AuditEvent.objects.order_by("-seq").first()
    count = AuditEvent.objects.count()
    assert f"{count} events, 0 gaps" in out
    assert f"chain head #{last.seq} ({count} events) {last.hash}" in out
    assert "full export" in out
    head_text = (
        Path(str(path) + exports.HEAD_SUFFIX).read_text()
        if fmt == "csv"
        else data_lines(path, fmt)[-1]
    )
    head = json.loads(head_text)["chain_head"]
    assert (head["count"], head["last_seq"], head["last_hash"], head["rows"]) == (
        count,
        last.seq,
        last.hash,
        count,
    )
    assert head["exported_at"].endswith("Z")


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_field_of_an_event_is_exported_with_utc_times(personas, tmp_path, fmt):
    some_history(personas)
    path, _ = export(tmp_path, fmt)
    event = AuditEvent.objects.filter(verb="stakeholder.add").last()
    if fmt == "csv":
        with path.open(encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        row = next(r for r in rows if r["seq"] == str(event.seq))
        assert json.loads(row["new"]) == event.new
        assert row["flagged"] == "false"
    else:
        records = [json.loads(line) for line in data_lines(path, fmt)[:-1]]
        row = next(r for r in records if r["seq"] == event.seq)
        assert row["new"] == event.new
    # A JSON line lists its text values last (exports.JSONL_KEYS); a CSV keeps COLUMNS' order.
    assert list(row) == list(exports.COLUMNS if fmt == "csv" else exports.JSONL_KEYS)
    assert set(exports.JSONL_KEYS) == set(exports.COLUMNS)
    assert row["at"].endswith("Z") and "T" in row["at"]
    assert row["actor_name"] == "Alice"
    assert row["actor_label"] == "alice@example.test"
    assert (row["prev_hash"], row["hash"]) == (event.prev_hash, event.hash)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_tampered_line_is_named_by_its_line_number_and_event(personas, tmp_path, fmt):
    some_history(personas)
    path, _ = export(tmp_path, fmt)
    lines = data_lines(path, fmt)
    index = 6  # the seventh line: event #6 in CSV (after the header), #7 in JSON Lines
    seq = index if fmt == "csv" else index + 1
    assert f"{seq}," in lines[index] or f'"seq":{seq},' in lines[index]
    original = AuditEvent.objects.get(seq=seq)
    lines[index] = lines[index].replace(original.actor_label, "mallory@example.test", 1)
    assert "mallory" in lines[index]
    path.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(CommandError, match=rf"line 7 \(event #{seq}\): content does not match"):
        verify(path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_line_removed_from_a_full_export_is_a_broken_link(personas, tmp_path, fmt):
    some_history(personas)
    path, _ = export(tmp_path, fmt)
    lines = data_lines(path, fmt)
    del lines[4]
    path.write_text("".join(lines), encoding="utf-8")
    seq = 5 if fmt == "csv" else 6  # the event now on line 5
    with pytest.raises(
        CommandError, match=rf"line 5 \(event #{seq}\): does not link to the event before it"
    ):
        verify(path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_last_line_removed_from_a_full_export_contradicts_the_head(personas, tmp_path, fmt):
    some_history(personas)
    path, _ = export(tmp_path, fmt)
    lines = data_lines(path, fmt)
    del lines[-1 if fmt == "csv" else -2]
    path.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(CommandError, match="the head says"):
        verify(path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_filtered_export_verifies_and_reports_its_gaps(personas, tmp_path, fmt):
    some_history(personas)
    project = personas.project
    _, out = export(tmp_path, fmt, "--project", str(project.pk))
    rows = AuditEvent.objects.filter(project=project).count()
    assert rows < AuditEvent.objects.count()
    assert "filtered export" in out
    assert f"{rows} events, " in out
    gaps = int(out.split(" gaps")[0].rsplit(" ", 1)[-1])
    assert gaps >= 1


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_export_filtered_by_verb_and_day_holds_only_those_events(personas, tmp_path, fmt):
    some_history(personas)
    today = timezone.now().date().isoformat()
    _, out = export(
        tmp_path,
        fmt,
        "--verb",
        "stage.submit",
        "stakeholder.add",
        "--since",
        today,
        "--until",
        today,
    )
    expected = AuditEvent.objects.filter(verb__in=["stage.submit", "stakeholder.add"]).count()
    assert f"{expected} events" in out
    _, out = export(tmp_path, fmt, "--until", "2000-01-01")
    assert "0 events" in out


# --- CSV injection --------------------------------------------------------------------------


def test_formula_cells_are_escaped_and_the_export_still_verifies(personas, tmp_path):
    # Through the services: a project title and a stakeholder name (inside the JSON cells) and
    # an actor whose display name is a formula (the unhashed actor_name cell).
    for text in INJECTION_CORPUS:
        services.stakeholder_add(
            project=personas.project, actor=personas.alice, name=text, kind="direct_user"
        )
    enrol(personas.course, UserFactory(email="mallory@example.test", display_name="=1+1"))
    services.project_create(
        course=personas.course,
        actor=UserFactory(email="mallory@example.test"),
        title="=HYPERLINK(1)",
    )
    # Hashed text cells that start with a formula character, including a leading quote whose
    # escaping must also be undone exactly.
    append_events(
        {
            "actor_id": None,
            "actor_label": text,
            "verb": text,
            "object_type": "lifecycle.project",
            "object_id": text,
            "course_id": None,
            "project_id": None,
            "new": {"v": text},
        }
        for text in [*INJECTION_CORPUS, "'=already quoted", "'"]
    )
    path, out = export(tmp_path, "csv")
    assert "0 gaps" in out
    with path.open(encoding="utf-8", newline="") as f:
        cells = [cell for row in csv.reader(f) for cell in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    for text in INJECTION_CORPUS:
        assert "'" + text in cells
    assert "''=already quoted" in cells
    assert "'=1+1" in cells  # mallory's name


def test_the_cell_escaping_is_undone_exactly():
    for text in [*INJECTION_CORPUS, "'", "''x", "plain", "", "-"]:
        assert exports.unescape_cell(exports.escape_cell(text)) == text


# --- Scale ----------------------------------------------------------------------------------


def export_queries(personas: Any) -> int:
    filters = exports.ExportFilters(course_id=personas.course.pk)
    with CaptureQueriesContext(connection) as captured:
        head = exports.chain_head_at()
        lines = sum(c.count(b"\n") for c in exports.stream_export("jsonl", filters, head))
        lines += sum(c.count(b"\n") for c in exports.stream_export("csv", filters, head))
    assert lines > 20
    return len(captured.captured_queries)


def test_an_exports_query_count_does_not_grow_with_projects(personas):
    def add_projects(n: int) -> None:
        for _ in range(n):
            student = UserFactory()
            enrol(personas.course, student, Role.STUDENT)
            services.project_create(course=personas.course, actor=student, title="Another")

    add_projects(8)  # 10 projects with the personas' two
    small = export_queries(personas)
    add_projects(90)
    assert personas.course.projects.count() == 100
    # Both sizes fit in one chunk of the iterator, so equal counts mean no query per row.
    assert AuditEvent.objects.count() < exports.CHUNK_SIZE
    assert export_queries(personas) == small


def test_a_100000_event_export_streams_in_bounded_memory(personas):
    append_events(draft_saves(personas, 100_000), batch_size=10_000)
    head = exports.chain_head_at()
    filters = exports.ExportFilters()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        rows = 0
        for chunk in exports.stream_export("csv", filters, head):
            rows += chunk.count(b"\n")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rows == head.count + 1  # and the header
    print(f"tracemalloc peak of a {rows - 1:,}-event CSV export: {peak / 1e6:.1f} MB")
    assert peak < 30 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


# --- The download page ----------------------------------------------------------------------

PERSONAS = ["alice", "bob", "carol", "tina", "ian", "erin", "oscar", "anonymous"]
EXPECTED = {"tina": 200, "ian": 200, "anonymous": "login"}


def client_for(personas: Any, who: str) -> Client:
    client = Client()
    if who != "anonymous":
        client.force_login(getattr(personas, who))
        confirm_password(client)  # as after signing in: the whole course's trail asks for it
    return client


def assert_status(response: Any, expected: int | str) -> None:
    if expected == "login":
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("accounts:login") + "?next=")
    else:
        assert response.status_code == expected


@pytest.mark.parametrize("who", PERSONAS)
@pytest.mark.parametrize(
    "query", ["", "?format=csv", "?format=jsonl&download=1", "?format=csv&head=1"]
)
def test_only_the_courses_staff_may_export_its_audit_trail(personas, who, query):
    url = reverse("lifecycle:audit_export", args=[personas.course.pk]) + query
    response = client_for(personas, who).get(url)
    assert_status(response, EXPECTED.get(who, 404))


@pytest.mark.parametrize("who", ["ian", "oscar"])
def test_the_export_page_answers_only_get(personas, who):
    url = reverse("lifecycle:audit_export", args=[personas.course.pk])
    response = client_for(personas, who).post(url, {"format": "csv"})
    assert response.status_code == 405


def test_staff_of_another_course_cannot_export_this_one(personas):
    other_instructor = UserFactory(email="prof@example.test")
    services_course = personas.course.__class__.objects.create(
        title="Other", code="other-1", template=personas.course.template
    )
    enrol(services_course, other_instructor, Role.INSTRUCTOR)
    client = Client()
    client.force_login(other_instructor)
    confirm_password(client)
    url = reverse("lifecycle:audit_export", args=[personas.course.pk]) + "?format=csv&download=1"
    assert client.get(url).status_code == 404


def test_the_course_page_links_staff_to_the_export(personas):
    url = reverse("lifecycle:course_detail", args=[personas.course.pk])
    export_url = reverse("lifecycle:audit_export", args=[personas.course.pk])
    assert export_url in client_for(personas, "ian").get(url).content.decode()
    assert export_url not in client_for(personas, "alice").get(url).content.decode()


def test_a_downloaded_csv_and_its_head_verify_together(personas, tmp_path):
    some_history(personas)
    client = client_for(personas, "tina")
    url = reverse("lifecycle:audit_export", args=[personas.course.pk])
    page = client.get(url, {"format": "csv", "project": personas.project.pk})
    assert page.status_code == 200
    html = page.content.decode().replace("&amp;", "&")
    download = html.split('href="?', 1)[1].split('"', 1)[0]
    head = html.split('href="?', 2)[2].split('"', 1)[0]
    assert "download=1" in download and "head=1" in head
    # The course keeps working between the two requests: the pinned head keeps them paired.
    services.stakeholder_add(
        project=personas.project, actor=personas.alice, name="Later", kind="direct_user"
    )
    response = client.get(url + "?" + download)
    assert response.streaming
    assert response["Content-Disposition"].startswith("attachment;")
    path = tmp_path / "download.csv"
    path.write_bytes(b"".join(response.streaming_content))
    head_response = client.get(url + "?" + head)
    assert head_response["Content-Type"] == "application/json"
    Path(str(path) + exports.HEAD_SUFFIX).write_bytes(head_response.content)
    out = verify(path)
    assert f"{AuditEvent.objects.filter(project=personas.project).count() - 1} events" in out
    assert "filtered export" in out


def test_an_invalid_export_request_shows_the_form_again(personas):
    url = reverse("lifecycle:audit_export", args=[personas.course.pk])
    response = client_for(personas, "ian").get(
        url, {"format": "xml", "since": "2026-02-01", "until": "2026-01-01"}
    )
    assert response.status_code == 400
    assert b"audit-export-form" in response.content


# --- Every exported field bound: edits, removals, reorderings, forged heads -----------------


def read_records(path: Path, fmt: str) -> list[dict[str, Any]]:
    if fmt == "csv":
        with path.open(encoding="utf-8", newline="") as f:
            return [exports.record_from_csv(cells) for cells in list(csv.reader(f))[1:]]
    return [json.loads(line) for line in data_lines(path)[:-1]]


def head_of(path: Path, fmt: str) -> dict[str, Any]:
    if fmt == "csv":
        return json.loads(Path(str(path) + exports.HEAD_SUFFIX).read_text())["chain_head"]
    return json.loads(data_lines(path)[-1])["chain_head"]


def rewrite(path: Path, fmt: str, records: list[dict[str, Any]], head: dict[str, Any]) -> None:
    """Write records and head back as the exporter would (no trace of hand editing)."""
    if fmt == "csv":
        path.write_text("".join(exports.csv_lines(records)), encoding="utf-8", newline="")
        Path(str(path) + exports.HEAD_SUFFIX).write_text(
            exports.head_json({"chain_head": head}), encoding="utf-8"
        )
    else:
        body = "".join(exports.jsonl_line(r) for r in records)
        path.write_text(body + json.dumps({"chain_head": head}) + "\n", encoding="utf-8")


def body_digest(path: Path, fmt: str) -> str:
    data = path.read_bytes()
    if fmt == "jsonl":
        data = data[: data.rstrip(b"\n").rfind(b"\n") + 1]
    return hashlib.sha256(data).hexdigest()


def more_history(personas: Any) -> None:
    for name in ("Clinicians", "Patients"):
        services.stakeholder_add(
            project=personas.project, actor=personas.bob, name=name, kind="direct_user"
        )


def with_flagged_override(personas: Any) -> None:
    from django.db import transaction

    from lifecycle.audit import audit_record

    with transaction.atomic():
        audit_record(
            actor=personas.ian,
            verb="stage.override",
            obj=personas.project,
            project=personas.project,
            new={"status": "approved", "justification": "Quorum unreachable"},
            flagged=True,
        )


TAMPERED = {
    "seq": lambda r: r["seq"] + 1000,
    "at": lambda r: r["at"].replace(r["at"][:4], str(int(r["at"][:4]) - 1), 1),
    "actor_id": lambda r: (r["actor_id"] or 0) + 1,
    "actor_name": lambda r: "Mallory",
    "actor_label": lambda r: "mallory@example.test",
    "verb": lambda r: "stage.forged",
    "object_type": lambda r: "lifecycle.course",
    "object_id": lambda r: "999",
    "course_id": lambda r: None,
    "project_id": lambda r: 999,
    "old": lambda r: {"status": "drafting"},
    "new": lambda r: {"status": "rejected"},
    "flagged": lambda r: not r["flagged"],
    "hash_version": lambda r: 1 if r["hash_version"] == 2 else 2,
    "prev_hash": lambda r: "f" * 64,
    "hash": lambda r: "e" * 64,
}
assert set(TAMPERED) == set(exports.COLUMNS)


@pytest.mark.parametrize("column", exports.COLUMNS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_an_edit_of_any_exported_field_is_named_by_line_and_event(personas, tmp_path, fmt, column):
    some_history(personas)
    with_flagged_override(personas)
    more_history(personas)
    path, _ = export(tmp_path, fmt)
    records = read_records(path, fmt)
    index = next(i for i, r in enumerate(records) if r["flagged"])
    assert records[index]["hash_version"] == 2 and 0 < index < len(records) - 1
    records[index][column] = TAMPERED[column](records[index])
    rewrite(path, fmt, records, head_of(path, fmt))
    line = index + 2 if fmt == "csv" else index + 1
    with pytest.raises(CommandError, match=rf"line {line} \(event #{records[index]['seq']}\)"):
        verify(path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_edit_rehashed_and_relinked_to_the_end_still_fails_on_the_signed_head(
    personas, tmp_path, fmt
):
    some_history(personas)
    path, _ = export(tmp_path, fmt)
    records = read_records(path, fmt)
    head = head_of(path, fmt)
    # Rewrite the history from event 3 on, re-hashing every event and the head's digest.
    prev = records[1]["hash"]
    for record in records[2:]:
        record["actor_label"] = "mallory@example.test"
        record["prev_hash"] = prev
        record["hash"] = prev = hash_payload(exports.payload_from_record(record))
    head["last_hash"] = prev
    rewrite(path, fmt, records, head)
    head["body_sha256"] = body_digest(path, fmt)
    rewrite(path, fmt, records, head)
    with pytest.raises(CommandError, match="its signature does not match its content"):
        verify(path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_removed_line_and_a_head_claiming_a_filter_are_refused(personas, tmp_path, fmt):
    some_history(personas)
    path, _ = export(tmp_path, fmt)
    records = read_records(path, fmt)
    head = head_of(path, fmt)
    victim = next(r for r in records if r["project_id"] == personas.project.pk and r["seq"] > 3)
    kept = [r for r in records if r is not victim]
    head.update(rows=len(kept), filters={"course": personas.course.pk})
    rewrite(path, fmt, kept, head)
    head["body_sha256"] = body_digest(path, fmt)
    rewrite(path, fmt, kept, head)
    with pytest.raises(CommandError, match="cannot be trusted: its signature does not match"):
        verify(path)


def resign(head: dict[str, Any]) -> dict[str, Any]:
    """What only the server could do: sign a head (here, to reach the checks behind it)."""
    from lifecycle import signing

    return signing.signed({k: v for k, v in head.items() if k not in ("key_id", "signature")})


@pytest.mark.parametrize("fmt", FORMATS)
def test_rows_that_do_not_match_the_claimed_filter_are_refused_even_under_a_valid_signature(
    personas, tmp_path, fmt
):
    some_history(personas)
    path, _ = export(tmp_path, fmt, "--project", str(personas.project.pk))
    records = read_records(path, fmt)
    head = head_of(path, fmt)
    head["filters"] = {"project": personas.other_project.pk}
    rewrite(path, fmt, records, resign(head))
    with pytest.raises(CommandError, match=r"line \d+ \(event #\d+\): does not match the export"):
        verify(path)


@pytest.mark.parametrize(
    "claimed",
    [
        lambda p: {"course": p.course.pk + 1000},
        lambda p: {"verbs": ["nothing.like.it"]},
        lambda p: {"since": "2999-01-01"},
        lambda p: {"until": "2000-01-01"},
    ],
)
def test_every_filter_kind_is_checked_row_by_row(personas, tmp_path, claimed):
    some_history(personas)
    path, _ = export(tmp_path, "jsonl")
    records = read_records(path, "jsonl")
    head = head_of(path, "jsonl")
    head["filters"] = claimed(personas)
    rewrite(path, "jsonl", records, resign(head))
    with pytest.raises(CommandError, match=r"line 1 \(event #1\): does not match the export"):
        verify(path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_reordered_lines_are_refused(personas, tmp_path, fmt):
    some_history(personas)
    path, _ = export(tmp_path, fmt)
    records = read_records(path, fmt)
    records[3], records[4] = records[4], records[3]
    rewrite(path, fmt, records, head_of(path, fmt))
    with pytest.raises(CommandError, match=r"out of order|does not link"):
        verify(path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_reordering_or_dropping_lines_of_a_filtered_export_is_refused(personas, tmp_path, fmt):
    some_history(personas)
    path, _ = export(tmp_path, fmt, "--project", str(personas.project.pk))
    records = read_records(path, fmt)
    head = head_of(path, fmt)
    rewrite(path, fmt, records[:-1], {**head, "rows": head["rows"] - 1})
    with pytest.raises(CommandError, match="body_sha256"):
        verify(path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_file_verifies_only_with_the_servers_key(personas, tmp_path, fmt):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from lifecycle import signing

    some_history(personas)
    path, _ = export(tmp_path, fmt)
    published = tmp_path / "server.pub"
    published.write_text(signing.public_key_text())
    call_command("verify_audit", "--file", str(path), "--public-key", str(published))
    stranger = tmp_path / "stranger.pub"
    stranger.write_text(signing.public_key_text(Ed25519PrivateKey.generate().public_key()))
    with pytest.raises(CommandError, match="names signing key"):
        call_command("verify_audit", "--file", str(path), "--public-key", str(stranger))
    head = head_of(path, fmt)
    del head["signature"]
    rewrite(path, fmt, read_records(path, fmt), head)
    with pytest.raises(CommandError, match="it is not signed"):
        verify(path)


def test_a_version_1_row_with_an_actor_name_is_refused(personas, tmp_path):
    append_events(draft_saves(personas, 3))
    path, out = export(tmp_path, "jsonl")
    assert "0 gaps" in out
    records = read_records(path, "jsonl")
    index = next(i for i, r in enumerate(records) if r["hash_version"] == 1)
    assert records[index]["actor_name"] == ""
    records[index]["actor_name"] = "Alice"
    rewrite(path, "jsonl", records, head_of(path, "jsonl"))
    with pytest.raises(CommandError, match="version 1 event has no recorded actor_name"):
        verify(path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_version_1_and_version_2_events_export_and_verify_together(personas, tmp_path, fmt):
    append_events(draft_saves(personas, 5))
    some_history(personas)
    path, out = export(tmp_path, fmt)
    versions = {r["hash_version"] for r in read_records(path, fmt)}
    assert versions == {1, 2}
    assert "0 gaps" in out


# --- The two paths: COPY on PostgreSQL and Python, byte for byte -------------------------

AWKWARD = [
    *INJECTION_CORPUS,
    "'quoted",
    'a "quote", and a comma',
    "two\nlines",
    "carriage\rreturn",
    "tab\tinside",
    "ünïcödé ☃ 𝄞",
    "control \x01\x1f chars",
    "back\\slash",
    "",
]


def awkward_history(personas: Any) -> None:
    some_history(personas)
    with_flagged_override(personas)
    other_course = CourseFactory()
    enrol(other_course, personas.oscar, Role.STUDENT)
    services.project_create(course=other_course, actor=personas.oscar, title="=Elsewhere")
    append_events(
        {
            "actor_id": personas.alice.pk,
            "actor_label": text,
            "verb": text or "x",
            "object_type": "lifecycle.project",
            "object_id": text,
            "course_id": personas.course.pk,
            "project_id": personas.project.pk,
            "old": -1 if i % 2 else None,
            "new": {
                "answer": text,
                "a": [1, 2.5, True, None, {"zz": text, "b": -3}],
                "longer key": {"": 0},
            },
        }
        for i, text in enumerate(AWKWARD)
    )
    more_history(personas)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="COPY is PostgreSQL's")
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("scope", ["all", "course", "project-and-verbs"])
def test_the_copy_path_writes_the_same_bytes_as_the_python_path(personas, fmt, scope):
    import time_machine

    awkward_history(personas)
    filters = {
        "all": exports.ExportFilters(),
        "course": exports.ExportFilters(course_id=personas.course.pk),
        "project-and-verbs": exports.ExportFilters(
            project_id=personas.project.pk, verbs=("stage.submit", "stakeholder.add")
        ),
    }[scope]
    head = exports.chain_head_at()
    with time_machine.travel("2026-11-30 12:00:00Z", tick=False):
        fast = b"".join(exports.stream_export(fmt, filters, head, fast=True))
        slow = b"".join(exports.stream_export(fmt, filters, head, fast=False))
    assert fast.count(b"\n") > 3
    assert fast == slow


@pytest.mark.parametrize("fmt", FORMATS)
def test_awkward_content_round_trips_and_verifies(personas, tmp_path, fmt):
    awkward_history(personas)
    _, out = export(tmp_path, fmt)
    assert f"{AuditEvent.objects.count()} events, 0 gaps" in out
    _, out = export(tmp_path, fmt, "--course", str(personas.course.pk))
    assert "filtered export" in out


@pytest.mark.skipif(connection.vendor != "postgresql", reason="COPY is PostgreSQL's")
@pytest.mark.parametrize(
    "in_transaction",
    [
        pytest.param(True, marks=pytest.mark.django_db),
        pytest.param(False, marks=pytest.mark.django_db(transaction=True)),
    ],
)
def test_an_abandoned_copy_download_leaves_the_connection_usable(personas, in_transaction):
    assert connection.in_atomic_block == in_transaction
    append_events(draft_saves(personas, 20_000), batch_size=10_000)
    head = exports.chain_head_at()
    stream = exports.stream_export("csv", exports.ExportFilters(), head, fast=True)
    first = next(iter(stream))
    assert first.startswith(b"seq,at,")
    stream.close()
    assert AuditEvent.objects.filter(seq=1).exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="COPY is PostgreSQL's")
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("scope", ["all", "course"])
def test_a_written_copy_export_is_the_python_paths_file_and_its_head(
    personas, tmp_path, fmt, scope
):
    import time_machine

    awkward_history(personas)
    filters = exports.ExportFilters(course_id=personas.course.pk if scope == "course" else None)
    fast, slow = tmp_path / f"fast.{fmt}", tmp_path / f"slow.{fmt}"
    with time_machine.travel("2026-11-30 12:00:00Z", tick=False):
        heads = [
            exports.write_export(str(path), fmt, filters, fast=is_fast)
            for path, is_fast in ((fast, True), (slow, False))
        ]
    assert fast.read_bytes() == slow.read_bytes()
    assert heads[0] == heads[1]
    head = heads[0]["chain_head"]
    assert head["count"] == AuditEvent.objects.count() == head["last_seq"]
    assert head["rows"] == (
        AuditEvent.objects.filter(course=personas.course).count()
        if scope == "course"
        else AuditEvent.objects.count()
    )
    assert ("filtered export" if scope == "course" else "0 gaps") in verify(fast)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="COPY is PostgreSQL's")
@pytest.mark.parametrize("scope", ["all", "course"])
def test_a_copy_export_asks_django_for_the_chain_head_only(personas, tmp_path, scope):
    """The body and its row count come from COPY; the chain's count from the head's one query
    (a filtered export) or from the rows themselves (an unfiltered one)."""
    some_history(personas)
    filters = exports.ExportFilters(course_id=personas.course.pk if scope == "course" else None)
    with CaptureQueriesContext(connection) as captured:
        exports.write_export(str(tmp_path / "trail.jsonl"), "jsonl", filters)
    sql = [q["sql"] for q in captured.captured_queries]
    assert len(sql) == 1, sql
    assert ("count(*)" in sql[0]) == (scope == "course")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="COPY is PostgreSQL's")
@pytest.mark.parametrize(
    "in_transaction",
    [
        pytest.param(True, marks=pytest.mark.django_db),
        pytest.param(False, marks=pytest.mark.django_db(transaction=True)),
    ],
)
def test_a_copy_export_leaves_no_planner_setting_behind(personas, tmp_path, in_transaction):
    assert connection.in_atomic_block == in_transaction
    some_history(personas)
    filters = exports.ExportFilters(course_id=personas.course.pk)
    exports.write_export(str(tmp_path / "trail.csv"), "csv", filters, fast=True)
    b"".join(exports.stream_export("jsonl", filters, exports.chain_head_at(), fast=True))
    with connection.cursor() as cursor:
        cursor.execute("SHOW enable_sort")
        assert cursor.fetchone()[0] == "on"
    assert connection.in_atomic_block == in_transaction
    assert AuditEvent.objects.filter(seq=1).exists()


@pytest.mark.parametrize("fast", [True, False])
def test_a_heads_count_is_the_chains_up_to_its_last_event_not_what_came_after(personas, fast):
    if fast and connection.vendor != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    some_history(personas)
    pinned = exports.chain_head_at(counted=False)
    assert pinned.count is None
    append_events(draft_saves(personas, 5))  # the course keeps working during the download
    assert exports.chain_head_at(pinned.last_seq).count == pinned.last_seq
    assert exports.chain_head_at().count == pinned.last_seq + 5
    course = exports.ExportFilters(course_id=personas.course.pk)
    lines = b"".join(exports.stream_export("jsonl", course, pinned, fast=fast)).splitlines()
    head = json.loads(lines[-1])["chain_head"]
    assert (head["count"], head["last_seq"]) == (pinned.last_seq, pinned.last_seq)
    assert head["rows"] == len(lines) - 1
    everything = b"".join(
        exports.stream_export("jsonl", exports.ExportFilters(), pinned, fast=fast)
    ).splitlines()
    assert json.loads(everything[-1])["chain_head"]["count"] == pinned.last_seq
