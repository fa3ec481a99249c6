r"""Quick measurement: query count and server time of each page at 300 projects; not a test.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/lrb_bench \
        .venv/bin/python benchmarks/page_costs.py [--runs 5] [--keep]

PostgreSQL only; the database ``<name>_pages`` is dropped, created, migrated and seeded with
board_view.build() (a course of 300 projects, 10,000 decisions and 10,000 audit events, and a
second course of 30), plus 500 notifications for one student. Each page is requested once to
warm up, then ``--runs`` times with django.test.Client: the median server time (perf_counter
around client.get()), the median CPU time of this process (process_time: the app's Python, not
PostgreSQL's, and steadier than wall time on a shared machine), the query count, and the
response size.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchdb
import board_view


def pages(course) -> list[tuple[str, object, str]]:
    from django.urls import reverse

    from lifecycle.models import Membership, Project, Role, StageStatus
    from notifications.models import Notification

    project = (
        Project.objects.filter(course=course, current_stage__status=StageStatus.IN_REVIEW)
        .order_by("pk")
        .first()
    )
    student = project.members.order_by("pk").first()
    stage = project.current_stage
    ta = Membership.objects.filter(course=course, role=Role.TA).order_by("pk").first().user
    instructor = Membership.objects.filter(course=course, role=Role.INSTRUCTOR).first().user
    Notification.objects.bulk_create(
        Notification(
            recipient=student,
            email=student.email,
            kind="review_requested",
            subject=f"Notification {i}",
            dedupe_key=f"page-costs-{i}",
        )
        for i in range(500)
    )
    return [
        ("home (student)", student, reverse("home")),
        ("home (instructor)", instructor, reverse("home")),
        ("project overview", student, project.get_absolute_url()),
        ("stage page", student, stage.get_absolute_url()),
        ("review page", ta, reverse("reviews:review_stage", args=[stage.pk])),
        ("inbox (TA)", ta, reverse("reviews:inbox")),
        ("board", instructor, reverse("reviews:board", args=[course.pk])),
        ("course page", instructor, reverse("lifecycle:course_detail", args=[course.pk])),
        ("notification centre", student, reverse("notifications:list")),
        ("audit page", instructor, reverse("lifecycle:audit_export", args=[course.pk])),
    ]


def measure(label: str, user, url: str, runs: int) -> str:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 200, (label, response.status_code)
    times, cpu, counts = [], [], set()
    for _ in range(runs):
        with CaptureQueriesContext(connection) as queries:
            started, started_cpu = time.perf_counter(), time.process_time()
            response = client.get(url)
            cpu.append((time.process_time() - started_cpu) * 1000)
            times.append((time.perf_counter() - started) * 1000)
        counts.add(len(queries))
    return (
        f"PAGE {label:<22} median_ms {statistics.median(times):8.1f}  "
        f"app_cpu_ms {statistics.median(cpu):8.1f}  "
        f"queries {'/'.join(map(str, sorted(counts))):>5}  KB {len(response.content) / 1024:6.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    parsed = benchdb.bench_database_url()
    name = parsed["NAME"] + "_pages"
    benchdb.create_database(parsed, name)
    os.environ["DATABASE_URL"] = benchdb.database_url(parsed, name)
    benchdb.setup_django()
    from django.core.management import call_command
    from django.db import connection

    try:
        call_command("migrate", verbosity=0)
        data = board_view.build("pages-300", 300, 10_000, 10_000, seed=1)
        board_view.build("pages-30", 30, 1_000, 1_000, seed=2)
        with connection.cursor() as cur:
            cur.execute("ANALYZE")
        print(f"load average {os.getloadavg()[0]:.2f}; {args.runs} runs per page", flush=True)
        for label, user, url in pages(data["course"]):
            print(measure(label, user, url, args.runs), flush=True)
        print(f"load average {os.getloadavg()[0]:.2f}")
    finally:
        connection.close()
        if not args.keep:
            benchdb.drop_database(parsed, name)


if __name__ == "__main__":
    main()
