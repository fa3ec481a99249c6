r"""The benchmark suite's data (benchmarks/bench_suite.py): three sizes, each a PostgreSQL
database of its own, seeded with COPY and reused between runs.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/lrb_bench \
        .venv/bin/python benchmarks/bench_seed.py small [medium large] [--force]

===========  =============================  ==================================================
size         database                       data
===========  =============================  ==================================================
``small``    ``lrb_bench_small``            1 course, 30 projects, 3,000 audit events
``medium``   ``lrb_bench_medium``           1 course, 300 projects, 30,000 audit events
``large``    ``lrb_bench_large``            100 courses of 300 projects (30,000), 10,000,000
                                            audit events in total
===========  =============================  ==================================================

The database name is the DATABASE_URL's name with ``_<size>`` appended (so ``lrb_bench`` gives
the names above; it must contain "bench"). The first course is the one under test; its
personas (a student of project 0, the instructor, the first TA) are what the suite signs in as.

Every table is written with ``COPY … FROM STDIN`` from rows built here with primary keys
assigned in advance (no ORM save, no bulk_create), in the shape of benchmarks/board_view.py:
projects spread over the seven stages, revisions, reviewer assignments, decisions (some
replaced), notifications. Foreign keys and the append-only triggers are not checked while
copying (``session_replication_role = replica``); the rows are consistent by construction.

The audit events are one valid hash chain over all of them, in seq order: each event's hash is
``lifecycle.audit.hash_payload(lifecycle.audit.event_payload(...))``, the project's own functions,
computed here in Python and streamed into COPY, so the chain follows whatever those functions do.
``manage.py verify_audit`` (or lifecycle.audit's verifier) accepts it.

A table ``bench_seed`` records the seeder's version (seed_version(): a hash of the seeding code
here and of the hashes lifecycle.audit gives two sample events). A database whose version
matches is reused, after ``migrate`` has applied any migration added since; otherwise it is
dropped and seeded again (``--force`` always reseeds).

Seeding is resumable. The courses commit in one transaction together with an incomplete
``bench_seed`` row; the audit events then commit in batches of EVENT_CHUNK (500,000), each with
the count written so far, so a seed that is killed (the large size takes from ten minutes on an
idle machine to over half an hour on a loaded one) continues where it stopped on the next run
of the same version, and the random-key indexes dropped for the COPY are rebuilt at the end.
One seeder at a time per database (a PostgreSQL advisory lock): ``make bench`` started while
``bench_seed.py large`` runs waits for it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import json
import os
import random
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchdb

SIZES: dict[str, dict[str, int]] = {
    "small": {"courses": 1, "projects": 30, "events": 3_000},
    "medium": {"courses": 1, "projects": 300, "events": 30_000},
    "large": {"courses": 100, "projects": 300, "events": 10_000_000},
}
TAS, EXPERTS, STUDENTS = 3, 6, 3
STAGE_WEIGHTS = [10, 18, 22, 20, 14, 10, 6]
NOTIFICATIONS_PER_PROJECT = 12
COPY_ROWS = 20_000
EVENT_ROWS = 100_000  # a COPY
EVENT_CHUNK = 500_000  # a transaction (the unit of resuming)
VERBS = ["stage.draft_save"] * 6 + ["stage.submit", "decision.record", "stage.approve"]
PASSWORD = "bench-password-1"  # every seeded user's; the suite signs in with sessions anyway


def database_name(size: str) -> str:
    return benchdb.bench_database_url()["NAME"] + "_" + size


def seed_version() -> str:
    """What the data depends on: the seeding code here (its syntax tree; not the command line)
    and the audit scheme (the hashes lifecycle.audit gives two sample events). New migrations
    do not call for a reseed: ensure() applies them to the data that is there. Django must be
    set up."""
    global _SEED_VERSION
    if _SEED_VERSION is None:
        digest = hashlib.sha256(_CODE_DIGEST.encode())
        digest.update(_audit_fingerprint().encode())
        _SEED_VERSION = digest.hexdigest()[:16]
    return _SEED_VERSION


def _code_digest() -> str:
    import ast

    parts = ("_text", "Copier", "build_course", "event_rows", "drop_random_indexes")
    parts += ("copy_events", "seed", "courses_in_database", "seed_events")
    tree = ast.parse(Path(__file__).read_text())
    nodes = {getattr(node, "name", None): node for node in tree.body}
    digest = hashlib.sha256(repr((SIZES, EVENT_CHUNK)).encode())
    for part in parts:
        # The syntax tree: reformatting or a comment does not call for a reseed.
        digest.update(ast.dump(ast.Module(body=[nodes[part]], type_ignores=[])).encode())
    return digest.hexdigest()


def _audit_fingerprint() -> str:
    """What the audit scheme does (not how lifecycle/audit.py is written): the hashes of two
    sample events, so a faster implementation of the same chain does not call for a reseed."""
    from lifecycle.audit import event_hash

    sample = dict(
        seq=7,
        created_at="2026-01-02T03:04:05.000006Z",
        actor_id=3,
        actor_label="a@b.test",
        actor_name="Ä name",
        verb="stage.approve",
        object_type="lifecycle.project",
        object_id="9",
        course_id=1,
        project_id=9,
        old={"note": "x", "b": [1, 2]},
        new=None,
        flagged=False,
        prev_hash="0" * 64,
    )
    return event_hash(hash_version=1, **sample) + event_hash(hash_version=2, **sample)


def stored_version(parsed: dict[str, Any], name: str) -> str | None:
    """The complete seed's version in database ``name``, or None."""
    return _ask(
        parsed,
        name,
        "SELECT version FROM bench_seed WHERE complete",
        when="SELECT to_regclass('bench_seed') IS NOT NULL",
    )


