"""Real services for the notification suites: Redis as the broker, a Celery worker (and beat) in
separate processes, and a database both processes reach.

The workers run ``config.settings.test`` (through services_settings.py) against this pytest
run's test database (its name is read from the connection once pytest-django has created it),
use a Redis key prefix of the test's own on ``LRB_SERVICES_REDIS_URL`` (default db 9) and write
e-mails as files the test reads (Django's file backend, or the slow and flaky variants next to
this file). The test process publishes to the same prefix instead of running tasks eagerly.

Redis missing: skipped locally, a failure in CI (tests/environment.require_or_skip). The
database is PostgreSQL in CI (`.ci/run`, `make test-services`); a file-based SQLite test
database works too, since SQLite files are shared between processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from celery_harness import (
    REDIS_URL,
    Broker,
    CeleryServices,
    Mailbox,
    Publisher,
    redis_answers,
    worker_database_url,
)
from environment import require_or_skip


@pytest.fixture(scope="session")
def redis_url() -> str:
    require_or_skip(redis_answers(REDIS_URL), f"Redis at {REDIS_URL}")
    return REDIS_URL


@pytest.fixture
def broker(redis_url: str) -> Iterator[Broker]:
    """A key prefix of this test's own on the Redis test database, emptied afterwards."""
    broker = Broker(redis_url)
    yield broker
    broker.clear()


@pytest.fixture
def celery_services(
    transactional_db, broker: Broker, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[CeleryServices]:
    """Requests transactional_db so that the processes stop before pytest-django empties the
    tables (and the worker sees every row this test commits)."""
    mail_dir = tmp_path / "mail"
    mail_dir.mkdir()
    services = CeleryServices(broker, worker_database_url(), tmp_path, Mailbox(mail_dir))
    yield services
    services.shutdown()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(services.logs())


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.rep_call = report
    return report


@pytest.fixture
def publisher(broker: Broker) -> Iterator[Publisher]:
    pub = Publisher()
    pub.point_at(broker)
    yield pub
    pub.restore()
