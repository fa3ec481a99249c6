"""What tests/services drive: Celery workers and beat in separate processes on a Redis test
broker, sharing this pytest run's test database, writing e-mails as files the tests read; and this
process's Celery app turned from eager into a publisher. The fixtures are in conftest.py."""

from __future__ import annotations

import ast
import email
import email.policy
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.db import connection
from environment import require_or_skip

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CELERY = Path(sys.executable).with_name("celery")
REDIS_URL = os.environ.get("LRB_SERVICES_REDIS_URL", "redis://127.0.0.1:6379/9")
# Nothing listens here: the publisher's view of a broker that is down.
DEAD_BROKER_URL = os.environ.get("LRB_SERVICES_DEAD_BROKER_URL", "redis://127.0.0.1:6390/0")
FILE_BACKEND = "django.core.mail.backends.filebased.EmailBackend"


# --- waiting ----------------------------------------------------------------------------------


def wait_until(
    predicate: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.1
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


# --- what the workers did -----------------------------------------------------------------


DELIVERED = re.compile(r"reviews\.deliver_notification\[[^\]]+\] succeeded in \S+ '([\w-]+)'")
SWEPT = re.compile(r"reviews\.sweep_outbox\[[^\]]+\] succeeded in \S+ (\{.*?\})")


def delivery_outcomes(*logs: str) -> Counter[str]:
    """What the delivery attempts in worker logs came to ('sent', 'not-claimed', 'retry'…):
    each deliver_notification result, plus the counts in each sweep_outbox result."""
    outcomes: Counter[str] = Counter()
    for log in logs:
        outcomes.update(DELIVERED.findall(log))
        for result in SWEPT.findall(log):
            counts = ast.literal_eval(result)
            outcomes.update({k: v for k, v in counts.items() if k != "released"})
    return outcomes


# --- Redis ------------------------------------------------------------------------------------


def redis_client(url: str):
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)


def redis_answers(url: str) -> bool:
    try:
        return bool(redis_client(url).ping())
    except Exception:
        return False


@dataclass
class Broker:
    """One test's corner of Redis: every key the publisher, workers and beat use starts with
    ``prefix`` (kombu's ``global_keyprefix``), so runs sharing a Redis never meet."""

    url: str
    prefix: str = field(default_factory=lambda: f"lrb-services-{uuid.uuid4().hex[:12]}:")

    def clear(self) -> None:
        client = redis_client(self.url)
        keys = list(client.scan_iter(match=f"{self.prefix}*", count=1000))
        if keys:
            client.delete(*keys)


# --- the database the worker shares ------------------------------------------------------------


def worker_database_url() -> str:
    """A DATABASE_URL for the test database pytest-django created (``test_<name>``)."""
    s = connection.settings_dict
    if s["ENGINE"] == "django.db.backends.postgresql":
        auth = quote(s["USER"] or "", safe="")
        if s["PASSWORD"]:
            auth += ":" + quote(s["PASSWORD"], safe="")
        host = s["HOST"] or "127.0.0.1"
        port = s["PORT"] or "5432"
        return f"postgres://{auth}@{host}:{port}/{quote(s['NAME'], safe='')}"
    if s["ENGINE"] == "django.db.backends.sqlite3":
        name = str(s["NAME"])
        require_or_skip(
            name != ":memory:" and "mode=memory" not in name,
            "a test database that another process can open (file-based SQLite or PostgreSQL)",
        )
        return f"sqlite:///{Path(name).resolve()}"
    pytest.fail(f"tests/services do not know how to share a {s['ENGINE']} database")


# --- e-mails the worker wrote ----------------------------------------------------------------


@dataclass
class Mailbox:
    """The folder Django's file backend writes to: one file per connection, messages separated
    by a line of 79 dashes."""

    path: Path

    def messages(self) -> list[email.message.EmailMessage]:
        found = []
        for file in sorted(self.path.glob("*.log")):
            for chunk in re.split(rb"\n-{79}\n", file.read_bytes()):
                if chunk.strip():
                    found.append(email.message_from_bytes(chunk, policy=email.policy.default))
        return found

    def keys(self) -> Counter[str]:
        """How often each notification (its X-LRB-Notification header) was e-mailed."""
        return Counter(str(m["X-LRB-Notification"]) for m in self.messages())


# --- Celery processes ---------------------------------------------------------------------------