def progress(parsed: dict[str, Any], name: str) -> tuple[str, int] | None:
    """An interrupted seed in database ``name``: (its version, audit events written), or None."""
    row = _ask(
        parsed,
        name,
        "SELECT ARRAY[version, events_done::text] FROM bench_seed WHERE NOT complete",
        when="SELECT to_regclass('bench_seed') IS NOT NULL",
    )
    return (row[0], int(row[1])) if row else None


def _others_on(parsed: dict[str, Any], name: str) -> bool:
    """Whether another session is connected to database ``name``."""
    conn = benchdb.admin(parsed)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> "
                "pg_backend_pid()",
                [name],
            )
            return bool(cur.fetchone()[0])
    finally:
        conn.close()


def projects_added(parsed: dict[str, Any], name: str) -> int:
    """Projects the suite's approvals added to database ``name`` since it was seeded."""
    count = _ask(
        parsed,
        name,
        "SELECT count(*) FROM lifecycle_project p JOIN lifecycle_course c ON c.id = p.course_id "
        "WHERE c.code = 'bench-approvals'",
        when="SELECT to_regclass('lifecycle_project') IS NOT NULL",
    )
    return int(count or 0)


def _ask(parsed: dict[str, Any], name: str, query: str, when: str) -> Any:
    import psycopg2

    try:
        conn = psycopg2.connect(
            dbname=name,
            user=parsed["USER"] or None,
            password=parsed["PASSWORD"] or None,
            host=parsed["HOST"] or None,
            port=parsed["PORT"] or None,
        )
    except psycopg2.OperationalError:
        return None
    try:
        with conn.cursor() as cur:
            cur.execute(when)
            if not cur.fetchone()[0]:
                return None
            cur.execute(query)
            row = cur.fetchone()
            return row[0] if row else None
    finally:
        conn.close()


# --- COPY ---------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    """One value in COPY's text format."""
    if value is None:
        return "\\N"
    if value is True:
        return "t"
    if value is False:
        return "f"
    if isinstance(value, dict | list):  # noqa: SIM108
        value = json.dumps(value, ensure_ascii=False)
    else:
        value = str(value)
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        value = (
            value.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    return value


class Copier:
    """Rows of Django models written with COPY in batches; primary keys given out here."""

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor
        self.rows: dict[Any, list[str]] = {}
        self.next_id: dict[Any, int] = {}
        self.columns: dict[Any, list[Any]] = {}
        self.counts: dict[str, int] = {}

    def new_id(self, model: Any) -> int:
        if model not in self.next_id:
            self.cursor.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {model._meta.db_table}")
            self.next_id[model] = self.cursor.fetchone()[0]
        value = self.next_id[model]
        self.next_id[model] += 1
        return value

    def add(self, model: Any, **values: Any) -> int:
        """A row of ``model``: ``values`` by attname (``course_id``), defaults for the rest."""
        if model not in self.columns:
            self.columns[model] = [f for f in model._meta.concrete_fields]
            self.rows[model] = []
        if "id" not in values:
            values["id"] = self.new_id(model)
        cells = []
        for field in self.columns[model]:
            if field.attname in values:
                value = values[field.attname]
            elif field.has_default():
                value = field.get_default()
            elif field.null:
                value = None
            else:
                value = ""
            cells.append(_text(value))
        self.rows[model].append("\t".join(cells))
        if len(self.rows[model]) >= COPY_ROWS:
            self.flush(model)
        return values["id"]

    def flush(self, model: Any) -> None:
        rows = self.rows.get(model)
        if not rows:
            return
        columns = ", ".join(f'"{f.column}"' for f in self.columns[model])
        buffer = io.StringIO("\n".join(rows) + "\n")
        self.cursor.copy_expert(f"COPY {model._meta.db_table} ({columns}) FROM STDIN", buffer)
        label = model._meta.label
        self.counts[label] = self.counts.get(label, 0) + len(rows)
        rows.clear()

    def finish(self) -> None:
        for model in list(self.rows):
            self.flush(model)
        for model in self.next_id:
            table = model._meta.db_table
            self.cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT coalesce(max(id), 1) FROM {table}))"
            )


