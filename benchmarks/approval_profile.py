r"""CPU of one gate-completing approval (issue 9, "sign-off under load"), profiled.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/lrb_bench \
        .venv/bin/python benchmarks/approval_profile.py [--approvals 30] [--top 40] [--service]

On a database of its own (``<name>_approvals_profile``, migrated fresh each run), it prepares
``--approvals`` projects the way the benchmark suite does (benchmarks/bench_suite.py
arm_approvals: stage 1 submitted, approved by its expert, waiting for the TA whose approval
completes the gate) and then approves each through Django's test client — the whole request:
middleware, the view, ``reviews.services.decision_record``, the stage's approval, the audit
events, the notifications and the tasks queued on commit (the broker is ``memory://``; the
cache is Redis, as for the served app: ``LRB_PROFILE_CACHE``, database 4 by default).
``--service`` calls the service alone instead.

It prints the median and mean process CPU per approval (this process: Python, excluding
PostgreSQL's own CPU), the queries per approval, the PostgreSQL backend's CPU per approval
(from /proc, when the server runs on this machine) and cProfile's top functions (CPU time) by
cumulative time over all of them. The first approval is a warm-up and is not counted.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchdb


def backend_cpu(pid: int) -> float | None:
    """CPU seconds of a PostgreSQL backend on this machine, or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--approvals", type=int, default=30)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--queries", action="store_true", help="print the last one's SQL")
    parser.add_argument("--service", action="store_true", help="the service, not the request")
    parser.add_argument("--dump", metavar="FILE", help="also write the profile (pstats) here")
    args = parser.parse_args()
    parsed = benchdb.bench_database_url()
    name = parsed["NAME"] + "_approvals_profile"
    # memory:// unless told otherwise (LRB_PROFILE_BROKER=redis://... profiles the publishing
    # of the tasks queued on commit the way the served app does it).
    os.environ["CELERY_BROKER_URL"] = os.environ.get("LRB_PROFILE_BROKER", "memory://")
    # The served app's cache is Redis (make bench: the broker's); without one the settings
    # fall back to the file cache, whose every set lists the whole cache directory (about 10 ms
    # of an approval's CPU that the benchmark's servers never spend). LRB_PROFILE_CACHE= (empty)
    # profiles the embedded default's file cache instead.
    cache_url = os.environ.get("LRB_PROFILE_CACHE", "redis://127.0.0.1:6379/4")
    if cache_url:
        os.environ["CACHE_URL"] = cache_url
        os.environ["CACHE_KEY_PREFIX"] = "lrb-approval-profile"
    benchdb.create_database(parsed, name)
    benchdb.setup_django("web_settings")
    benchdb.use_database(name)
    import bench_suite
    from django.core.management import call_command
    from django.db import connection, reset_queries
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from accounts.models import User
    from reviews import services as review_services
    from reviews.models import StageRevision

    call_command("migrate", verbosity=0)
    ta_id, armed = bench_suite.arm_approvals("profile", args.approvals + 1)
    ta = User.objects.get(pk=ta_id)
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(ta)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]

    def approve(stage_id: int, revision_id: int) -> None:
        if args.service:
            revision = StageRevision.objects.select_related("stage").get(pk=revision_id)
            review_services.decision_record(revision=revision, reviewer=ta, outcome="approve")
            return
        response = client.post(
            f"/reviews/stages/{stage_id}/decide/",
            {"revision": revision_id, "outcome": "approve", "comment": "", "question_key": ""},
            secure=False,
        )
        assert response.status_code == 302, (response.status_code, response.content[:500])

    approve(*armed[0])  # warm-up: imports, template compilation
    cpu, db_cpu, queries = [], [], []
    measured = armed[1 : 1 + args.approvals // 2]
    for stage_id, revision_id in measured:  # CPU without the profiler
        db_before = backend_cpu(pid)
        started = time.process_time()
        approve(stage_id, revision_id)
        cpu.append(time.process_time() - started)
        db_after = backend_cpu(pid)
        if db_before is not None and db_after is not None:
            db_cpu.append(db_after - db_before)
    profile = cProfile.Profile(time.process_time)  # CPU, not waiting on PostgreSQL
    for stage_id, revision_id in armed[1 + len(measured) :]:  # where it goes, profiled
        reset_queries()
        with CaptureQueriesContext(connection) as captured:
            profile.enable()
            approve(stage_id, revision_id)
            profile.disable()
        queries.append(len(captured))
        last_queries = [q["sql"] for q in captured.captured_queries]
    problems = bench_suite.check_approvals(armed)
    what = "service" if args.service else "request"
    print(
        f"APPROVAL_CPU {what}: median {statistics.median(cpu) * 1000:.1f} ms, mean "
        f"{statistics.mean(cpu) * 1000:.1f} ms of Python CPU per approval ({len(cpu)} "
        f"approvals, no profiler); queries {statistics.median(queries):.0f}; "
        + (
            f"PostgreSQL backend CPU mean {statistics.mean(db_cpu) * 1000:.1f} ms; "
            if db_cpu
            else ""
        )
        + f"exactly one advance per stage: {'yes' if not problems else 'NO'}; "
        f"load1 {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    for problem in problems[:5]:
        print(f"  problem: {problem}")
    if args.queries:
        for sql in last_queries:
            print(" ", sql[:300])
    out = io.StringIO()
    if args.dump:
        profile.dump_stats(args.dump)
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("cumulative").print_stats(args.top)
    print(out.getvalue())
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("tottime").print_stats(25)
    print(out.getvalue())
    connection.close()
    benchdb.drop_database(parsed, name)


if __name__ == "__main__":
    main()
