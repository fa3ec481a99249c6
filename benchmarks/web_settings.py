"""The app as the benchmark suite serves it (benchmarks/bench_suite.py): production settings
(DEBUG off, the manifest static storage, the cached template loader) without what needs HTTPS
in front, so gunicorn can be spoken to in plain HTTP on 127.0.0.1."""

import os

os.environ.setdefault("SECRET_KEY", "benchmark-secret-key-not-for-production-0123456789abcdef")

from config.settings.production import *  # noqa: F403
from config.settings.production import BASE_DIR, TEMPLATES

DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
SECURE_SSL_REDIRECT = False
SECURE_HSTS_SECONDS = 0
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
STATIC_ROOT = BASE_DIR / "var" / "bench-static"
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}

# Explicitly the cached loader (Django's default with DEBUG off, named here so it is on).
TEMPLATES = [{**TEMPLATES[0], "APP_DIRS": False}]
TEMPLATES[0]["OPTIONS"] = {
    **TEMPLATES[0]["OPTIONS"],
    "loaders": [
        (
            "django.template.loaders.cached.Loader",
            [
                "django.template.loaders.filesystem.Loader",
                "django.template.loaders.app_directories.Loader",
            ],
        )
    ],
}