# --- The data -----------------------------------------------------------------------------------


def build_course(
    copier: Copier,
    *,
    number: int,
    n_projects: int,
    template: Any,
    definitions: list[Any],
    password: str,
    rng: random.Random,
    now: dt.datetime,
) -> dict[str, Any]:
    """One course and its projects. Returns what the audit events and the personas need."""
    from accounts.models import User
    from lifecycle.models import (
        Course,
        Membership,
        Outcome,
        Project,
        ProjectStage,
        ProjectStatus,
        Role,
        StageRevision,
        StageStatus,
    )
    from notifications.models import Notification
    from reviews.models import Decision, DecisionOutcome, ReviewAssignment

    today = now.date()
    start = now - dt.timedelta(days=70)
    code = f"bench-{number}"
    n_stages = len(definitions)
    course_id = copier.add(
        Course,
        title=f"Responsible ML {number} ({n_projects} projects)",
        code=code,
        join_code=f"B{number:07d}",
        template_id=template.pk,
        created_at=start,
    )

    def person(prefix: str, i: int) -> tuple[int, str]:
        email = f"{prefix}{i}@{code}.test"
        pk = copier.add(
            User,
            email=email,
            display_name=f"{prefix.title()} {i} of {code}",
            password=password,
            date_joined=start,
            email_verified_at=start,
            is_active=True,
            is_superuser=False,
            is_staff=False,
        )
        return pk, email

    instructor = person("instructor", 0)
    tas = [person("ta", i) for i in range(TAS)]
    experts = [person("expert", i) for i in range(EXPERTS)]
    students = [person("student", i) for i in range(STUDENTS * n_projects)]
    copier.add(
        Membership,
        course_id=course_id,
        user_id=instructor[0],
        role=Role.INSTRUCTOR,
        joined_at=start,
    )
    for ta in tas:
        copier.add(Membership, course_id=course_id, user_id=ta[0], role=Role.TA, joined_at=start)
    for student in students:
        copier.add(
            Membership, course_id=course_id, user_id=student[0], role=Role.STUDENT, joined_at=start
        )

    projects = []
    for i in range(n_projects):
        order = rng.choices(range(1, n_stages + 1), STAGE_WEIGHTS)[0]
        roll = rng.random()
        status, outcome = ProjectStatus.ACTIVE, ""
        current = rng.choices(
            [StageStatus.DRAFTING, StageStatus.IN_REVIEW, StageStatus.CHANGES_REQUESTED],
            [35, 45, 20],
        )[0]
        if i == 0:  # the persona's project: drafting stage 3, so the stage page is a form
            order, current = 3, StageStatus.DRAFTING
        elif roll < 0.03:
            order, current, status, outcome = (
                n_stages,
                StageStatus.APPROVED,
                ProjectStatus.CONCLUDED,
                Outcome.DEPLOYED,
            )
        elif roll < 0.06:
            current, status, outcome = (
                StageStatus.DRAFTING,
                ProjectStatus.CONCLUDED,
                Outcome.NOT_PURSUED,
            )
        team = students[STUDENTS * i : STUDENTS * (i + 1)]
        project_id = copier.new_id(Project)
        stage_ids = [copier.new_id(ProjectStage) for _ in definitions]
        pace = dt.timedelta(days=65 / order * rng.uniform(0.8, 1.0))
        copier.add(
            Project,
            id=project_id,
            course_id=course_id,
            template_id=template.pk,
            title=f"Project {i:03d} of {code}",
            summary="A benchmark project.",
            created_by_id=team[0][0],
            status=status,
            outcome=outcome,
            outcome_reason="Benchmark." if outcome else "",
            cycle=1,
            current_stage_id=stage_ids[order - 1],
            created_at=start,
            concluded_at=now - dt.timedelta(days=2) if outcome else None,
        )
        for student in team:
            copier.add(Project.members.through, project_id=project_id, user_id=student[0])
        # Reviewers: a TA for the whole project, experts on stages 2 and 5 of every other one.
        ta = tas[i % TAS]
        ta_assignment = copier.add(
            ReviewAssignment,
            project_id=project_id,
            reviewer_id=ta[0],
            role="staff",
            assigned_by_id=instructor[0],
            created_at=start,
        )
        reviewers = [(ta[0], "staff", None, ta_assignment)]
        if i % 2 == 0:
            for k, d_order in enumerate((2, 5)):
                expert = experts[(i // 2 + k) % EXPERTS]
                definition = definitions[d_order - 1]
                assignment = copier.add(
                    ReviewAssignment,
                    project_id=project_id,
                    stage_definition_id=definition.pk,
                    reviewer_id=expert[0],
                    role="expert",
                    due_date=today + dt.timedelta(days=rng.randint(-5, 15)),
                    assigned_by_id=instructor[0],
                    created_at=start,
                )
                reviewers.append((expert[0], "expert", definition.pk, assignment))
        for d, stage_id in zip(definitions, stage_ids, strict=True):
            opened = start + pace * (d.order - 1) if d.order <= order else None
            if d.order < order or (d.order == order and current == StageStatus.APPROVED):
                st = StageStatus.APPROVED
            elif d.order == order:
                st = current
            else:
                st = StageStatus.LOCKED
            approved = opened + pace * 0.8 if st == StageStatus.APPROVED else None
            revision_count = 0
            if st == StageStatus.APPROVED:
                revision_count = rng.choices([1, 2, 3], [50, 35, 15])[0]
            elif st in (StageStatus.IN_REVIEW, StageStatus.CHANGES_REQUESTED):
                revision_count = rng.choices([1, 2], [70, 30])[0]
            revision_id = None
            for number in range(1, revision_count + 1):
                at = opened + pace * 0.7 * number / (revision_count + 0.5)
                revision_id = copier.add(
                    StageRevision,
                    stage_id=stage_id,
                    number=number,
                    answers={"summary": f"Submitted answer {number} " * 30},
                    stakeholders=[],
                    content_sha256=f"{stage_id:032x}{number:032x}",
                    created_by_id=team[0][0],
                    created_at=at,
                )
                last = number == revision_count
                for reviewer_id, role, only, assignment in reviewers:
                    if only is not None and only != d.pk:
                        continue
                    if last and st == StageStatus.IN_REVIEW and rng.random() < 0.5:
                        continue  # still pending
                    changes = not last or st == StageStatus.CHANGES_REQUESTED
                    copier.add(
                        Decision,
                        revision_id=revision_id,
                        reviewer_id=reviewer_id,
                        assignment_id=assignment,
                        role=role,
                        outcome=DecisionOutcome.REQUEST_CHANGES
                        if changes
                        else DecisionOutcome.APPROVE,
                        comment="Please say more about the data sources." if changes else "",
                        question_key="",
                        created_at=at + dt.timedelta(hours=5),
                    )
            copier.add(
                ProjectStage,
                id=stage_id,
                project_id=project_id,
                definition_id=d.pk,
                cycle=1,
                status=st,
                draft_answers={"summary": "Draft text " * 20} if opened else {},
                draft_version=1 if opened else 0,
                draft_changed_at={},
                draft_changed_by={},
                current_revision_id=revision_id,
                due_date=today + dt.timedelta(days=10 * (d.order - order) + rng.randint(-6, 9)),
                opened_at=opened,
                submitted_at=opened + pace * 0.4 if revision_id else None,
                approved_at=approved,
            )
        for n in range(NOTIFICATIONS_PER_PROJECT):
            recipient = team[0] if n % 2 == 0 else ta
            copier.add(
                Notification,
                recipient_id=recipient[0],
                email=recipient[1],
                kind="stage_approved" if n % 2 == 0 else "review_requested",
                project_id=project_id,
                stage_id=stage_ids[n % n_stages],
                subject=f"Benchmark notification {n} on project {i} of {code}",
                body="Something happened on the project.",
                link=f"/projects/{project_id}/",
                payload={},
                dedupe_key=f"bench:{code}:{i}:{n}",
                created_at=start + dt.timedelta(hours=n * 7),
                read_at=None if n % 3 else start + dt.timedelta(hours=n * 7 + 1),
                email_status="sent",
                email_attempts=1,
                email_next_attempt_at=start,
                email_sent_at=start + dt.timedelta(hours=n * 7),
            )
        projects.append((project_id, [s[0] for s in team], [s[1] for s in team]))
    return {
        "course_id": course_id,
        "projects": projects,
        "instructor": instructor[0],
        "ta": tas[0][0],
        "student": students[0][0],
    }


def event_rows(courses: list[dict[str, Any]], total: int, rng: random.Random) -> Iterator[str]:
    """``total`` audit events on the courses' projects, a valid chain from the current head,
    each in COPY's text format."""
    from lifecycle.audit import GENESIS_HASH, canonical_json, event_payload, hash_payload
    from lifecycle.models import AuditEvent

    last = AuditEvent.objects.order_by("-seq").values_list("seq", "hash").first()
    seq, prev = last if last else (0, GENESIS_HASH)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=70)
    step = dt.timedelta(days=69) / max(total, 1)
    per_course = [(c["course_id"], c["projects"]) for c in courses]
    # The stored JSON of ``old`` and ``new`` (jsonb: the text's key order does not matter).
    assert canonical_json({"note": "event 1", "stage": 2}) == '{"note":"event 1","stage":2}'
    old_text, new_text, null = '{"note":"event %d"}', '{"note":"event %d","stage":%d}', "\\N"
    for n in range(total):
        seq += 1
        course_id, projects = per_course[n % len(per_course)]
        project_id, members, emails = projects[rng.randrange(len(projects))]
        k = n % len(members)
        verb = VERBS[n % len(VERBS)]
        at = (start + step * n).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        stage = 1 + n % 7
        new = {"stage": stage, "note": f"event {seq}"}
        old = {"note": f"event {seq - 1}"} if n % 3 == 0 else None
        digest = hash_payload(
            event_payload(
                seq=seq,
                created_at=at,
                actor_id=members[k],
                actor_label=emails[k],
                verb=verb,
                object_type="lifecycle.project",
                object_id=str(project_id),
                course_id=course_id,
                project_id=project_id,
                old=old,
                new=new,
                flagged=False,
                prev_hash=prev,
                actor_name="",
                hash_version=2,
            )
        )
        yield (
            f"{seq}\t{at}\t{members[k]}\t{emails[k]}\t{verb}\tlifecycle.project\t{project_id}\t"
            f"{course_id}\t{project_id}\t"
            f"{old_text % (seq - 1) if old else null}\t{new_text % (seq, stage)}\t"
            f"f\t{prev}\t{digest}\t\t2\n"
        )
        prev = digest


def drop_random_indexes(cursor: Any, table: str) -> list[str]:
    """Drop the table's indexes but its primary key and ``seq`` (both appended in order): the
    hashes' unique indexes take random keys and make a large COPY crawl. Returns the statements
    that recreate them as they were (constraints as constraints)."""
    cursor.execute(
        """
        SELECT c.conname, pg_get_constraintdef(c.oid), i.relname
        FROM pg_constraint c JOIN pg_class i ON i.oid = c.conindid
        WHERE c.conrelid = %s::regclass AND c.contype = 'u'
          AND pg_get_constraintdef(c.oid) <> 'UNIQUE (seq)'
        """,
        [table],
    )
    constraints = cursor.fetchall()
    cursor.execute(
        """
        SELECT indexname, indexdef FROM pg_indexes
        WHERE tablename = %s AND indexname NOT IN (
            SELECT i.relname FROM pg_constraint c JOIN pg_class i ON i.oid = c.conindid
            WHERE c.conrelid = %s::regclass)
        """,
        [table, table],
    )
    indexes = cursor.fetchall()
    rebuild = []
    for name, definition, _ in constraints:
        cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        rebuild.append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
    for name, definition in indexes:
        cursor.execute(f'DROP INDEX "{name}"')
        rebuild.append(definition)
    return rebuild


def copy_events(cursor: Any, rows: Iterable[str]) -> int:
    """COPY the rows (event_rows) into the audit table. Returns how many."""
    columns = (
        "seq, created_at, actor_id, actor_label, verb, object_type, object_id, course_id, "
        "project_id, old, new, flagged, prev_hash, hash, actor_name, hash_version"
    )
    written, batch = 0, []
    for row in rows:
        batch.append(row)
        if len(batch) >= EVENT_ROWS:
            cursor.copy_expert(
                f"COPY lifecycle_auditevent ({columns}) FROM STDIN", io.StringIO("".join(batch))
            )
            written += len(batch)
            batch.clear()
    if batch:
        cursor.copy_expert(
            f"COPY lifecycle_auditevent ({columns}) FROM STDIN", io.StringIO("".join(batch))
        )
        written += len(batch)
    return written


def courses_in_database() -> list[dict[str, Any]]:
    """The seeded courses as build_course returned them (what event_rows needs), read back, so
    an interrupted seed resumes in a new process. The approvals' course is not among them."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT p.course_id, p.id, u.id, u.email
            FROM lifecycle_project p
            JOIN lifecycle_course c ON c.id = p.course_id
            JOIN lifecycle_project_members m ON m.project_id = p.id
            JOIN accounts_user u ON u.id = m.user_id
            WHERE c.code LIKE 'bench-%%' AND c.code <> 'bench-approvals'
            ORDER BY p.course_id, p.id, u.id
            """
        )
        courses: dict[int, dict[int, tuple[int, list[int], list[str]]]] = {}
        for course_id, project_id, user_id, email in cursor.fetchall():
            project = courses.setdefault(course_id, {}).setdefault(project_id, (project_id, [], []))
            project[1].append(user_id)
            project[2].append(email)
    return [
        {"course_id": course_id, "projects": list(projects.values())}
        for course_id, projects in courses.items()
    ]


