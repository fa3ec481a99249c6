"""Races with real threads on a real database: each thread has its own connection and all of
them start together at a barrier."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from django.db import connection


def race(n: int, work: Callable[[int], Any]) -> list[tuple[str, Any]]:
    """Run work(i) in n threads released together; return ("ok", result) or
    ("error", exception) per thread."""
    barrier = threading.Barrier(n)
    results: list[tuple[str, Any]] = [("missing", None)] * n

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = ("ok", work(i))
        except Exception as exc:
            results[i] = ("error", exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return results


def outcome_kinds(results: list[tuple[str, Any]]) -> Counter:
    """{"ok": n, "<ExceptionName>": m, ...}"""
    return Counter("ok" if status == "ok" else type(value).__name__ for status, value in results)
