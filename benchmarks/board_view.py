r"""Benchmark: the course staff's board (``reviews:board``) for an instructor. Server time and
SQL query count per request; not a test.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/lrb_bench \
        .venv/bin/python benchmarks/board_view.py [--runs 10] [--keep]

PostgreSQL only. The database ``<name>_board`` (the DATABASE_URL's name must contain "bench") is
dropped, created and migrated, and dropped again at the end unless ``--keep``.

Two courses on the default template (7 stages), built directly with the models (bulk_create):
300 projects (2,100 stages, 10,000 decisions, 10,000 audit events) and 30 projects (a tenth of
each). Projects are spread over the stages: stages before the current one approved after one to
three revisions (the earlier ones sent back with requests for changes), the current one
drafting, in review (some reviewers decided, others pending) or with changes requested, the
rest locked; a few projects concluded (deployed or not pursued). The current stage's due date
is past for about a third of the projects. Each project has a TA for the whole project and some
have domain experts for a stage. The audit events form a valid hash chain (lifecycle.audit).

Each variant of the board is requested once to warm up, then ``--runs`` times with
django.test.Client (force_login as the instructor): server time is time.perf_counter() around
client.get(), the query count is CaptureQueriesContext's (the session and user lookups included).
The query count should be the same for 30 projects as for 300. Two more columns split the time:
"SQL ms" is the database time of those queries (median), "course_board ms" the median of three
direct calls of reviews.dashboard.course_board() for the same filters (queries and Python, no
template); the rest of a request is mostly rendering the template. "rows" is how many projects
the variant shows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchdb

SCENARIOS = [  # (code, projects, decisions, audit events)
    ("board-300", 300, 10_000, 10_000),
    ("board-30", 30, 1_000, 1_000),
]
VARIANTS = [
    ("board", {}),
    ("overdue filter", {"overdue": "1"}),
    ("sort: last activity", {"sort": "activity"}),
]
TAS, EXPERTS, STUDENTS_PER_PROJECT = 3, 6, 3
# How far the projects have got: weight of each current stage order (1..7).
STAGE_WEIGHTS = [10, 18, 22, 20, 14, 10, 6]
BATCH = 2_000
KINDS = ["Triage", "Forecast", "Tutor", "Fraud", "Routing"]


def build(code: str, n_projects: int, n_decisions: int, n_events: int, seed: int) -> dict:
    """One course and everything on its board, bulk-created. Returns the instructor and counts."""
    from django.db import transaction
    from django.utils import timezone

    from accounts.models import User
    from lifecycle.audit import chain_head, event_payload, format_timestamp, hash_payload
    from lifecycle.default_template import install_default_template
    from lifecycle.models import (
        AuditEvent,
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
    from reviews.models import (
        Decision,
        DecisionOutcome,
        Invitation,
        ReviewAssignment,
        ReviewerRole,
    )

    rng = random.Random(seed)
    now = timezone.now()
    today = timezone.localdate()
    start = now - dt.timedelta(days=70)
    template = install_default_template()
    definitions = list(template.stages.order_by("order"))
    n_stages = len(definitions)

    with transaction.atomic():
        course = Course.objects.create(
            title=f"Responsible ML ({n_projects} projects)", code=code, template=template
        )

        def people(prefix: str, n: int) -> list[User]:
            return User.objects.bulk_create(
                (
                    User(
                        email=f"{prefix}{i}@{code}.test",
                        display_name=f"{prefix.title()} {i}",
                        password="!",
                    )
                    for i in range(n)
                ),
                batch_size=BATCH,
            )

        instructor = people("instructor", 1)[0]
        tas = people("ta", TAS)
        experts = people("expert", EXPERTS)
        students = people("student", STUDENTS_PER_PROJECT * n_projects)
        Membership.objects.bulk_create(
            [Membership(course=course, user=instructor, role=Role.INSTRUCTOR)]
            + [Membership(course=course, user=u, role=Role.TA) for u in tas]
            + [Membership(course=course, user=u, role=Role.STUDENT) for u in students],
            batch_size=BATCH,
        )
        Invitation.objects.bulk_create(
            Invitation(
                email=u.email,
                name=u.display_name,
                token_hash=f"{code}-{i}".ljust(64, "0")[:64],
                course=course,
                invited_by=instructor,
                created_at=start,
                expires_at=start + dt.timedelta(days=14),
                sent_at=start,
                accepted_at=start + dt.timedelta(days=1),
                accepted_by=u,
            )
            for i, u in enumerate(experts)
        )

        # Where each project stands: (current order, current status, project status, outcome).
        plans = []
        for _ in range(n_projects):
            order = rng.choices(range(1, n_stages + 1), STAGE_WEIGHTS)[0]
            roll = rng.random()
            if roll < 0.03:
                plans.append(
                    (n_stages, StageStatus.APPROVED, ProjectStatus.CONCLUDED, Outcome.DEPLOYED)
                )
            elif roll < 0.06:
                plans.append(
                    (order, StageStatus.DRAFTING, ProjectStatus.CONCLUDED, Outcome.NOT_PURSUED)
                )
            else:
                status = rng.choices(
                    [
                        StageStatus.DRAFTING,
                        StageStatus.IN_REVIEW,
                        StageStatus.CHANGES_REQUESTED,
                    ],
                    [35, 45, 20],
                )[0]
                plans.append((order, status, ProjectStatus.ACTIVE, ""))

        projects = Project.objects.bulk_create(
            (
                Project(
                    course=course,
                    template=template,
                    title=f"Project {i:03d} — {rng.choice(KINDS)} model",
                    summary="A benchmark project.",
                    created_by=students[STUDENTS_PER_PROJECT * i],
                    status=plan[2],
                    outcome=plan[3],
                    outcome_reason="Benchmark." if plan[3] else "",
                    created_at=start,
                    concluded_at=now - dt.timedelta(days=rng.randint(1, 10)) if plan[3] else None,
                )
                for i, plan in enumerate(plans)
            ),
            batch_size=BATCH,
        )
        Project.members.through.objects.bulk_create(
            [
                Project.members.through(
                    project_id=p.pk, user_id=students[STUDENTS_PER_PROJECT * i + k].pk
                )
                for i, p in enumerate(projects)
                for k in range(STUDENTS_PER_PROJECT)
            ],
            batch_size=BATCH,
        )

        # Stages, with the timeline each project went through.
        stage_rows = []
        timeline = []  # per project: per stage (opened, approved or None)
        for i, (order, status, _, _) in enumerate(plans):
            pace = dt.timedelta(days=65 / max(order, 1) * rng.uniform(0.8, 1.0))
            times = []
            for d in definitions:
                opened = start + pace * (d.order - 1) if d.order <= order else None
                approved = None
                if d.order < order or (d.order == order and status == StageStatus.APPROVED):
                    approved = opened + pace * rng.uniform(0.6, 0.95)
                times.append((opened, approved))
                if d.order < order or approved:
                    st = StageStatus.APPROVED
                elif d.order == order:
                    st = status
                else:
                    st = StageStatus.LOCKED
                if d.order == order and st != StageStatus.APPROVED:
                    # The current stage: due within the fortnight, or (a third) already past.
                    due = today + dt.timedelta(days=rng.choice([-9, -5, -2, 3, 6, 9, 12, 14, 20]))
                elif st == StageStatus.APPROVED:
                    due = (approved + pace * rng.uniform(-0.2, 0.3)).date()
                else:  # locked: due after the current stage, a week and a half apart
                    due = today + dt.timedelta(days=10 * (d.order - order) + 5)
                stage_rows.append(
                    ProjectStage(
                        project=projects[i],
                        definition=d,
                        cycle=1,
                        status=st,
                        draft_answers={"summary": "Draft text " * 20} if opened else {},
                        draft_version=1 if opened else 0,
                        due_date=due,
                        opened_at=opened,
                        submitted_at=(opened + pace * 0.4)
                        if opened and st != StageStatus.DRAFTING
                        else None,
                        approved_at=approved,
                    )
                )
            timeline.append(times)
        stages = ProjectStage.objects.bulk_create(stage_rows, batch_size=BATCH)
        by_project = [stages[i * n_stages : (i + 1) * n_stages] for i in range(n_projects)]

        # Revisions: 1-3 per approved stage (all but the last sent back), one for a stage in
        # review or with changes requested (a second one sometimes).
        revision_rows, kinds = [], []  # kind: "sent_back", "approved", "in_review", "changes"
        for i in range(n_projects):
            author = students[STUDENTS_PER_PROJECT * i]
            for stage, (opened, approved) in zip(by_project[i], timeline[i], strict=True):
                if stage.status == StageStatus.APPROVED:
                    count = rng.choices([1, 2, 3], [50, 35, 15])[0]
                    final = "approved"
                elif stage.status in (StageStatus.IN_REVIEW, StageStatus.CHANGES_REQUESTED):
                    count = rng.choices([1, 2], [70, 30])[0]
                    final = "in_review" if stage.status == StageStatus.IN_REVIEW else "changes"
                else:
                    continue
                end = approved or now - dt.timedelta(days=rng.uniform(0.5, 6))
                for number in range(1, count + 1):
                    at = opened + (end - opened) * (number / (count + 0.5))
                    revision_rows.append(
                        StageRevision(
                            stage=stage,
                            number=number,
                            answers={"summary": f"Submitted answer {number} " * 30},
                            content_sha256=f"{stage.pk:032x}{number:032x}",
                            created_by=author,
                            created_at=at,
                        )
                    )
                    kinds.append(final if number == count else "sent_back")
        revisions = StageRevision.objects.bulk_create(revision_rows, batch_size=BATCH)
        latest = {r.stage_id: r for r in revisions}  # created in number order
        for stage in stages:
            if stage.pk in latest:
                stage.current_revision = latest[stage.pk]
        ProjectStage.objects.bulk_update(
            [s for s in stages if s.pk in latest], ["current_revision"], batch_size=BATCH
        )
        for i, (order, _, _, _) in enumerate(plans):
            projects[i].current_stage = by_project[i][order - 1]
        Project.objects.bulk_update(projects, ["current_stage"], batch_size=BATCH)

        # Assignments: a TA for the whole project; domain experts for stages 2 and 5 of half of
        # the projects (with their own due dates); the instructor on a few.
        def expert_due(stage: ProjectStage) -> dt.date | None:
            """A day or two before the stage's own due date, once the stage is open."""
            if stage.status == StageStatus.LOCKED:
                return None
            return stage.due_date - dt.timedelta(days=rng.choice([0, 1, 2]))

        assignment_rows = []
        reviewers_of: list[list[tuple]] = []  # per project: (user, role, assignment index)
        for i, p in enumerate(projects):
            mine = []
            ta = tas[i % TAS]
            assignment_rows.append(
                ReviewAssignment(
                    project=p,
                    reviewer=ta,
                    role=ReviewerRole.STAFF,
                    assigned_by=instructor,
                    created_at=start,
                )
            )
            mine.append((ta, ReviewerRole.STAFF, len(assignment_rows) - 1, None))
            if i % 2 == 0:
                for k, order in enumerate((2, 5)):
                    expert = experts[(i // 2 + k) % EXPERTS]
                    assignment_rows.append(
                        ReviewAssignment(
                            project=p,
                            stage_definition=definitions[order - 1],
                            reviewer=expert,
                            role=ReviewerRole.EXPERT,
                            due_date=expert_due(by_project[i][order - 1]),
                            assigned_by=instructor,
                            created_at=start + dt.timedelta(days=2),
                        )
                    )
                    mine.append(
                        (
                            expert,
                            ReviewerRole.EXPERT,
                            len(assignment_rows) - 1,
                            definitions[order - 1].pk,
                        )
                    )
            if i % 10 == 0:
                assignment_rows.append(
                    ReviewAssignment(
                        project=p,
                        reviewer=instructor,
                        role=ReviewerRole.STAFF,
                        assigned_by=instructor,
                        created_at=start,
                    )
                )
                mine.append((instructor, ReviewerRole.STAFF, len(assignment_rows) - 1, None))
            reviewers_of.append(mine)
        assignments = ReviewAssignment.objects.bulk_create(assignment_rows, batch_size=BATCH)

        # Decisions: exactly n_decisions, shared out by revision kind; beyond the reviewers at
        # hand a reviewer decides again and the earlier decision is marked replaced.
        weight = {"sent_back": 4.0, "approved": 5.0, "in_review": 1.5, "changes": 4.0}
        weights = [weight[k] for k in kinds]
        total = sum(weights)
        shares, acc = [], 0.0
        for w in weights:
            before = round(acc)
            acc += w * n_decisions / total
            shares.append(round(acc) - before)
        stage_by_pk = {s.pk: (i // n_stages, s) for i, s in enumerate(stages)}
        staff_pool = [instructor, *tas]
        decision_rows = []
        for revision, kind, share in zip(revisions, kinds, shares, strict=True):
            i, stage = stage_by_pk[revision.stage_id]
            definition_id = stage.definition_id
            covering = [
                (u, role, assignments[idx])
                for u, role, idx, d in reviewers_of[i]
                if d is None or d == definition_id
            ]
            others = [
                (u, ReviewerRole.STAFF, None)
                for u in staff_pool
                if u not in [c[0] for c in covering]
            ]
            candidates = covering + others
            standing: dict[int, Decision] = {}
            at = revision.created_at
            for n in range(share):
                user, role, assignment = candidates[n % len(candidates)]
                if kind == "approved" or (kind == "in_review" and n % 3):
                    outcome = DecisionOutcome.APPROVE
                elif kind in ("sent_back", "changes") and n == 0:
                    outcome = DecisionOutcome.REQUEST_CHANGES
                else:
                    outcome = rng.choice([DecisionOutcome.APPROVE, DecisionOutcome.REQUEST_CHANGES])
                at = at + dt.timedelta(hours=rng.uniform(2, 40))
                if at > now:
                    at = now - dt.timedelta(minutes=rng.uniform(1, 600))
                if user.pk in standing:
                    standing[user.pk].replaced_at = at
                decision = Decision(
                    revision=revision,
                    reviewer=user,
                    assignment=assignment,
                    role=role,
                    outcome=outcome,
                    comment="Please say more about the data sources."
                    if outcome != "approve"
                    else "",
                    question_key="data_sources" if outcome != "approve" else "",
                    created_at=at,
                )
                standing[user.pk] = decision
                decision_rows.append(decision)
        Decision.objects.bulk_create(decision_rows, batch_size=BATCH)

        # Audit events on the course's projects, a valid continuation of the chain.
        seq, prev = chain_head()
        verbs = ["stage.draft_save"] * 6 + ["stage.submit", "decision.record", "stage.approve"]
        moments = sorted(start + (now - start) * rng.random() for _ in range(n_events))
        events = []
        for at in moments:
            seq += 1
            i = rng.randrange(n_projects)
            actor = students[STUDENTS_PER_PROJECT * i + rng.randrange(STUDENTS_PER_PROJECT)]
            verb = verbs[seq % len(verbs)]
            new = {"stage": plans[i][0], "note": f"event {seq}"}
            created = format_timestamp(at)
            event = AuditEvent(
                seq=seq,
                created_at=dt.datetime.strptime(created, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                    tzinfo=dt.UTC
                ),
                actor_id=actor.pk,
                actor_label=actor.email,
                verb=verb,
                object_type="lifecycle.project",
                object_id=str(projects[i].pk),
                course_id=course.pk,
                project_id=projects[i].pk,
                old=None,
                new=new,
                flagged=False,
                prev_hash=prev,
            )
            event.hash = hash_payload(
                event_payload(
                    seq=seq,
                    created_at=created,
                    actor_id=actor.pk,
                    actor_label=actor.email,
                    verb=verb,
                    object_type="lifecycle.project",
                    object_id=str(projects[i].pk),
                    course_id=course.pk,
                    project_id=projects[i].pk,
                    old=None,
                    new=new,
                    flagged=False,
                    prev_hash=prev,
                )
            )
            prev = event.hash
            events.append(event)
        AuditEvent.objects.bulk_create(events, batch_size=BATCH)

    current = [by_project[i][plan[0] - 1] for i, plan in enumerate(plans)]
    active = [s for s, plan in zip(current, plans, strict=True) if plan[2] == ProjectStatus.ACTIVE]
    return {
        "course": course,
        "instructor": instructor,
        "projects": n_projects,
        "stages": len(stages),
        "revisions": len(revisions),
        "decisions": len(decision_rows),
        "replaced": sum(1 for d in decision_rows if d.replaced_at),
        "assignments": len(assignments),
        "events": len(events),
        "concluded": sum(1 for plan in plans if plan[2] == ProjectStatus.CONCLUDED),
        "current": {
            s: sum(1 for c in active if c.status == s)
            for s in (StageStatus.DRAFTING, StageStatus.IN_REVIEW, StageStatus.CHANGES_REQUESTED)
        },
        "current_overdue": sum(1 for c in active if c.due_date < today),
    }


def measure(course, instructor, runs: int) -> list[dict]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from reviews import dashboard

    client = Client()
    client.force_login(instructor)
    url = reverse("reviews:board", args=[course.pk])
    results = []
    for label, query in VARIANTS:
        response = client.get(url, query)  # warm-up
        assert response.status_code == 200, (label, response.status_code)
        times, sql_ms, counts, sizes = [], [], set(), set()
        for _ in range(runs):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(url, query)
                times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (label, response.status_code)
            counts.add(len(queries))
            sql_ms.append(sum(float(q["time"]) for q in queries.captured_queries) * 1000)
            sizes.add(len(response.content))
        filters = dashboard.BoardFilters.from_query(query)
        builds = []
        for _ in range(3):
            started = time.perf_counter()
            rows = len(dashboard.course_board(course=course, filters=filters).rows)
            builds.append((time.perf_counter() - started) * 1000)
        times.sort()
        results.append(
            {
                "variant": label,
                "rows": rows,
                "median": statistics.median(times),
                "p90": times[max(1, math.ceil(0.9 * len(times))) - 1],
                "min": times[0],
                "sql": statistics.median(sql_ms),
                "build": statistics.median(builds),
                "queries": "/".join(str(c) for c in sorted(counts)),
                "kb": max(sizes) / 1024,
            }
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()

    python = Path(sys.executable)
    if python.is_relative_to(Path.cwd()):
        python = python.relative_to(Path.cwd())
    print(
        "$ "
        + " ".join(["DATABASE_URL=" + os.environ.get("DATABASE_URL", ""), str(python), *sys.argv])
    )
    parsed = benchdb.bench_database_url()
    name = parsed["NAME"] + "_board"
    benchdb.create_database(parsed, name)
    os.environ["DATABASE_URL"] = benchdb.database_url(parsed, name)
    benchdb.setup_django()

    from django.core.management import call_command
    from django.db import connection

    try:
        call_command("migrate", verbosity=0)
        with connection.cursor() as cur:
            cur.execute("SHOW server_version")
            version = cur.fetchone()[0]
        print(
            f"PostgreSQL {version}, Python {platform.python_version()}, {os.cpu_count()} CPUs; "
            f"database {name}; {args.runs} timed requests per variant after 1 warm-up"
        )
        built = []
        for seed, (code, projects, decisions, events) in enumerate(SCENARIOS):
            started = time.perf_counter()
            data = build(code, projects, decisions, events, seed=seed + 1)
            cur = data["current"]
            print(
                f"setup {data['projects']} projects: {data['stages']:,} stages, "
                f"{data['revisions']:,} revisions, {data['decisions']:,} decisions "
                f"({data['replaced']:,} replaced), {data['assignments']:,} assignments, "
                f"{data['events']:,} audit events; current stage drafting {cur['drafting']}, "
                f"in review {cur['in_review']}, changes requested {cur['changes_requested']} "
                f"({data['current_overdue']} past due), concluded {data['concluded']} "
                f"in {time.perf_counter() - started:.1f} s"
            )
            built.append(data)
        with connection.cursor() as cur:
            cur.execute("ANALYZE")

        header = (
            f"{'projects':>8}  {'variant':<20} {'rows':>5} {'median ms':>10} {'p90 ms':>8} "
            f"{'min ms':>8} {'queries':>7} {'resp KB':>8} | {'SQL ms':>7} {'course_board ms':>15}"
        )
        print()
        print(header)
        print("-" * len(header))
        for data in built:
            for r in measure(data["course"], data["instructor"], args.runs):
                print(
                    f"{data['projects']:>8}  {r['variant']:<20} {r['rows']:>5} "
                    f"{r['median']:>10.1f} {r['p90']:>8.1f} {r['min']:>8.1f} "
                    f"{r['queries']:>7} {r['kb']:>8.0f} | {r['sql']:>7.1f} {r['build']:>15.1f}",
                    flush=True,
                )
    finally:
        connection.close()
        if not args.keep:
            benchdb.drop_database(parsed, name)


if __name__ == "__main__":
    main()