@dataclass
class CeleryProcess:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen = field(init=False)

    def start(self) -> CeleryProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.argv, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_for_log(self, pattern: str, timeout: float = 30) -> None:
        def seen() -> bool:
            if not self.alive():
                raise AssertionError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.log()[-4000:]}"
                )
            return re.search(pattern, self.log()) is not None

        try:
            wait_until(seen, timeout=timeout, what=f"{self.name} to log {pattern!r}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- {self.name} log ---\n{self.log()[-4000:]}") from None

    def kill(self) -> None:
        """SIGKILL: no warm shutdown, no acknowledgement, nothing cleaned up."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 15) -> None:
        if not self.alive():
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()


@dataclass
class CeleryServices:
    """Starts workers and beat on the test broker and database; stops them at teardown."""

    broker: Broker
    database_url: str
    tmp: Path
    mailbox: Mailbox
    started: list[CeleryProcess] = field(default_factory=list)

    def env(self, **overrides: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PYTEST_", "CELERY_", "EMAIL_", "NOTIFICATION_", "LRB_"))
        }
        env.update(
            # config.settings.test plus the broker key prefix (services_settings.py).
            DJANGO_SETTINGS_MODULE="services_settings",
            LRB_SERVICES_KEYPREFIX=self.broker.prefix,
            DATABASE_URL=self.database_url,
            CELERY_BROKER_URL=self.broker.url,
            CELERY_TASK_ALWAYS_EAGER="0",
            EMAIL_BACKEND=FILE_BACKEND,
            EMAIL_FILE_PATH=str(self.mailbox.path),
            PYTHONPATH=os.pathsep.join([str(REPO), str(HERE)]),
            PYTHONUNBUFFERED="1",
        )
        env.update(overrides)
        return env

    def worker(self, *, ready: bool = True, **env: str) -> CeleryProcess:
        n = sum(p.name.startswith("worker") for p in self.started) + 1
        nodename = f"lrb-services-{n}-{uuid.uuid4().hex[:8]}@%h"
        argv = [
            str(CELERY), "-A", "config", "worker",
            "--pool=solo", "--concurrency=1", "-Q", "celery",
            "--without-heartbeat", "--without-gossip", "--without-mingle",
            "-l", "INFO", "-n", nodename,
        ]  # fmt: skip
        worker = CeleryProcess(f"worker-{n}", argv, self.env(**env), self.tmp / f"worker-{n}.log")
        self.started.append(worker.start())
        if ready:
            worker.wait_for_log(r"\bready\.", timeout=40)
        return worker

    def beat(self, **env: str) -> CeleryProcess:
        argv = [
            str(CELERY), "-A", "config", "beat", "-l", "INFO",
            "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler",
            "--max-interval", "5",
        ]  # fmt: skip
        beat = CeleryProcess("beat", argv, self.env(**env), self.tmp / "beat.log")
        self.started.append(beat.start())
        return beat

    def celery(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """A one-off `celery -A config …` command (inspect, control) against the test broker."""
        return subprocess.run(
            [str(CELERY), "-A", "config", *args],
            cwd=REPO,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def shutdown(self) -> None:
        for process in reversed(self.started):
            try:
                process.stop()
            except Exception:
                process.kill()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.log()[-3000:]}" for p in self.started)


# --- the test process as a publisher ----------------------------------------------------------


class Publisher:
    """Points this process's Celery app at a broker: `.delay()` and the outbox's on-commit
    hook publish there instead of running the task eagerly."""

    def __init__(self) -> None:
        from config.celery_app import app

        self.app = app
        self.saved = {
            "broker_url": app.conf.broker_url,
            "broker_transport_options": dict(app.conf.broker_transport_options or {}),
            "task_always_eager": app.conf.task_always_eager,
        }

    def _reset_pools(self) -> None:
        # Drop the app's references only: kombu keeps one pool per broker URL and options
        # process-wide and hands the same one out again; closing it would break the next test.
        self.app._pool = None
        amqp = self.app.__dict__.get("amqp")
        if amqp is not None:
            amqp._producer_pool = None

    def point_at(self, broker: Broker | str) -> None:
        """A Broker, or the URL of one that is down."""
        url, prefix = (broker.url, broker.prefix) if isinstance(broker, Broker) else (broker, "")
        self._reset_pools()
        self.app.conf.update(
            broker_url=url,
            broker_transport_options={
                **self.saved["broker_transport_options"],
                "global_keyprefix": prefix,
            },
            task_always_eager=False,
        )

    def restore(self) -> None:
        self._reset_pools()
        self.app.conf.update(**self.saved)
