"""Tests: the embedded default unless DATABASE_URL points at PostgreSQL; mail to the outbox."""

import hashlib
import os
import tempfile
from pathlib import Path

from .base import *  # noqa: F403
from .base import BASE_DIR, DATABASE_URL, database_from_url

# live_server runs Django in a thread next to Playwright's sync API.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

DEBUG = False
LRB_DEMO_ALLOWED = True
SECRET_KEY = "test-secret-key-not-for-production-use-0123456789abcdef"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# pytest itself always uses locmem (Django's test environment forces it); a Celery worker that
# tests/services starts with these settings writes files the test can read instead.
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")
if "EMAIL_FILE_PATH" in os.environ:
    EMAIL_FILE_PATH = os.environ["EMAIL_FILE_PATH"]
# Delivery runs in-process (on commit) unless a test starts a real worker with other settings.
CELERY_TASK_ALWAYS_EAGER = os.environ.get("CELERY_TASK_ALWAYS_EAGER", "1") == "1"
CELERY_TASK_EAGER_PROPAGATES = False
ALLOWED_HOSTS = ["*"]

# Per-process files in the shared temporary folder are named after the checkout as well as the
# process: runs of other checkouts on the same machine (whose process ids may repeat, in
# containers of their own) never open each other's test database.
_RUN = f"{hashlib.sha256(str(BASE_DIR).encode()).hexdigest()[:8]}-{os.getpid()}"

# Tests on SQLite use a real file (not :memory:) so that threads share one database.
_db = database_from_url(DATABASE_URL)
if _db["ENGINE"] == "django.db.backends.sqlite3":
    _tmp = Path(os.environ.get("LRB_TEST_DIR", tempfile.gettempdir()))
    _db["TEST"] = {"NAME": str(_tmp / f"lrb-test-{_RUN}.sqlite3")}
DATABASES = {"default": _db}

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    # Evidence files of a test run in a folder of its own (tests/evidence swap in S3).
    "evidence": {
        "BACKEND": "evidence.storage.AtomicFileSystemStorage",
        "OPTIONS": {
            "location": os.environ.get("LRB_TEST_EVIDENCE_ROOT")
            or str(Path(tempfile.gettempdir()) / f"lrb-test-evidence-{os.getuid()}-{_RUN}")
        },
    },
}

# Rendered dossier PDFs: a worker that tests/services starts is pointed at the test's folder.
MEDIA_ROOT = Path(
    os.environ.get("LRB_TEST_MEDIA_ROOT")
    or Path(tempfile.gettempdir()) / f"lrb-test-media-{os.getuid()}"
)

# SQLite's audit triggers refuse DELETE unless this is on; the test runner's flush between
# transactional tests needs it. UPDATE stays refused, and the tests that prove DELETE is refused
# turn it off.
AUDIT_ALLOW_TEST_FLUSH = True

# WhiteNoise warns at every request when STATIC_ROOT does not exist; tests never collect.
STATIC_ROOT = Path(tempfile.gettempdir()) / "lrb-test-static"
STATIC_ROOT.mkdir(exist_ok=True)

# Each test process keeps its own cache (pytest-django clears nothing in it: tests that count in
# it clear it themselves); tests/services point the processes they start at Redis.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
if os.environ.get("LRB_TEST_CACHE_URL"):
    CACHES = {
        "default": {
            "BACKEND": "config.cache.RedisCache",
            "LOCATION": os.environ["LRB_TEST_CACHE_URL"],
            "KEY_PREFIX": os.environ.get("LRB_TEST_CACHE_PREFIX", "lrb-test"),
        }
    }

# A fixed audit signing key, so that every test process signs and verifies with the same one.
AUDIT_SIGNING_KEY = "7e" * 32
AUDIT_CHECKPOINT_STORAGE = {
    "BACKEND": "django.core.files.storage.FileSystemStorage",
    "OPTIONS": {"location": str(Path(tempfile.gettempdir()) / f"lrb-test-checkpoints-{_RUN}")},
}

# The API's rate limits are tested on their own (tests/api/test_api_flows.py lowers them); the
# schema fuzzing and the persona matrix send thousands of requests with a few tokens.
REST_FRAMEWORK = {
    **REST_FRAMEWORK,  # noqa: F405
    "DEFAULT_THROTTLE_RATES": {"token": "1000000/min", "address": "1000000/min"},
}
