r"""Benchmark: how fast real Celery workers deliver 1,000 outbox notifications over Redis.
Prints notifications per second; not a test.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/lrb_bench \
        .venv/bin/python benchmarks/outbox_delivery.py

(`make bench` runs it with that URL.) PostgreSQL and Redis (LRB_BENCH_REDIS_URL, default
redis://127.0.0.1:6379/10, all keys under a prefix of this run's own, removed at the end). The
database ``<name>_outbox`` (the name must contain "bench") is dropped, re-created, migrated and
dropped at the end (`--keep` keeps it). Workers write e-mails with Django's file backend into a
temporary folder; the script checks that each notification was written exactly once. Workers
keep their database connections (CONN_MAX_AGE=60, as in docker-compose.yml; set CONN_MAX_AGE=0
to see the cost of a new connection per task).

For each worker set-up (the solo pool; prefork with 2 and with 4 processes) two paths are timed,
from the first write to the last row marked sent:

- on commit: 100 events, each its own transaction notifying 10 people (notifications.services
  .notify), each notification queued as its own delivery task on commit — the normal path;
- sweeper: 1,000 pending rows whose tasks were lost (a broker outage), delivered by
  reviews.sweep_outbox tasks (500 rows each; another is queued whenever delivery stalls).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchdb

REDIS_URL = os.environ.get("LRB_BENCH_REDIS_URL", "redis://127.0.0.1:6379/10")
CELERY = Path(sys.executable).with_name("celery")
WORKERS = [("solo", 1), ("prefork", 2), ("prefork", 4)]
EVENTS, PER_EVENT = 100, 10
TOTAL = EVENTS * PER_EVENT


class Worker:
    def __init__(self, pool: str, concurrency: int, env: dict[str, str], log: Path) -> None:
        self.log_path = log
        argv = [str(CELERY), "-A", "config", "worker", f"--pool={pool}"]
        argv += [f"--concurrency={concurrency}", "-Q", "celery", "-l", "INFO"]
        argv += ["--without-heartbeat", "--without-gossip", "--without-mingle"]
        argv += ["-n", f"bench-{uuid.uuid4().hex[:8]}@%h"]
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                argv,
                cwd=benchdb.REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while not re.search(r"\bready\.", log.read_text(errors="replace")):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                sys.exit(f"the worker did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def delivered(mail_dir: Path) -> Counter[str]:
    keys: Counter[str] = Counter()
    for file in mail_dir.glob("*.log"):
        keys.update(
            m.decode().strip()
            for m in re.findall(rb"^X-LRB-Notification: (.+)$", file.read_bytes(), re.M)
        )
    return keys


def wait_all_sent(*, stalled=None, timeout: float = 120) -> float:
    """Seconds until no row is pending or sending; ``stalled()`` is called when nothing moved
    for half a second."""
    from notifications.models import EmailStatus, Notification

    open_rows = Notification.objects.exclude(email_status=EmailStatus.SENT)
    last, last_change = None, time.monotonic()
    deadline = time.monotonic() + timeout
    while True:
        left = open_rows.count()
        now = time.monotonic()
        if left == 0:
            return now
        if left != last:
            last, last_change = left, now
        elif stalled is not None and now - last_change > 0.5:
            stalled()
            last_change = now
        if now > deadline:
            sys.exit(f"\ntimed out: {left} notifications not sent")
        time.sleep(0.02)


def on_commit_path(people) -> tuple[float, float]:
    from django.db import transaction

    from notifications.models import NotificationKind
    from notifications.services import notify

    started = time.monotonic()
    for e in range(EVENTS):
        with transaction.atomic():
            notify(
                recipients=people[(e * PER_EVENT) % len(people) :][:PER_EVENT],
                kind=NotificationKind.NUDGE,
                key=f"bench:{uuid.uuid4().hex}",
                subject=f"Benchmark event {e}",
                body="A benchmark notification.",
                link="http://127.0.0.1:8000/",
            )
    published = time.monotonic() - started
    return wait_all_sent() - started, published


def sweeper_path(people) -> tuple[float, int]:
    from notifications.models import Notification, NotificationKind
    from notifications.tasks import sweep_outbox

    Notification.objects.bulk_create(
        Notification(
            recipient=people[i % len(people)],
            email=people[i % len(people)].email,
            kind=NotificationKind.NUDGE,
            subject=f"Stranded notification {i}",
            dedupe_key=f"bench-stranded:{uuid.uuid4().hex}",
        )
        for i in range(TOTAL)
    )
    sweeps = 0

    def sweep() -> None:
        nonlocal sweeps
        sweep_outbox.delay()
        sweeps += 1

    started = time.monotonic()
    sweep()
    sweep()
    return wait_all_sent(stalled=sweep) - started, sweeps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()

    parsed = benchdb.bench_database_url()
    name = f"{parsed['NAME']}_outbox"
    prefix = f"lrb-bench-{uuid.uuid4().hex[:12]}:"
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        sys.exit(f"Redis at {REDIS_URL} does not answer: {exc}")

    benchdb.create_database(parsed, name)
    mail_dir = Path(tempfile.mkdtemp(prefix="lrb-bench-mail-"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "EMAIL_"))},
        "DATABASE_URL": benchdb.database_url(parsed, name),
        "CELERY_BROKER_URL": REDIS_URL,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "LRB_BENCH_KEYPREFIX": prefix,
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(mail_dir),
        "PYTHONPATH": os.pathsep.join([str(benchdb.REPO), str(Path(__file__).resolve().parent)]),
        "DJANGO_SETTINGS_MODULE": "bench_settings",
        # Persistent connections, as docker-compose.yml runs the worker; with 0 every task
        # opens a new PostgreSQL connection (Celery's Django fixup closes it after each task).
        "CONN_MAX_AGE": os.environ.get("CONN_MAX_AGE", "60"),
    }
    os.environ.update(env)
    benchdb.setup_django("bench_settings")

    from django.core.management import call_command
    from django.db import connection

    from accounts.models import User
    from notifications.models import Notification

    worker = None
    try:
        call_command("migrate", verbosity=0)
        people = User.objects.bulk_create(
            User(email=f"person{i}@bench.test", display_name=f"Person {i}", password="!")
            for i in range(100)
        )
        with connection.cursor() as cur:
            cur.execute("SHOW server_version")
            version = cur.fetchone()[0]
        print(
            f"PostgreSQL {version}, Redis {client.info()['redis_version']}, Python "
            f"{platform.python_version()}, {os.cpu_count()} CPUs; {TOTAL:,} notifications, "
            f"file e-mail backend, CONN_MAX_AGE={env['CONN_MAX_AGE']}"
        )
        header = (
            f"{'worker':<12} | {'on commit: s':>12} {'per s':>6} {'(publishing s)':>14} | "
            f"{'sweeper: s':>10} {'per s':>6} {'sweeps':>6}"
        )
        print(header)
        print("-" * len(header))
        for pool, concurrency in WORKERS:
            log = mail_dir.parent / f"lrb-bench-worker-{pool}-{concurrency}.log"
            worker = Worker(pool, concurrency, env, log)
            results = []
            for path in (on_commit_path, sweeper_path):
                Notification.objects.all().delete()
                for f in mail_dir.glob("*"):
                    f.unlink()
                seconds, extra = path(people)
                keys = delivered(mail_dir)
                assert len(keys) == TOTAL and set(keys.values()) == {1}, (
                    f"{path.__name__}: {sum(keys.values())} e-mails for {len(keys)} notifications"
                )
                results.append((seconds, extra))
            worker.stop()
            worker = None
            log.unlink()
            (commit_s, published), (sweep_s, sweeps) = results
            print(
                f"{pool + ' x' + str(concurrency):<12} | {commit_s:>12.2f} "
                f"{TOTAL / commit_s:>6.0f} {published:>14.2f} | {sweep_s:>10.2f} "
                f"{TOTAL / sweep_s:>6.0f} {sweeps:>6}",
                flush=True,
            )
    finally:
        if worker is not None:
            worker.stop()
        connection.close()
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        shutil.rmtree(mail_dir, ignore_errors=True)
        if not args.keep:
            benchdb.drop_database(parsed, name)


if __name__ == "__main__":
    main()
