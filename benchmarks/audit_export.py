r"""Benchmark: exporting the whole audit trail as CSV and as JSON Lines (lifecycle.exports, the
COPY fast path on PostgreSQL), and one course's trail, against PostgreSQL's own
``COPY (SELECT ...) TO STDOUT WITH CSV`` of the same columns as the ceiling. Not a test.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/lrb_bench \
        .venv/bin/python benchmarks/audit_export.py [--events 1000000] [--keep] [--reuse]
        [--rounds 3]

PostgreSQL only. The database ``<name>_audit`` (the DATABASE_URL's name must contain "bench")
is dropped, created and migrated; one course with 300 projects is made through the services,
then ``--events`` audit events with a correct hash chain computed here are loaded with COPY
FROM (an INSERT: the append-only triggers allow it), hashed with ``lifecycle.audit.event_hash``
(version 2), spread over two courses (the second one holds one event in ten). The database is
dropped at the end unless ``--keep``; ``--reuse`` takes a kept one as it is.

The export runs in a child process so that its peak RSS (resource.getrusage) is the export's
own, printed beside the same process's RSS just before it started. The file it writes is then
verified from the file alone (lifecycle.exports.verify_export_file), also timed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchdb

PROJECTS = 300
COPY_BATCH = 50_000
VERBS = ["stage.draft_save"] * 6 + ["stage.submit", "stage.approve", "stakeholder.add"]


def build(events: int) -> None:
    """A course, 300 student projects (services), then the chain loaded with COPY FROM."""
    import csv

    from django.db import connection
    from django.utils import timezone

    from accounts.models import User
    from lifecycle import services
    from lifecycle.audit import GENESIS_HASH, canonical_json, event_hash
    from lifecycle.default_template import install_default_template
    from lifecycle.models import AuditEvent, Course, Membership, Role

    template = install_default_template()
    course = Course.objects.create(title="Deep Learning", code="dl-bench", template=template)
    other = Course.objects.create(title="Other course", code="other-bench", template=template)
    instructor = User.objects.create_user("prof@example.test", display_name="Prof")
    Membership.objects.create(course=course, user=instructor, role=Role.INSTRUCTOR)
    students = []
    projects = []
    for i in range(PROJECTS):
        student = User.objects.create_user(f"student{i}@example.test", display_name=f"S {i}")
        Membership.objects.create(course=course, user=student, role=Role.STUDENT)
        students.append(student)
        projects.append(services.project_create(course=course, actor=student, title=f"Project {i}"))
    last = AuditEvent.objects.order_by("-seq").values_list("seq", "hash").first()
    seq, prev = last if last else (0, GENESIS_HASH)
    start = timezone.now() - dt.timedelta(days=120)
    columns = (
        "seq, created_at, actor_id, actor_label, actor_name, verb, object_type, object_id, "
        "course_id, project_id, old, new, flagged, hash_version, prev_hash, hash"
    )
    remaining = events - seq
    with connection.cursor() as cursor:
        while remaining > 0:
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            for _ in range(min(COPY_BATCH, remaining)):
                seq += 1
                k = seq % PROJECTS
                student, project = students[k], projects[k]
                at = start + dt.timedelta(milliseconds=seq * 7)
                verb = VERBS[seq % len(VERBS)]
                new = {"answer": f"Revision {seq} of the data card", "question": "data_sources"}
                old = {"answer": f"Revision {seq - 1} of the data card"} if seq % 3 else None
                course_id = other.pk if seq % 10 == 0 else course.pk
                digest = event_hash(
                    hash_version=2,
                    seq=seq,
                    created_at=at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    actor_id=student.pk,
                    actor_label=student.email,
                    actor_name=student.name,
                    verb=verb,
                    object_type="lifecycle.project",
                    object_id=str(project.pk),
                    course_id=course_id,
                    project_id=project.pk,
                    old=old,
                    new=new,
                    flagged=False,
                    prev_hash=prev,
                )
                writer.writerow(
                    [
                        seq,
                        at.isoformat(),
                        student.pk,
                        student.email,
                        student.name,
                        verb,
                        "lifecycle.project",
                        project.pk,
                        course_id,
                        project.pk,
                        canonical_json(old) if old is not None else None,
                        canonical_json(new),
                        "f",
                        2,
                        prev,
                        digest,
                    ]
                )
                prev = digest
                remaining -= 1
            buffer.seek(0)
            cursor.cursor.copy_expert(
                f"COPY lifecycle_auditevent ({columns}) FROM STDIN WITH (FORMAT csv)", buffer
            )
    connection.close()


def rss_mb() -> float:
    """Peak RSS so far. Linux carries ru_maxrss over from the parent across fork and exec, so
    the child's figure would be at least this (large) parent's; VmHWM, the high-water mark of
    the process's own address space, starts afresh at exec. Report the larger that is honest:
    VmHWM where /proc has it, else getrusage."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def export_child(path: str, fmt: str, course: int | None) -> None:
    """Runs in its own process: export every event (or one course's) to ``path``; print JSON."""
    benchdb.setup_django()
    from django.db import connection

    from lifecycle.exports import ExportFilters, write_export

    connection.ensure_connection()
    before = rss_mb()
    # Both sides warm, on the same connection: one COPY and one export first (the backend's
    # catalog, the functions each statement calls and the table's pages read once; this
    # process's first export also loads the signing key), then the export that is timed, then
    # the COPY that is its ceiling. A served export runs in a long-lived worker: at 3,000
    # events a first export in a fresh process and backend costs 15 ms against 13 ms.
    copy_ceiling(course)
    write_export(path, fmt, ExportFilters(course_id=course))
    started = time.perf_counter()
    head = write_export(path, fmt, ExportFilters(course_id=course))["chain_head"]
    seconds = time.perf_counter() - started
    ceiling_rows, ceiling_seconds, _ = copy_ceiling(course)
    print(
        json.dumps(
            {
                "rows": head["rows"],
                "seconds": seconds,
                "copy_rows": ceiling_rows,
                "copy_seconds": ceiling_seconds,
                "rss_before": before,
                "rss_peak": rss_mb(),
                "getrusage_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


class _Sink(io.RawIOBase):
    def __init__(self) -> None:
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.size += len(data)
        return len(data)


def copy_ceiling(course: int | None = None) -> tuple[int, float, int]:
    """The same columns (UTC ISO times, JSON text) through a plain COPY TO STDOUT."""
    from django.db import connection

    where = f"WHERE e.course_id = {int(course)}" if course else ""
    sql = f"""
        COPY (
            SELECT e.seq,
                   to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                   e.actor_id, e.actor_name, e.actor_label, e.verb, e.object_type, e.object_id,
                   e.course_id, e.project_id, e.old::text, e.new::text, e.flagged,
                   e.hash_version, e.prev_hash, e.hash
            FROM lifecycle_auditevent e {where}
            ORDER BY e.seq
        ) TO STDOUT WITH (FORMAT csv, HEADER)
    """
    sink = _Sink()
    with connection.cursor() as cursor:
        started = time.perf_counter()
        cursor.cursor.copy_expert(sql, sink)
        seconds = time.perf_counter() - started
        cursor.execute(f"SELECT count(*) FROM lifecycle_auditevent e {where}")
        rows = cursor.fetchone()[0]
    return rows, seconds, sink.size


def run_export(folder: str, fmt: str, course: int | None) -> dict[str, float]:
    path = os.path.join(folder, f"trail-{course or 'all'}.{fmt}")
    child = subprocess.run(
        [sys.executable, __file__, "--export-child", path, "--format", fmt]
        + (["--course", str(course)] if course else []),
        check=True,
        capture_output=True,
        text=True,
        env=os.environ,
    )
    result = json.loads(child.stdout.strip().splitlines()[-1])
    result["size"] = os.path.getsize(path)
    result["path"] = path  # type: ignore[assignment]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--reuse", action="store_true", help="use a kept database as it is")
    parser.add_argument("--rounds", type=int, default=3, help="export/COPY rounds per figure")
    parser.add_argument("--export-child", help=argparse.SUPPRESS)
    parser.add_argument("--format", default="csv", help=argparse.SUPPRESS)
    parser.add_argument("--course", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export_child:
        export_child(args.export_child, args.format, args.course)
        return

    print("$ " + " ".join(["DATABASE_URL=" + os.environ.get("DATABASE_URL", ""), *sys.argv]))
    parsed = benchdb.bench_database_url()
    name = parsed["NAME"] + "_audit"
    if not args.reuse:
        benchdb.create_database(parsed, name)
    os.environ["DATABASE_URL"] = benchdb.database_url(parsed, name)
    benchdb.setup_django()

    from django.core.management import call_command
    from django.db import connection

    from lifecycle.exports import verify_export_file
    from lifecycle.models import Course

    try:
        if not args.reuse:
            call_command("migrate", verbosity=0)
        with connection.cursor() as cur:
            cur.execute("SHOW server_version")
            version = cur.fetchone()[0]
        print(f"PostgreSQL {version}, Python {platform.python_version()}, {os.cpu_count()} CPUs")
        if not args.reuse:
            started = time.perf_counter()
            build(args.events)
            print(
                f"setup: {args.events:,} audit events over {PROJECTS} projects "
                f"in {time.perf_counter() - started:.1f} s"
            )
        course = Course.objects.get(code="dl-bench").pk
        print(f"load average before the exports: {os.getloadavg()}")
        with tempfile.TemporaryDirectory() as folder:
            for fmt, scope in (("csv", None), ("jsonl", None), ("csv", course), ("jsonl", course)):
                label = f"{fmt}_{'course' if scope else 'all'}"
                ratios, peaks = [], []
                # Rounds alternate the export and the COPY ceiling, so that a change in the
                # machine's load falls on both; the median ratio is the figure.
                for round_number in range(args.rounds):
                    export = run_export(folder, fmt, scope)
                    rows, copy_seconds, copy_bytes = copy_ceiling(scope)
                    assert rows == export["rows"], (rows, export["rows"])
                    export_rate = export["rows"] / export["seconds"]
                    copy_rate = rows / copy_seconds
                    ratios.append(export_rate / copy_rate)
                    peaks.append(export["rss_peak"])
                    print(
                        f"{label:12} round {round_number + 1}: {export['rows']:,} rows in "
                        f"{export['seconds']:.1f} s = {export_rate:,.0f} rows/s, "
                        f"{export['size'] / 1e6:.0f} MB; COPY {copy_seconds:.1f} s = "
                        f"{copy_rate:,.0f} rows/s, {copy_bytes / 1e6:.0f} MB; ratio "
                        f"{ratios[-1]:.2f}; peak RSS {export['rss_peak']:.0f} MB "
                        f"(growth {export['rss_peak'] - export['rss_before']:.0f} MB); "
                        f"load {os.getloadavg()[0]:.1f}"
                    )
                print(
                    f"RATIO export_{label}_vs_copy {statistics.median(ratios):.2f} "
                    f"(rounds {', '.join(f'{r:.2f}' for r in ratios)}; "
                    f"peak RSS {max(peaks):.0f} MB)"
                )
                if scope is None:
                    started = time.perf_counter()
                    report = verify_export_file(str(export["path"]))
                    seconds = time.perf_counter() - started
                    print(
                        f"verify --file {fmt:5}: "
                        f"{'intact' if report.intact else report.describe_break()}, "
                        f"{report.rows:,} rows in {seconds:.1f} s = "
                        f"{report.rows / seconds:,.0f} rows/s"
                    )
                print(f"load average: {os.getloadavg()}")
    finally:
        connection.close()
        if not args.keep:
            benchdb.drop_database(parsed, name)


if __name__ == "__main__":
    main()