def seed(size: str) -> dict[str, Any]:
    """Migrate the (new, empty) database Django is on, write the courses (one transaction) and
    record the seed as incomplete in ``bench_seed``; then seed_events() writes the audit events.
    Returns the personas."""
    from django.contrib.auth.hashers import make_password
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    from lifecycle.default_template import install_default_template

    spec = SIZES[size]
    call_command("migrate", verbosity=0)
    template = install_default_template()
    definitions = list(template.stages.order_by("order"))
    rng = random.Random(20261130)
    now = timezone.now()
    password = make_password(PASSWORD)
    courses = []
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        copier = Copier(cursor.cursor)
        for number in range(spec["courses"]):
            courses.append(
                build_course(
                    copier,
                    number=number,
                    n_projects=spec["projects"],
                    template=template,
                    definitions=definitions,
                    password=password,
                    rng=rng,
                    now=now,
                )
            )
        copier.finish()
        first = courses[0]
        personas = {
            "course": first["course_id"],
            "project": first["projects"][0][0],
            "student": first["student"],
            "instructor": first["instructor"],
            "ta": first["ta"],
        }
        # In the courses' transaction: a bench_seed row means the courses are all there.
        cursor.execute(
            "CREATE TABLE bench_seed (version text, size text, personas jsonb, "
            "seeded_at timestamptz DEFAULT now(), complete boolean, "
            "events_done bigint DEFAULT 0, rebuild jsonb)"
        )
        cursor.execute(
            "INSERT INTO bench_seed (version, size, personas, complete) VALUES (%s, %s, %s, false)",
            [seed_version(), size, json.dumps(personas)],
        )
    counts = ", ".join(f"{n:,} {label}" for label, n in copier.counts.items())
    print(f"  {counts} in {time.perf_counter() - started:.1f} s", flush=True)
    return personas


