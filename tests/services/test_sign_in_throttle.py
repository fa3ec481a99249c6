"""The sign-in throttle across real server processes (issue 10, defect 4).

Two gunicorn processes serve this run's test database (PostgreSQL in CI) with Django's Redis
cache on the services Redis, as two web replicas would. The test's HTTP client picks its own
source address on the loopback network (127.0.0.3, 127.0.0.4, … are all this machine), so each
"client" arrives with a REMOTE_ADDR of its own and no forwarded header needs to be trusted.

- wrong passwords alternating between the two processes are refused after AXES_FAILURE_LIMIT
  failures counted across both (the old throttle counted per process);
- meanwhile the owner signs in from another address (the old throttle locked the account from
  everywhere);
- one address trying 20 accounts is locked, for that address only (the old throttle let it
  lock everyone behind it out of the accounts it tried).

Ports: LRB_SERVICES_HTTP_PORTS ("8150,8151"), else two free ports the system picks.
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import pytest
from celery_harness import REPO, wait_until, worker_database_url
from django.conf import settings

from accounts.models import User

PASSWORD = "correct-horse-battery-staple"
GUNICORN = Path(sys.executable).with_name("gunicorn")
LOGIN = "/accounts/login/"
WRONG_TEXT = "That e-mail address and password do not match an account"
LOCKED_TEXT = "Too many failed sign-in attempts"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http_ports() -> list[int]:
    configured = os.environ.get("LRB_SERVICES_HTTP_PORTS", "")
    if configured:
        return [int(port) for port in configured.split(",")][:2]
    return [free_port(), free_port()]


@dataclass
class Server:
    port: int
    log_path: Path
    process: subprocess.Popen = field(init=False)

    def start(self, env: dict[str, str]) -> Server:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    str(GUNICORN),
                    "config.wsgi:application",
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    "--workers",
                    "1",
                    "--access-logfile",
                    "-",
                ],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def answers(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"gunicorn on {self.port} exited:\n{self.log()}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            connection.request("GET", "/healthz")
            return connection.getresponse().status == 200
        except OSError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Visitor:
    """A browser on one loopback address: cookies (session, CSRF) per server."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.cookies: dict[int, SimpleCookie] = {}

    def _request(self, port: int, method: str, path: str, body: str = "", headers=None):
        jar = self.cookies.setdefault(port, SimpleCookie())
        connection = http.client.HTTPConnection(
            "127.0.0.1", port, timeout=30, source_address=(self.address, 0)
        )
        sent = {"Host": f"127.0.0.1:{port}", **(headers or {})}
        if jar:
            sent["Cookie"] = "; ".join(f"{k}={m.value}" for k, m in jar.items())
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        text = response.read().decode("utf-8", errors="replace")
        for header in response.headers.get_all("Set-Cookie") or []:
            jar.load(header)
        connection.close()
        return response.status, text

    def sign_in(self, port: int, email: str, password: str) -> tuple[int, str]:
        _, page = self._request(port, "GET", LOGIN)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token, page[:500]
        body = urlencode(
            {"csrfmiddlewaretoken": token.group(1), "username": email, "password": password}
        )
        return self._request(
            port,
            "POST",
            LOGIN,
            body,
            {"Content-Type": "application/x-www-form-urlencoded"},
        )


@pytest.fixture
def servers(transactional_db, redis_url: str, tmp_path: Path) -> Iterator[list[Server]]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": worker_database_url(),
        "LRB_TEST_CACHE_URL": redis_url,
        "LRB_TEST_CACHE_PREFIX": f"lrb-throttle-{uuid.uuid4().hex[:8]}",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.pop("LOGIN_THROTTLE_TRUSTED_PROXIES", None)
    started = [Server(port, tmp_path / f"gunicorn-{port}.log").start(env) for port in http_ports()]
    try:
        for server in started:
            wait_until(server.answers, timeout=60, what=f"gunicorn on {server.port}")
        yield started
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def alice(transactional_db) -> User:
    return User.objects.create_user(
        email="alice@example.test", password=PASSWORD, display_name="Alice"
    )


def test_wrong_passwords_alternating_between_two_processes_are_counted_together(servers, alice):
    limit = settings.AXES_FAILURE_LIMIT
    guesser = Visitor("127.0.0.3")

    statuses = [
        guesser.sign_in(servers[n % 2].port, alice.email, f"guess-{n}")[0] for n in range(3 * limit)
    ]

    # Every failure before the limit is checked and refused as wrong; the limit-th locks, and
    # from then on neither process checks a password from this address for this account.
    assert statuses == [200] * (limit - 1) + [429] * (2 * limit + 1)
    status, page = guesser.sign_in(servers[0].port, alice.email, PASSWORD)
    assert status == 429 and LOCKED_TEXT in page
    status, _ = guesser.sign_in(servers[1].port, alice.email, PASSWORD)
    assert status == 429

    # The owner, at home on another address, signs in on either process.
    for server in servers:
        status, _ = Visitor("127.0.0.4").sign_in(server.port, alice.email, PASSWORD)
        assert status == 302


def test_one_address_trying_twenty_accounts_is_locked_for_that_address_only(servers, alice):
    per_address = settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS
    sprayer = Visitor("127.0.0.5")

    statuses = [
        sprayer.sign_in(servers[n % 2].port, f"student{n}@example.test", "Spring2026!")[0]
        for n in range(per_address)
    ]

    assert statuses == [200] * (per_address - 1) + [429]
    for server in servers:
        status, page = sprayer.sign_in(server.port, alice.email, PASSWORD)
        assert status == 429 and LOCKED_TEXT in page
    # Everyone else, on their own addresses, is untouched: the owner and a classmate alike.
    status, _ = Visitor("127.0.0.6").sign_in(servers[1].port, alice.email, PASSWORD)
    assert status == 302
    status, page = Visitor("127.0.0.7").sign_in(servers[0].port, "student0@example.test", "x")
    assert status == 200 and WRONG_TEXT in page
