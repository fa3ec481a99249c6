"""The sign-up limit holds across processes once Django's cache is Redis: two separate Python
processes race to create accounts from one client address and one join code, and together
they get exactly the limit (with a per-process cache they would get twice as many)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 10
ATTEMPTS = 25

SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    import django
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    django.setup()
    from django.test import override_settings
    caches = {"default": {
        "BACKEND": "config.cache.RedisCache",
        "LOCATION": sys.argv[1],
        "KEY_PREFIX": sys.argv[2],
    }}
    with override_settings(CACHES=caches, SIGNUP_LIMIT_PER_ADDRESS=%(limit)d,
                           SIGNUP_LIMIT_PER_CODE=%(limit)d):
        from accounts import services
        start = float(sys.argv[3])
        while time.time() < start:
            time.sleep(0.005)
        taken = {"ip": 0, "code": 0}
        for _ in range(%(attempts)d):
            try:
                services.sign_up_take_place(ip="203.0.113.50")
                taken["ip"] += 1
            except services.SignUpLimited:
                pass
            try:
                services.sign_up_take_place(ip=None, join_code="DEMO2026")
                taken["code"] += 1
            except services.SignUpLimited:
                pass
        print(taken["ip"], taken["code"])
    """
) % {"limit": LIMIT, "attempts": ATTEMPTS}


def test_two_processes_sharing_redis_together_create_exactly_the_limit(redis_url):
    import time

    prefix = f"lrb-test-signup-{uuid.uuid4().hex}"
    start = str(time.time() + 2)  # both processes set up first, then race
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT, redis_url, prefix, start],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        results.append(tuple(int(n) for n in out.split()))
    try:
        assert sum(ip for ip, _ in results) == LIMIT, results
        assert sum(code for _, code in results) == LIMIT, results
    finally:
        import redis

        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
