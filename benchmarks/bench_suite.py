r"""The benchmark suite (`make bench`): every page and action of issue 9 against Django's own
ceiling, at three data sizes. Not a test; prints figures.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/lrb_bench \
        .venv/bin/python benchmarks/bench_suite.py [--sizes small,medium,large] [--rounds 3] \
        [--duration 5] [--app-port 8120] [--hello-port 8121]

Data: benchmarks/bench_seed.py (databases ``<name>_small``, ``_medium``, ``_large``, seeded with
COPY once and reused while the seeder, the audit scheme and the migrations are unchanged).

For each size, two servers run under the same gunicorn command (2 sync workers, 127.0.0.1):
the app with benchmarks/web_settings.py (production settings, DEBUG off, cached template
loader, no SSL redirect) on the app port, and benchmarks/hello_world (one view behind five
middlewares that reads the session and looks the user up) on the hello port, both on the size's
database. The personas are signed in by sessions written to that database; their cookies go to
``wrk`` with ``-H Cookie:``. The machine is shared, so every figure is a ratio against the
baseline measured right after it, round by round, and each line gives the load average.

Figures, one ``RATIO`` line each (value = the median over rounds; the spread is the min and max
over rounds; then the raw medians and spreads of both sides and the 1-minute load average):

* ``throughput_<page>_<size>``: the page's requests/s under wrk (8 connections, ``--duration``
  seconds) ÷ hello-world's, for home (student and instructor), project overview, stage page,
  reviewer inbox (TA), course board (instructor) and notification centre (student).
* ``approvals_p95_<size>``: 50 gate-completing approvals POSTed at once on 50 distinct stages
  (threads released by a barrier), p95 latency ÷ the p95 of 50 simultaneous hello-world
  requests, after 8 approvals (four at a time) that warm both workers up and are not counted;
  ``--approval-rounds`` (5) rounds, since one burst's p95 swings more than a wrk run.
  The stages are prepared before each round through the project's own services, in a
  course of their own (``bench-approvals``; it grows by 50 projects a round, so small and medium
  are seeded again at the start of the next run, large is not). Afterwards the
  database is checked: no errors, every stage approved exactly once (one ``stage.approve``
  audit event, one decision) and its project moved on to stage 2.
* ``export_<format>_<size>``: the course under test's audit trail exported by
  lifecycle.exports (benchmarks/audit_export.py's child process, CSV and JSON Lines), rows/s ÷
  the rows/s of ``COPY (SELECT …) TO STDOUT`` of the same rows, timed in the same child on the
  same connection, both warm (one COPY and one export first, then the export, then the COPY).
* ``pdf``: benchmarks/dossier_pdf.py if it exists, else ``SKIPPED pdf``.
* ``<page>_queries_<size>`` / ``<page>_time_<size>`` (``FIGURE`` lines): SQL queries and server
  time (median of 5, ms) of one request through django.test.Client in a process of its own
  with CaptureQueriesContext; then ``RATIO <page>_queries_large_vs_small`` and
  ``<page>_time_large_vs_small`` (or the largest size run vs the smallest).
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_seed  # noqa: E402
import benchdb  # noqa: E402

PAGES = [  # (figure name, persona)
    ("home_student", "student"),
    ("home_instructor", "instructor"),
    ("overview", "student"),
    ("stage", "student"),
    ("inbox", "ta"),
    ("board", "instructor"),
    ("notifications", "student"),
]
APPROVALS = 50
APPROVALS_WARM_UP = 8  # not counted: see approvals_figure
CONNECTIONS = 8
SETTINGS = "web_settings"
HELLO_BACKEND = "django.contrib.auth.backends.ModelBackend"
# The servers publish their Celery tasks (notification e-mails) to Redis as in production; no
# worker consumes them, and the suite empties this database when it is done.
BROKER = os.environ.get("LRB_BENCH_BROKER", "redis://127.0.0.1:6379/2")


def loadavg() -> tuple[float, float, float]:
    with open("/proc/loadavg") as f:
        one, five, fifteen = f.read().split()[:3]
    return float(one), float(five), float(fifteen)


def spread(values: list[float], fmt: str = "{:.3f}") -> str:
    low, middle, high = (
        fmt.format(v) for v in (min(values), statistics.median(values), max(values))
    )
    return f"{middle} [{low}..{high}]"


def load_text(samples: list[tuple[float, float, float]]) -> str:
    ones = [s[0] for s in samples]
    last = samples[-1]
    return f"load1 {spread(ones, '{:.2f}')} (loadavg now {last[0]:.2f} {last[1]:.2f} {last[2]:.2f})"


def ratio_line(name: str, ratios: list[float], detail: str) -> None:
    print(
        f"RATIO {name} {statistics.median(ratios):.3f}  "
        f"(rounds {len(ratios)}: min {min(ratios):.3f} max {max(ratios):.3f}) {detail}",
        flush=True,
    )


# --- Personas, pages -----------------------------------------------------------------------------


def page_paths(people: dict[str, int]) -> dict[str, str]:
    from django.urls import reverse

    from lifecycle.models import ProjectStage

    stage = (
        ProjectStage.objects.select_related("definition")
        .filter(project_id=people["project"], definition__order=3)
        .get()
    )
    return {
        "home_student": reverse("home"),
        "home_instructor": reverse("home"),
        "overview": reverse("lifecycle:project_detail", args=[people["project"]]),
        "stage": reverse(
            "lifecycle:stage_detail", args=[people["project"], stage.cycle, stage.definition.key]
        ),
        "inbox": reverse("reviews:inbox"),
        "board": reverse("reviews:board", args=[people["course"]]),
        "notifications": reverse("notifications:list"),
    }


def session_cookie(user_id: int, backend: str | None = None) -> str:
    """A signed-in session for the user, written to the current database, as if ``backend``
    (the app's first authentication backend by default) had signed them in."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    from accounts.models import User

    user = User.objects.get(pk=user_id)
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = backend or settings.AUTHENTICATION_BACKENDS[0]
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.set_expiry(86_400)
    session.create()
    # And a CSRF cookie, as a browser has after its first page: pages cache their content only
    # for a visitor who has one (lifecycle/freshness.py).
    from django.middleware.csrf import CSRF_ALLOWED_CHARS, CSRF_SECRET_LENGTH
    from django.utils.crypto import get_random_string

    secret = get_random_string(CSRF_SECRET_LENGTH, allowed_chars=CSRF_ALLOWED_CHARS)
    return (
        f"{settings.SESSION_COOKIE_NAME}={session.session_key}; "
        f"{settings.CSRF_COOKIE_NAME}={secret}"
    )


# --- Servers -------------------------------------------------------------------------------------


class Server:
    """gunicorn, 2 sync workers, the same command for the app and the baseline."""

    def __init__(self, wsgi: str, settings: str, port: int, database_url: str, log: Path):
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "DJANGO_SETTINGS_MODULE": settings,
            "PYTHONPATH": os.pathsep.join([str(benchdb.REPO), str(HERE)]),
            "CELERY_BROKER_URL": BROKER,
        }
        self.port = port
        self.log = open(log, "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("gunicorn")),
                wsgi,
                "--workers",
                "2",
                "--worker-class",
                "sync",
                "--bind",
                f"127.0.0.1:{port}",
                "--log-level",
                "warning",
                # Longer than gunicorn's 30 s: the slowest pages at large take that long on a
                # busy machine, and a killed worker measures nothing.
                "--timeout",
                "180",
            ],
            cwd=benchdb.REPO,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, path: str = "/", timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"gunicorn on {self.port} exited; see {self.log.name}")
            try:
                get(self.port, path, "")
                return
            except OSError:
                time.sleep(0.3)
        raise SystemExit(f"gunicorn on {self.port} did not answer; see {self.log.name}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


def get(port: int, path: str, cookie: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def busy_sockets(port: int) -> int:
    """Connections the server on ``port`` still holds or has not yet accepted (from
    /proc/net/tcp: its listening socket's accept queue, and any socket of the port that is
    neither listening nor in TIME_WAIT)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, queues = fields[1], fields[3], fields[4]
            if int(local.rsplit(":", 1)[1], 16) != port:
                continue
            if state == "0A":  # LISTEN: rx_queue is the accept backlog
                count += int(queues.split(":")[1], 16)
            elif state != "06":  # not TIME_WAIT
                count += 1
    return count


def drain(port: int, timeout: float = 180) -> None:
    """Wait until the server has finished the requests a finished wrk run left queued: a sync
    worker still serves every connection it accepts after the client went away."""
    deadline = time.monotonic() + timeout
    while busy_sockets(port) and time.monotonic() < deadline:
        time.sleep(0.1)


def wrk(port: int, path: str, cookie: str, duration: int) -> dict[str, float]:
    """Requests/s and errors of one wrk run (1 thread, CONNECTIONS connections), after the
    server has drained the previous run's queue, and waiting for this run's queue to drain."""
    drain(port)
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{CONNECTIONS}",
            f"-d{duration}s",
            "--timeout",
            "60s",
            "-H",
            f"Cookie: {cookie}",
            f"http://127.0.0.1:{port}{path}",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    drain(port)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    if socket:
        errors += sum(int(g) for g in socket.groups())
    return {"rps": rps, "errors": errors}


# --- Approvals -----------------------------------------------------------------------------------


def arm_approvals(tag: str, n: int) -> tuple[int, list[tuple[int, int]]]:
    """``n`` projects in the approvals course, each with stage 1 submitted, approved by its
    domain expert, and waiting for the TA, whose approval completes the gate. All through the
    services. Returns the TA's id and (stage id, revision id) pairs."""
    sys.path.insert(0, str(benchdb.REPO / "tests"))
    from django.utils import timezone
    from factories import fill_and_submit

    from accounts.models import User
    from lifecycle import services
    from lifecycle.default_template import install_default_template
    from lifecycle.models import Course, Membership, ProjectStage, Role
    from reviews import services as review_services

    template = install_default_template()
    course, _ = Course.objects.get_or_create(
        code="bench-approvals",
        defaults={"title": "Approvals under load", "template": template, "join_code": "BAPPROVE"},
    )

    def member(email: str, role: str) -> User:
        user = User.objects.filter(email=email).first() or User.objects.create_user(
            email, display_name=email.split("@")[0], email_verified_at=timezone.now()
        )
        Membership.objects.get_or_create(course=course, user=user, defaults={"role": role})
        return user

    instructor = member("instructor@bench-approvals.test", Role.INSTRUCTOR)
    ta = member("ta@bench-approvals.test", Role.TA)
    expert = User.objects.filter(email="expert@bench-approvals.test").first()
    if expert is None:
        expert = User.objects.create_user(
            "expert@bench-approvals.test", display_name="Expert", email_verified_at=timezone.now()
        )
    first = template.stages.get(order=1)
    armed = []
    for i in range(n):
        student = member(f"student-{tag}-{i}@bench-approvals.test", Role.STUDENT)
        project = services.project_create(course=course, actor=student, title=f"Approval {tag} {i}")
        for reviewer, role, definition in ((ta, "staff", None), (expert, "expert", first)):
            review_services.assignment_create(
                project=project,
                actor=instructor,
                reviewer=reviewer,
                role=role,
                stage_definition=definition,
            )
        stage = ProjectStage.objects.select_related("definition", "project").get(
            project=project, definition=first
        )
        revision = fill_and_submit(stage, student)
        review_services.conflict_declare(
            project=project, reviewer=expert, has_conflict=False, details="None."
        )
        review_services.decision_record(revision=revision, reviewer=expert, outcome="approve")
        armed.append((stage.pk, revision.pk))
    return ta.pk, armed


def simultaneous(requests: list[tuple[str, str, dict[str, str], bytes]], port: int) -> list[Any]:
    """Send every request at once (one thread and connection each, released by a barrier).
    Returns (status, seconds) per request."""
    barrier = threading.Barrier(len(requests))
    results: list[Any] = [None] * len(requests)

    def send(k: int) -> None:
        method, path, headers, body = requests[k]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        conn.connect()
        barrier.wait()
        started = time.perf_counter()
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            results[k] = (response.status, time.perf_counter() - started)
        except OSError as error:
            results[k] = (repr(error), time.perf_counter() - started)
        finally:
            conn.close()

    threads = [threading.Thread(target=send, args=(k,)) for k in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def p95(seconds: list[float]) -> float:
    ordered = sorted(seconds)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


def check_approvals(armed: list[tuple[int, int]]) -> list[str]:
    """What went wrong in the database: each stage approved once, its project on stage 2."""
    from lifecycle.models import AuditEvent, ProjectStage, StageStatus
    from reviews.models import Decision

    problems = []
    for stage_id, revision_id in armed:
        stage = ProjectStage.objects.select_related("project__current_stage__definition").get(
            pk=stage_id
        )
        approvals = AuditEvent.objects.filter(
            verb="stage.approve", object_type="lifecycle.projectstage", object_id=str(stage_id)
        ).count()
        decisions = Decision.objects.filter(revision_id=revision_id).count()
        current = stage.project.current_stage
        if (
            stage.status != StageStatus.APPROVED
            or approvals != 1
            or decisions != 2
            or current is None
            or current.definition.order != 2
        ):
            problems.append(
                f"stage {stage_id}: {stage.status}, {approvals} stage.approve events, "
                f"{decisions} decisions, project at "
                f"{current.definition.order if current else None}"
            )
    return problems


def decide_request(
    stage_id: int, revision_id: int, ta_cookie: str, csrf: str
) -> tuple[str, str, dict[str, str], bytes]:
    """The TA's POST that approves the stage's revision (and so completes its gate)."""
    body = urllib.parse.urlencode(
        {
            "csrfmiddlewaretoken": csrf,
            "revision": revision_id,
            "outcome": "approve",
            "comment": "",
            "question_key": "",
        }
    ).encode()
    headers = {
        "Cookie": f"{ta_cookie}; csrftoken={csrf}",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return ("POST", f"/reviews/stages/{stage_id}/decide/", headers, body)


def approvals_figure(size: str, rounds: int, hello_port: int, app_port: int, cookie: str) -> None:
    from django.db import connection

    csrf = secrets.token_hex(16)  # 32 characters: an unmasked CSRF secret
    ratios, app_p95s, hello_p95s, loads = [], [], [], []
    errors, problems = 0, []
    arming = 0.0
    # Warm-up, not counted: each gunicorn worker's first approvals open its broker connection
    # and declare the queues, read the templates' questions, connect to Redis; a served app
    # has done all that long before. Sent four at a time, so both workers take some.
    ta_id, armed = arm_approvals(f"{int(time.time())}-warm", APPROVALS_WARM_UP)
    ta_cookie = session_cookie(ta_id)
    connection.close()
    warm = [
        decide_request(stage_id, revision_id, ta_cookie, csrf) for stage_id, revision_id in armed
    ]
    for k in range(0, len(warm), 4):
        errors += sum(1 for status, _ in simultaneous(warm[k : k + 4], app_port) if status != 302)
    for r in range(rounds):
        tag = f"{int(time.time())}-{r}"
        started = time.perf_counter()
        ta_id, armed = arm_approvals(tag, APPROVALS)
        arming += time.perf_counter() - started
        ta_cookie = session_cookie(ta_id)
        connection.close()
        requests = [
            decide_request(stage_id, revision_id, ta_cookie, csrf)
            for stage_id, revision_id in armed
        ]
        results = simultaneous(requests, app_port)
        errors += sum(1 for status, _ in results if status != 302)
        app = p95([s for _, s in results])
        hello_results = simultaneous(
            [("GET", "/", {"Cookie": cookie}, b"")] * APPROVALS, hello_port
        )
        errors_hello = sum(1 for status, _ in hello_results if status != 200)
        hello = p95([s for _, s in hello_results])
        problems += check_approvals(armed)
        app_p95s.append(app * 1000)
        hello_p95s.append(hello * 1000)
        ratios.append(app / hello)
        loads.append(loadavg())
        if errors_hello:
            print(f"  hello-world errors in round {r + 1}: {errors_hello}", flush=True)
    by_round = " ".join(f"{a:.0f}/{h:.0f}" for a, h in zip(app_p95s, hello_p95s, strict=True))
    ratio_line(
        f"approvals_p95_{size}",
        ratios,
        f"p95 ms app {spread(app_p95s, '{:.0f}')} hello {spread(hello_p95s, '{:.0f}')}; "
        f"by round app/hello {by_round}; "
        f"{APPROVALS} at once x {rounds} after {APPROVALS_WARM_UP} to warm up; errors {errors}; "
        "exactly one advance per stage: "
        f"{'yes' if not problems else 'NO'}; {load_text(loads)}",
    )
    print(f"  (preparing the stages through the services took {arming:.0f} s)", flush=True)
    for problem in problems[:10]:
        print(f"  approvals problem: {problem}", flush=True)


# --- Export --------------------------------------------------------------------------------------


def export_figures(size: str, database_url: str, course_id: int, rounds: int) -> None:
    """lifecycle.exports against COPY, through benchmarks/audit_export.py."""

    for fmt in ("csv", "jsonl"):
        ratios, rates, ceilings, loads = [], [], [], []
        for _ in range(rounds):
            with tempfile.TemporaryDirectory() as folder:
                path = os.path.join(folder, f"trail.{fmt}")
                child = subprocess.run(
                    [
                        sys.executable,
                        str(HERE / "audit_export.py"),
                        "--export-child",
                        path,
                        "--format",
                        fmt,
                        "--course",
                        str(course_id),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                    env={**os.environ, "DATABASE_URL": database_url},
                )
            export = json.loads(child.stdout.strip().splitlines()[-1])
            # The ceiling was timed in the same child, on the same warm connection.
            rows, seconds = export["copy_rows"], export["copy_seconds"]
            if rows != export["rows"]:
                print(f"  export rows {export['rows']} != COPY rows {rows}", flush=True)
            rate = export["rows"] / export["seconds"]
            ceiling = rows / seconds
            rates.append(rate)
            ceilings.append(ceiling)
            ratios.append(rate / ceiling)
            loads.append(loadavg())
        ratio_line(
            f"export_{fmt}_{size}",
            ratios,
            f"rows/s export {spread(rates, '{:,.0f}')} COPY {spread(ceilings, '{:,.0f}')}; "
            f"{rows:,} rows of the course under test; peak RSS {export['rss_peak']:.0f} MB; "
            f"{load_text(loads)}",
        )


# --- Query counts (in a process of its own) ----------------------------------------------------


def queries_child(runs: int = 5) -> None:
    """Run in a child whose DATABASE_URL is a size's database: print JSON per page."""
    benchdb.setup_django(SETTINGS)
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]  # django.test.Client's host

    from accounts.models import User

    people = bench_seed.personas(connection.settings_dict["NAME"])
    paths = page_paths(people)
    out = {}

    def measure(client: Client, path: str) -> tuple[Any, list[int], list[float]]:
        times, counts = [], []
        for _ in range(runs):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(path)
                times.append((time.perf_counter() - started) * 1000)
            counts.append(len(queries))
        return response, counts, times

    for page, persona in PAGES:
        client = Client()
        client.force_login(User.objects.get(pk=people[persona]))
        client.get(paths[page])  # warm-up; sets the CSRF cookie as a browser's first visit does
        # Rendered: every look builds the page (the content cache off), what a first look costs.
        settings.FRAGMENT_CACHE_SECONDS = 0
        response, counts, times = measure(client, paths[page])
        # A second look: pages that cache their content (lifecycle/freshness.py) read it.
        settings.FRAGMENT_CACHE_SECONDS = 120
        client.get(paths[page])
        _, cached_counts, cached_times = measure(client, paths[page])
        out[page] = {
            "status": response.status_code,
            "queries": max(counts),
            "ms": statistics.median(times),
            "cached_queries": max(cached_counts),
            "cached_ms": statistics.median(cached_times),
            "kb": len(response.content) / 1024,
        }
    print(json.dumps(out))


def query_figures(size: str, database_url: str) -> dict[str, Any]:
    child = subprocess.run(
        [sys.executable, __file__, "--queries-child"],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "DATABASE_URL": database_url},
    )
    figures = json.loads(child.stdout.strip().splitlines()[-1])
    load = loadavg()
    for page, f in figures.items():
        print(
            f"FIGURE {page}_queries_{size} {f['queries']}  FIGURE {page}_time_{size} "
            f"{f['ms']:.1f} ms  FIGURE {page}_cached_queries_{size} {f['cached_queries']}  "
            f"FIGURE {page}_cached_time_{size} {f['cached_ms']:.1f} ms  (status {f['status']}, "
            f"{f['kb']:.0f} KB; median of 5 through django.test.Client, rendered / second look "
            f"with the content cache; load1 {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})",
            flush=True,
        )
    return figures


# --- One size ------------------------------------------------------------------------------------


def wanted(args: argparse.Namespace, figure: str) -> bool:
    return not args.only or figure in args.only


def run_size(size: str, args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    from django.db import connection

    pages = [(page, persona) for page, persona in PAGES if wanted(args, page)]
    # The approvals add projects; small and medium reseed in a minute, so every run starts from
    # their nominal data. large (half an hour to seed) keeps them: 50 a round beside 30,000.
    name = bench_seed.ensure(size, fresh=size != "large")
    parsed = benchdb.bench_database_url()
    database_url = benchdb.database_url(parsed, name)
    people = bench_seed.personas(name)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) FROM lifecycle_project), "
            "(SELECT count(*) FROM lifecycle_course), "
            "(SELECT max(seq) FROM lifecycle_auditevent)"
        )
        projects, courses, events = cursor.fetchone()
    print(
        f"== {size}: database {name}: {courses} courses, {projects:,} projects, "
        f"{events:,} audit events; course under test {people['course']}",
        flush=True,
    )
    queries = query_figures(size, database_url)
    paths = page_paths(people)
    cookies = {p: session_cookie(people[p]) for p in ("student", "instructor", "ta")}
    # hello-world has only Django's ModelBackend: the same person, a session of its own.
    hello_cookies = {p: session_cookie(people[p], HELLO_BACKEND) for p in cookies}
    connection.close()

    app = Server("config.wsgi:application", SETTINGS, args.app_port, database_url, logs / "app.log")
    hello = Server(
        "hello_world.wsgi:application",
        "hello_world.settings",
        args.hello_port,
        database_url,
        logs / "hello.log",
    )
    try:
        app.wait_ready("/healthz")
        hello.wait_ready()
        # A slow page gets a longer wrk run: about 16 responses at the latency of one request
        # (up to a minute), so that what wrk counts is not mostly the requests left unfinished.
        durations = {}
        for page, persona in pages:
            for _ in range(2):  # the second request, on a warm worker
                started = time.perf_counter()
                try:
                    status, body = get(args.app_port, paths[page], cookies[persona])
                except OSError as error:
                    status, body = repr(error), b""
                latency = time.perf_counter() - started
            if status != 200:
                raise SystemExit(f"{page} {paths[page]} as {persona}: HTTP {status}")
            durations[page] = max(args.duration, min(60, math.ceil(8 * latency)))
        status, body = get(args.hello_port, "/", hello_cookies["student"])
        if status != 200 or b"anonymous" in body:
            raise SystemExit(f"hello-world: HTTP {status} {body[:80]!r}")

        # Warm both workers of each server (first requests import and compile templates).
        for page, persona in pages:
            wrk(args.app_port, paths[page], cookies[persona], 1)
        wrk(args.hello_port, "/", hello_cookies["student"], 1)

        samples: dict[str, dict[str, list[Any]]] = {
            page: {"app": [], "hello": [], "ratio": [], "load": [], "errors": []}
            for page, _ in pages
        }
        for _ in range(args.rounds):
            for page, persona in pages:
                a = wrk(args.app_port, paths[page], cookies[persona], durations[page])
                h = wrk(args.hello_port, "/", hello_cookies[persona], args.duration)
                s = samples[page]
                s["app"].append(a["rps"])
                s["hello"].append(h["rps"])
                s["ratio"].append(a["rps"] / h["rps"])
                s["errors"].append(a["errors"] + h["errors"])
                s["load"].append(loadavg())
        failed = [page for page, _ in pages if sum(samples[page]["errors"])]
        if args.smoke and failed:
            raise SystemExit(f"bench smoke: errors under wrk on {', '.join(failed)}")
        for page, persona in pages:
            s = samples[page]
            ratio_line(
                f"throughput_{page}_{size}",
                s["ratio"],
                f"req/s app {spread(s['app'], '{:.1f}')} hello {spread(s['hello'], '{:.1f}')}; "
                f"as {persona}; wrk {durations[page]} s (hello {args.duration} s); "
                f"errors {sum(s['errors'])}; "
                f"{load_text(s['load'])}",
            )
        if not args.smoke and wanted(args, "approvals"):
            approvals_figure(
                size,
                args.approval_rounds,
                args.hello_port,
                args.app_port,
                hello_cookies["student"],
            )
    finally:
        app.stop()
        hello.stop()
        connection.close()
    if not args.smoke and wanted(args, "export"):
        export_figures(size, database_url, people["course"], args.rounds)
    return queries


def pdf_figure(database_url: str) -> None:
    script = HERE / "dossier_pdf.py"
    if not script.exists():
        print("SKIPPED pdf (benchmarks/dossier_pdf.py not present)", flush=True)
        return
    load = loadavg()
    started = time.perf_counter()
    child = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env={**os.environ, "DATABASE_URL": database_url},
    )
    seconds = time.perf_counter() - started
    for line in child.stdout.strip().splitlines():
        print(f"  pdf: {line}", flush=True)
    print(
        f"FIGURE pdf_script_seconds {seconds:.1f} (exit {child.returncode}; "
        f"load1 {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="small,medium,large")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument(
        "--approval-rounds",
        type=int,
        default=5,
        help="rounds of 50 approvals (a round is one burst, so its p95 swings more than a wrk "
        "run's throughput: more rounds for a steadier median)",
    )
    parser.add_argument("--app-port", type=int, default=8120)
    parser.add_argument("--hello-port", type=int, default=8121)
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="CI: small only, every page answers 200 under wrk; no approvals, export or PDF",
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated figures to run (page names such as stage,board, and approvals, "
        "export, pdf); default all",
    )
    parser.add_argument("--queries-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.only = {name.strip() for name in args.only.split(",") if name.strip()}
    known = {page for page, _ in PAGES} | {"approvals", "export", "pdf"}
    if args.only - known:
        sys.exit(f"Unknown figure(s) {sorted(args.only - known)}: choose from {sorted(known)}")
    if args.smoke:
        args.sizes, args.rounds, args.duration = "small", 1, 1
    if args.queries_child:
        queries_child()
        return
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in bench_seed.SIZES]
    if unknown or not sizes:
        sys.exit(f"Unknown size(s) {unknown}: choose from {', '.join(bench_seed.SIZES)}")
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian: apt-get install wrk; `make bench` does it).")
    parsed = benchdb.bench_database_url()
    started = time.perf_counter()
    os.environ.setdefault("CELERY_BROKER_URL", "memory://")
    benchdb.setup_django(SETTINGS)

    from django.core.management import call_command

    call_command("collectstatic", interactive=False, verbosity=0)
    print(
        f"bench: sizes {','.join(sizes)}, {args.rounds} rounds ({args.approval_rounds} of "
        f"approvals), wrk {args.duration} s x "
        f"{CONNECTIONS} connections, gunicorn 2 sync workers; app :{args.app_port} "
        f"hello :{args.hello_port}; {os.cpu_count()} CPUs; load {' '.join(map(str, loadavg()))}",
        flush=True,
    )
    queries: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="lrb-bench-") as folder:
        for size in sizes:
            begun = time.perf_counter()
            queries[size] = run_size(size, args, Path(folder))
            print(f"== {size}: {time.perf_counter() - begun:.0f} s", flush=True)
    if len(queries) > 1:
        small, large = sizes[0], sizes[-1]
        for page, _ in PAGES:
            for look in ("", "cached_"):
                big, little = queries[large][page], queries[small][page]
                q = big[f"{look}queries"] / little[f"{look}queries"]
                t = big[f"{look}ms"] / little[f"{look}ms"]
                print(
                    f"RATIO {page}_{look}queries_{large}_vs_{small} {q:.2f}  "
                    f"({big[f'{look}queries']} vs {little[f'{look}queries']})",
                    flush=True,
                )
                print(
                    f"RATIO {page}_{look}time_{large}_vs_{small} {t:.2f}  "
                    f"({big[f'{look}ms']:.1f} vs {little[f'{look}ms']:.1f} ms)",
                    flush=True,
                )
    if not args.smoke and wanted(args, "pdf"):
        pdf_figure(benchdb.database_url(parsed, parsed["NAME"] + "_pdf"))
    import redis

    redis.Redis.from_url(BROKER).flushdb()  # the tasks the servers queued
    print(f"bench: done in {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
