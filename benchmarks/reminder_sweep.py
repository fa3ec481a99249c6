r"""Benchmark: the daily reminder sweep (notifications.reminders.sweep_reminders) over many pending
review assignments. Prints the SQL statements it runs and its wall time; not a test.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/lrb_bench \
        .venv/bin/python benchmarks/reminder_sweep.py

(`make bench` runs it with that URL.) PostgreSQL only. The database named in DATABASE_URL (its
name must contain "bench") is dropped, re-created and migrated, then cloned into a fresh
database for each scenario; all of them are dropped at the end (`--keep` keeps them).

Each scenario: active projects whose stage 1 has waited 10 days in review, and N reviewer
assignments spread evenly over them, none decided. The course reminds every 3 days, at most
twice, so every assignment is past its reminders and due an escalation to the course's two
staff: the table shows the Reminder and Notification rows the sweep wrote. The sweep is timed
with every SQL statement counted (a connection execute_wrapper); then it runs again and must
create nothing.
Notifications are queued on Celery's in-memory transport, so the count is the sweep's own SQL;
the time spent queuing one delivery task per notification is shown separately.

The statement count should be the same at 2,000 and 10,000 assignments (it grows with the
number of batches of 500 in-review stages, not with assignments): the third scenario has 1,000
projects, two batches.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchdb

SCENARIOS = [(200, 2_000), (200, 10_000), (1_000, 10_000)]  # (projects, assignments)
PROJECTS_PER_COURSE = 20
WAITING = dt.timedelta(days=10)


def build(projects: int, assignments: int) -> None:
    """Courses, people, projects with stage 1 in review, and pending assignments (bulk)."""
    from django.utils import timezone

    from accounts.models import User
    from lifecycle.default_template import install_default_template
    from lifecycle.models import (
        Course,
        Membership,
        Project,
        ProjectStage,
        Role,
        StageRevision,
        StageStatus,
    )
    from reviews.models import ReviewAssignment

    now = timezone.now()
    since = now - WAITING
    template = install_default_template()
    definitions = list(template.stages.order_by("order"))
    first = definitions[0]
    n_courses = max(1, projects // PROJECTS_PER_COURSE)
    per_project = assignments // projects

    courses = Course.objects.bulk_create(
        Course(
            title=f"Bench course {i}",
            code=f"bench-{i}",
            template=template,
            reminder_interval_days=3,
            reminder_limit=2,
        )
        for i in range(n_courses)
    )

    def people(prefix: str, n: int) -> list[User]:
        return User.objects.bulk_create(
            User(email=f"{prefix}{i}@bench.test", display_name=f"{prefix} {i}", password="!")
            for i in range(n)
        )

    staff = people("staff", 2 * n_courses)
    students = people("student", 2 * projects)
    reviewers = people("reviewer", per_project)
    memberships = [
        Membership(course=c, user=staff[2 * i + k], role=(Role.INSTRUCTOR, Role.TA)[k])
        for i, c in enumerate(courses)
        for k in (0, 1)
    ]
    memberships += [
        Membership(course=courses[(i // 2) // PROJECTS_PER_COURSE % n_courses], user=s)
        for i, s in enumerate(students)
    ]
    Membership.objects.bulk_create(memberships, batch_size=5_000)

    rows = Project.objects.bulk_create(
        Project(
            course=courses[i // PROJECTS_PER_COURSE % n_courses],
            template=template,
            title=f"Bench project {i}",
            created_by=students[2 * i],
            created_at=since,
        )
        for i in range(projects)
    )
    Project.members.through.objects.bulk_create(
        [
            Project.members.through(project_id=p.pk, user_id=students[2 * i + k].pk)
            for i, p in enumerate(rows)
            for k in (0, 1)
        ],
        batch_size=5_000,
    )
    stages = ProjectStage.objects.bulk_create(
        [
            ProjectStage(
                project=p,
                definition=d,
                cycle=1,
                status=StageStatus.IN_REVIEW if d.pk == first.pk else StageStatus.LOCKED,
                opened_at=since if d.pk == first.pk else None,
                submitted_at=since if d.pk == first.pk else None,
            )
            for p in rows
            for d in definitions
        ],
        batch_size=5_000,
    )
    in_review = [s for s in stages if s.definition_id == first.pk]
    revisions = StageRevision.objects.bulk_create(
        StageRevision(
            stage=s,
            number=1,
            answers={},
            content_sha256="0" * 64,
            created_by=students[2 * i],
            created_at=since,
        )
        for i, s in enumerate(in_review)
    )
    for stage, revision in zip(in_review, revisions, strict=True):
        stage.current_revision = revision
    ProjectStage.objects.bulk_update(in_review, ["current_revision"], batch_size=1_000)
    for project, stage in zip(rows, in_review, strict=True):
        project.current_stage = stage
    Project.objects.bulk_update(rows, ["current_stage"], batch_size=1_000)
    ReviewAssignment.objects.bulk_create(
        (
            ReviewAssignment(
                project=p,
                stage_definition=first,
                reviewer=r,
                role="expert",
                assigned_by=staff[2 * (i // PROJECTS_PER_COURSE % n_courses)],
                created_at=since,
            )
            for i, p in enumerate(rows)
            for r in reviewers
        ),
        batch_size=5_000,
    )


class StatementCounter:
    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()

    def __call__(self, execute, sql, params, many, context):
        self.kinds[sql.lstrip().split(None, 1)[0].upper()] += 1
        return execute(sql, params, many, context)

    @property
    def total(self) -> int:
        return sum(self.kinds.values())


def measure() -> dict:
    from django.db import connection

    from notifications import reminders, tasks
    from notifications.models import Notification, Reminder

    queued = {"seconds": 0.0, "tasks": 0}
    original = tasks.enqueue_delivery

    def timed_enqueue(ids):
        ids = list(ids)
        started = time.perf_counter()
        original(ids)
        queued["seconds"] += time.perf_counter() - started
        queued["tasks"] += len(ids)

    tasks.enqueue_delivery = timed_enqueue
    try:
        runs = []
        for _ in range(2):
            counter = StatementCounter()
            queued.update(seconds=0.0, tasks=0)
            with connection.execute_wrapper(counter):
                started = time.perf_counter()
                result = reminders.sweep_reminders()
                wall = time.perf_counter() - started
            runs.append({"result": result, "wall": wall, "sql": counter, **queued})
    finally:
        tasks.enqueue_delivery = original
    return {
        "runs": runs,
        "reminders": Reminder.objects.count(),
        "notifications": Notification.objects.count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    args = parser.parse_args()

    parsed = benchdb.bench_database_url()
    base = parsed["NAME"]
    # Delivery tasks go to Celery's in-memory transport: no broker, no SQL, nothing sent.
    os.environ["CELERY_BROKER_URL"] = "memory://localhost/"
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "0"
    benchdb.create_database(parsed, base)
    benchdb.setup_django()

    from django.core.management import call_command
    from django.db import connection

    from notifications.reminders import BATCH

    call_command("migrate", verbosity=0)
    with connection.cursor() as cur:
        cur.execute("SHOW server_version")
        version = cur.fetchone()[0]
    connection.close()
    print(
        f"PostgreSQL {version}, Python {platform.python_version()}, {os.cpu_count()} CPUs; "
        f"batch size {BATCH} in-review stages"
    )
    header = (
        f"{'projects':>8} {'assignments':>11} | {'SQL':>4} {'of which':<34} | {'wall s':>7} "
        f"{'queue s':>7} | {'reminders':>9} {'notifs':>7} | {'again: SQL':>10} {'new':>3} "
        f"{'wall s':>6}"
    )
    print(header)
    print("-" * len(header))
    scenarios = []
    try:
        for projects, assignments in SCENARIOS:
            name = f"{base}_{projects}p_{assignments}a"
            scenarios.append(name)
            benchdb.create_database(parsed, name, template=base)
            benchdb.use_database(name)
            started = time.perf_counter()
            build(projects, assignments)
            setup = time.perf_counter() - started
            m = measure()
            first, again = m["runs"]
            kinds = ", ".join(f"{v} {k}" for k, v in sorted(first["sql"].kinds.items()))
            new_again = sum(again["result"].values())
            print(
                f"{projects:>8,} {assignments:>11,} | {first['sql'].total:>4} {kinds:<34} | "
                f"{first['wall']:>7.2f} {first['seconds']:>7.2f} | {m['reminders']:>9,} "
                f"{m['notifications']:>7,} | {again['sql'].total:>10} {new_again:>3} "
                f"{again['wall']:>6.2f}",
                flush=True,
            )
            assert new_again == 0, "the second sweep created reminders"
            print(f"{'':>21}(setup {setup:.1f} s; {first['tasks']:,} delivery tasks queued)")
            connection.close()
    finally:
        connection.close()
        if not args.keep:
            for name in [*scenarios, base]:
                benchdb.drop_database(parsed, name)


if __name__ == "__main__":
    main()
