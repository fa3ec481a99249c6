"""A fork server for the mutants' test runs: most of a short pytest run here is spent importing
third-party packages (Hypothesis, WeasyPrint, Celery, factory_boy), the same for every mutant.

    python mutation/forkserver.py serve SOCKET TIMEOUT   import them once, then for each request
                                                         fork a child that runs pytest.main
    python mutation/forkserver.py SOCKET PYTEST-ARGS...  the test command cosmic-ray runs: asks
                                                         the server for one run, exits with its
                                                         status

Nothing of the project (accounts, lifecycle, reviews, config, tests) is imported before the
fork, so each child imports the mutated file from disk. Requests are served one at a time.
"""

from __future__ import annotations

import json
import os
import socket
import sys

PRELOAD = [
    "pytest",
    "_pytest.python",
    "_pytest.fixtures",
    "pytest_django",
    "pytest_django.plugin",
    "xdist.plugin",
    "hypothesis",
    "hypothesis.strategies",
    "hypothesis.extra.pytestplugin",
    "factory",
    "factory.django",
    "celery",
    "kombu",
    "weasyprint",
    "markdown_it",
    "nh3",
    "psycopg2",
    "time_machine",
    "django",
    "django.db.models",
    "django.forms",
    "django.template",
    "django.urls",
    "django.core.handlers.wsgi",
]


def serve(path: str, timeout: int) -> None:
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception as error:  # a package that needs settings: the child imports it
            print(f"forkserver: not preloaded {name}: {error}", file=sys.stderr)
    for name in sys.modules:
        top = name.split(".")[0]
        if top in {"accounts", "lifecycle", "reviews", "config", "conftest", "factories"}:
            raise SystemExit(f"forkserver: project module {name} imported before the fork")
    if os.path.exists(path):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    while True:
        conn, _ = server.accept()
        with conn:
            request = json.loads(conn.makefile("r").readline())
            if request.get("stop"):
                return
            pid = os.fork()
            if pid == 0:
                server.close()
                conn.close()
                signal_alarm(timeout)
                os.chdir(request["cwd"])
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)
                os.dup2(devnull, 2)
                import pytest

                code = 1
                try:
                    code = int(pytest.main(request["args"]))
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            code = os.waitstatus_to_exitcode(status)
            conn.sendall(f"{code}\n".encode())


def signal_alarm(seconds: int) -> None:
    import signal

    signal.signal(signal.SIGALRM, signal.SIG_DFL)  # the default action ends the child
    signal.alarm(seconds)


def request(path: str, args: list[str]) -> int:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(path)
    client.sendall((json.dumps({"cwd": os.getcwd(), "args": args}) + "\n").encode())
    reply = client.makefile("r").readline().strip()
    code = int(reply) if reply else 1
    return 0 if code == 0 else 1


def stop(path: str) -> None:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(path)
    client.sendall(b'{"stop": true}\n')
    client.close()


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(request(sys.argv[1], sys.argv[2:]))