def seed_events(size: str) -> None:
    """Write the audit events of an incomplete seed (seed()), resuming where an interrupted run
    stopped: each batch of EVENT_CHUNK events commits with the count in ``bench_seed``, so a
    run that is killed loses at most one batch. The random-key indexes are dropped first (their
    definitions kept in ``bench_seed``) and rebuilt at the end; then the seed is complete."""
    from django.db import connection, transaction

    total = SIZES[size]["events"]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT events_done, rebuild FROM bench_seed FOR UPDATE")
        done, rebuild = cursor.fetchone()
        if rebuild is None:
            rebuild = drop_random_indexes(cursor, "lifecycle_auditevent")
            cursor.execute("UPDATE bench_seed SET rebuild = %s", [json.dumps(rebuild)])
        elif isinstance(rebuild, str):
            rebuild = json.loads(rebuild)
    courses = courses_in_database()
    started, at_start = time.perf_counter(), done
    if done:
        print(f"  resuming after {done:,} audit events", flush=True)
    while done < total:
        n = min(EVENT_CHUNK, total - done)
        # A generator of its own per batch, seeded by where it starts: a resumed run writes
        # what an uninterrupted one would have.
        rng = random.Random(20261130 + done)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL session_replication_role = replica")
            written = copy_events(cursor.cursor, event_rows(courses, n, rng))
            done += written
            cursor.execute("UPDATE bench_seed SET events_done = %s", [done])
        rate = (done - at_start) / (time.perf_counter() - started)
        print(f"  {done:,} of {total:,} audit events ({rate:,.0f}/s)", flush=True)
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
        for statement in rebuild:
            cursor.execute(statement)
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('lifecycle_auditevent', 'id'), "
            "(SELECT coalesce(max(id), 1) FROM lifecycle_auditevent))"
        )
    print(f"  indexes rebuilt in {time.perf_counter() - started:.1f} s", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
        cursor.execute("UPDATE bench_seed SET complete = true, seeded_at = now()")


_CODE_DIGEST = _code_digest()  # of the code this process runs, read once
_SEED_VERSION: str | None = None


def ensure(size: str, force: bool = False, fresh: bool = False) -> str:
    """The database of ``size``, seeded with the current version. Returns its name. ``fresh``:
    seed again if the suite's approvals added projects to it. A seed of the current version
    that was interrupted is resumed. Django must be set up (benchdb.setup_django) on any
    database of the server."""
    parsed = benchdb.bench_database_url()
    name = parsed["NAME"] + "_" + size
    version = seed_version()
    # One seeder per database: a second run (make bench while bench_seed.py large is still
    # going) waits here for the first, then finds its seed complete, or resumes it if it died.
    guard = benchdb.admin(parsed)
    with guard.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(hashtext(%s))", [f"lrb-bench-seed:{name}"])
    try:
        return _ensure(parsed, name, version, size, force=force, fresh=fresh)
    finally:
        guard.close()  # releases the lock


def _ensure(
    parsed: dict[str, Any], name: str, version: str, size: str, *, force: bool, fresh: bool
) -> str:
    from django.core.management import call_command
    from django.db import connection

    if fresh and projects_added(parsed, name):
        force = True
    if not force and stored_version(parsed, name) == version:
        print(f"{name}: seed {version} present, reused", flush=True)
        benchdb.use_database(name)
        call_command("migrate", verbosity=0)  # what other branches added since the seed
        return name
    started = time.perf_counter()
    interrupted = None if force else progress(parsed, name)
    while interrupted and interrupted[0] == version and _others_on(parsed, name):
        # Still being written by a seeder that predates the lock above: wait for it.
        print(f"{name}: {interrupted[1]:,} audit events so far, another seeder on it", flush=True)
        time.sleep(30)
        if stored_version(parsed, name) == version:
            return _ensure(parsed, name, version, size, force=False, fresh=False)
        interrupted = progress(parsed, name)
    if interrupted and interrupted[0] == version:
        print(f"{name}: resuming the seed of {size} (seed {version})", flush=True)
        benchdb.use_database(name)
    else:
        print(f"{name}: seeding {size} (seed {version})", flush=True)
        benchdb.create_database(parsed, name)
        benchdb.use_database(name)
        seed(size)
    seed_events(size)
    call_command("migrate", verbosity=0)
    connection.close()
    print(f"{name}: seeded in {time.perf_counter() - started:.1f} s", flush=True)
    return name


def personas(name: str) -> dict[str, int]:
    from django.db import connection

    benchdb.use_database(name)
    with connection.cursor() as cursor:
        cursor.execute("SELECT personas FROM bench_seed WHERE complete")
        value = cursor.fetchone()[0]
    return json.loads(value) if isinstance(value, str) else value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sizes", nargs="+", choices=list(SIZES))
    parser.add_argument("--force", action="store_true", help="reseed even if up to date")
    args = parser.parse_args()
    benchdb.bench_database_url()
    os.environ.setdefault("LRB_BENCH_SETTINGS", "web_settings")
    benchdb.setup_django(os.environ["LRB_BENCH_SETTINGS"])
    for size in args.sizes:
        ensure(size, force=args.force)


if __name__ == "__main__":
    main()
