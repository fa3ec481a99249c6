"""Settings shared by every environment. Everything that differs between machines comes from
the environment; the defaults are the embedded ones (SQLite, filesystem broker, console e-mail)."""

from __future__ import annotations

import base64
import hashlib
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(os.environ.get("LRB_VAR_DIR", BASE_DIR / "var"))


def env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None:
        raise ImproperlyConfigured(f"Set the {name} environment variable.")
    return value


def env_bool(name: str, default: bool = False) -> bool:
    return env(name, "1" if default else "0").strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


SECRET_KEY = env("SECRET_KEY", "insecure-development-key-change-me-lifecycle-review-board")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "crispy_forms",
    "crispy_bootstrap5",
    "django_htmx",
    "django_celery_beat",
    "axes",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "accounts",
    "lifecycle",
    "reviews",
    "notifications",
    "evidence",
    "grading",
    "api",
    "lti",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
    "config.middleware.PermissionsPolicyMiddleware",
    # Last: turns a sign-in that axes refused into the "too many attempts" page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "notifications.context_processors.notifications",
                "reviews.navigation.reviewer_navigation",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# SQLite under var/ unless DATABASE_URL says otherwise. Services own their transactions, so
# ATOMIC_REQUESTS stays off.
DEFAULT_SQLITE_PATH = VAR_DIR / "db.sqlite3"
DATABASE_URL = env("DATABASE_URL", f"sqlite:///{DEFAULT_SQLITE_PATH}")


def database_from_url(url: str) -> dict[str, Any]:
    parsed = dj_database_url.parse(url, conn_max_age=int(env("CONN_MAX_AGE", "0")))
    config: dict[str, Any] = dict(parsed)
    config["ATOMIC_REQUESTS"] = False
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # IMMEDIATE takes the write lock when a transaction starts, so two writers queue on the
        # busy timeout instead of failing with "database is locked" on upgrade; WAL lets readers
        # go on while one writes.
        config["OPTIONS"] = {
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": (
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
            ),
        }
    return config


DATABASES = {"default": database_from_url(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Django's ModelBackend behind axes' check: a locked (account, address) is refused before any
# password is compared. One backend, so login() after sign-up needs no backend argument.
AUTHENTICATION_BACKENDS = ["accounts.throttle.ThrottledModelBackend"]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env("STATIC_ROOT", str(VAR_DIR / "staticfiles")))
# Files the app writes (dossier PDFs rendered by the worker), read back only through views that
# check access: never served as static files. Web and worker processes must share it.
MEDIA_ROOT = Path(env("MEDIA_ROOT", str(VAR_DIR / "media")))
STORAGES: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- Evidence files -------------------------------------------------------------------------
# Files teams attach to answers (evidence/), named by their SHA-256 and never changed. On disk
# under var/evidence/ by default; with EVIDENCE_S3_BUCKET set, in S3-compatible object storage
# (MinIO in docker-compose) through django-storages. Served only through views that check access.
EVIDENCE_ROOT = Path(env("EVIDENCE_ROOT", str(VAR_DIR / "evidence")))
EVIDENCE_S3_BUCKET = env("EVIDENCE_S3_BUCKET", "")
if EVIDENCE_S3_BUCKET:
    STORAGES["evidence"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": EVIDENCE_S3_BUCKET,
            "endpoint_url": env("EVIDENCE_S3_ENDPOINT_URL", "") or None,
            "access_key": env("EVIDENCE_S3_ACCESS_KEY_ID", "") or None,
            "secret_key": env("EVIDENCE_S3_SECRET_ACCESS_KEY", "") or None,
            "region_name": env("EVIDENCE_S3_REGION", "us-east-1"),
            "addressing_style": env("EVIDENCE_S3_ADDRESSING_STYLE", "path"),
            "location": env("EVIDENCE_S3_PREFIX", "evidence"),
            "default_acl": None,
            "querystring_auth": True,
            "file_overwrite": True,
            # A MinIO outage fails an upload in seconds, with a message, not after minutes.
            "client_config": __import__("botocore.config", fromlist=["Config"]).Config(
                connect_timeout=3, read_timeout=20, retries={"max_attempts": 2}
            ),
        },
    }
else:
    STORAGES["evidence"] = {
        "BACKEND": "evidence.storage.AtomicFileSystemStorage",
        "OPTIONS": {"location": str(EVIDENCE_ROOT)},
    }
EVIDENCE_MAX_BYTES = int(env("EVIDENCE_MAX_BYTES", str(10 * 1024 * 1024)))
EVIDENCE_MAX_NOTEBOOK_BYTES = int(env("EVIDENCE_MAX_NOTEBOOK_BYTES", str(5 * 1024 * 1024)))

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

# --- E-mail ---------------------------------------------------------------------------------
EMAIL_BACKEND = env("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env("EMAIL_HOST", "localhost")
EMAIL_PORT = int(env("EMAIL_PORT", "25"))
EMAIL_HOST_USER = env("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = int(env("EMAIL_TIMEOUT", "30"))
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "Lifecycle Review Board <board@localhost>")
SERVER_EMAIL = env("SERVER_EMAIL", DEFAULT_FROM_EMAIL)
SITE_URL = env("SITE_URL", "http://127.0.0.1:8000")

# --- Audit trail ----------------------------------------------------------------------------
# The Ed25519 key that signs export heads and checkpoints (lifecycle/signing.py): a PEM or a
# 64-hex seed from the environment; without one, a key file generated under var/ on first use.
AUDIT_SIGNING_KEY = env("AUDIT_SIGNING_KEY", "")
AUDIT_SIGNING_KEY_FILE = Path(env("AUDIT_SIGNING_KEY_FILE", str(VAR_DIR / "audit-signing-key.pem")))
# Where the daily signed checkpoints of the chain head go (any Django storage backend).
AUDIT_CHECKPOINT_STORAGE = {
    "BACKEND": env("AUDIT_CHECKPOINT_BACKEND", "django.core.files.storage.FileSystemStorage"),
    "OPTIONS": {"location": env("AUDIT_CHECKPOINT_DIR", str(VAR_DIR / "audit-checkpoints"))},
}

# --- Sign-up --------------------------------------------------------------------------------
# Counted in Django's cache (shared across processes once CACHES points at Redis).
SIGNUP_LIMIT_PER_ADDRESS = int(env("SIGNUP_LIMIT_PER_ADDRESS", "10"))
SIGNUP_LIMIT_PER_CODE = int(env("SIGNUP_LIMIT_PER_CODE", "200"))
SIGNUP_LIMIT_WINDOW_SECONDS = int(env("SIGNUP_LIMIT_WINDOW_SECONDS", "3600"))
EMAIL_VERIFICATION_MAX_AGE_SECONDS = int(env("EMAIL_VERIFICATION_MAX_AGE_SECONDS", "259200"))

# --- Celery ---------------------------------------------------------------------------------
# The embedded default needs no broker server: kombu's filesystem transport keeps its queue in
# folders under var/. Production sets CELERY_BROKER_URL=redis://...
CELERY_BROKER_URL = env("CELERY_BROKER_URL", "filesystem://localhost//")
CELERY_BROKER_FOLDER = VAR_DIR / "broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_FOLDER / "queue"),
        "data_folder_out": str(CELERY_BROKER_FOLDER / "queue"),
        "control_folder": str(CELERY_BROKER_FOLDER / "control"),
        "processed_folder": str(CELERY_BROKER_FOLDER / "processed"),
        "store_processed": False,
    }
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", "") or None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    # axes logs every failed sign-in at WARNING ("AXES: New login failure by …"); its INFO
    # lines (start-up, each success) are noise.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}

# Publishing must not hang a request when the broker is down: the outbox row is already
# committed and the sweeper delivers it later.
CELERY_TASK_PUBLISH_RETRY = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redis redelivers an unacknowledged task after this; no task waits longer than it (delays
# that long belong to the database-backed beat schedule).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    **globals().get("CELERY_BROKER_TRANSPORT_OPTIONS", {}),
    "visibility_timeout": 3600,
    # Redis (other transports ignore these): without a read timeout, a broker that accepts the
    # connection but never answers (paused, failing over, a half-open connection) holds a
    # publish, and the request whose outbox row it announces, forever.
    "socket_connect_timeout": 2,
    "socket_timeout": 3,
}
CELERY_TASK_SOFT_TIME_LIMIT = 120
CELERY_TASK_TIME_LIMIT = 180
# A dossier render not finished this long after it was asked for (or claimed) is abandoned and
# may be asked for again; keep it above reviews.render_dossier_pdf's hard time limit (150 s).
DOSSIER_RENDER_LEASE_SECONDS = int(env("DOSSIER_RENDER_LEASE_SECONDS", "300"))
NOTIFICATION_MAX_ATTEMPTS = int(env("NOTIFICATION_MAX_ATTEMPTS", "5"))
# A row left in "sending" by a worker that died goes back to pending after the lease; keep it
# longer than any task's time limit. Failed sends retry after base, 2 x base, 4 x base… seconds.
NOTIFICATION_LEASE_SECONDS = int(env("NOTIFICATION_LEASE_SECONDS", "300"))
NOTIFICATION_BACKOFF_SECONDS = int(env("NOTIFICATION_BACKOFF_SECONDS", "60"))

# --- Cache ----------------------------------------------------------------------------------
# Shared by every web and worker process (sign-up rate limits count in it). Redis when the app
# has one: CACHE_URL, else REDIS_URL, else the Celery broker if that is Redis. The embedded
# default keeps a file-based cache under var/cache/, which runserver and the worker on one
# machine share without a server. config.cache.RedisCache is Django's, keeping one Redis client
# per process instead of building one per cache call.
CACHE_URL = env("CACHE_URL", "") or env("REDIS_URL", "")
if not CACHE_URL and CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CACHE_URL = CELERY_BROKER_URL
if CACHE_URL:
    CACHES = {
        "default": {
            "BACKEND": "config.cache.RedisCache",
            "LOCATION": CACHE_URL,
            "KEY_PREFIX": env("CACHE_KEY_PREFIX", "lrb"),
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 3},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }
# Pages' content cached by what it shows (lifecycle/freshness.py): a fragment lives at most this
# long; every change to what it shows replaces it sooner. 0 renders every page afresh.
FRAGMENT_CACHE_SECONDS = int(env("FRAGMENT_CACHE_SECONDS", "120"))

# --- Sign-in throttle (django-axes; accounts/throttle.py) -----------------------------------
# Counts live in the database (axes.AccessAttempt), shared by every process on both databases.
# An (account, address) pair locks after 5 failures; an address locks after 20 failures over
# any accounts; both lift after 15 minutes. The owner is never locked out from another address.
AXES_HANDLER = "accounts.throttle.AccountAddressHandler"
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
AXES_FAILURE_LIMIT = int(env("LOGIN_FAILURE_LIMIT", "5"))
LOGIN_FAILURE_LIMIT_PER_ADDRESS = int(env("LOGIN_FAILURE_LIMIT_PER_ADDRESS", "20"))
AXES_COOLOFF_TIME = timedelta(minutes=int(env("LOGIN_COOLOFF_MINUTES", "15")))
# The sign-in forms' field, and the key under which axes passes the address to the callable
# (its default is the user model's USERNAME_FIELD, "email").
AXES_USERNAME_FORM_FIELD = "username"
AXES_USERNAME_CALLABLE = "accounts.throttle.sign_in_name"
AXES_CLIENT_IP_CALLABLE = "accounts.throttle.client_ip"
# How many reverse proxies append to X-Forwarded-For (0: the header is not believed, the
# throttle counts REMOTE_ADDR). Set it to 1 behind one proxy that overwrites the header.
LOGIN_THROTTLE_TRUSTED_PROXIES = int(env("LOGIN_THROTTLE_TRUSTED_PROXIES", "0"))
AXES_LOCKOUT_TEMPLATE = "accounts/locked.html"
AXES_ENABLE_ACCESS_FAILURE_LOG = True

# --- Security headers -----------------------------------------------------------------------
# A Content-Security-Policy without 'unsafe-inline': every script and style is a static file
# (templates carry no <script> bodies, <style> blocks or style="" attributes; htmx's own
# indicator styles are off, see base.html). The one exception is templates/500.html, which is
# self-contained on purpose and allowed by the hash of its <style> block.


def inline_style_hash(template: Path) -> str:
    css = template.read_text(encoding="utf-8").split("<style>", 1)[1].split("</style>", 1)[0]
    digest = base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode("ascii")
    return f"'sha256-{digest}'"


CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, inline_style_hash(BASE_DIR / "templates" / "500.html")],
        # Bootstrap draws its form and navbar icons as data: SVGs from its stylesheet.
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [SELF],
        "object-src": [NONE],
    },
}
# Powerful browser features the board never uses are off for every page (and any frame).
PERMISSIONS_POLICY: dict[str, list[str]] = {
    feature: []
    for feature in (
        "accelerometer",
        "camera",
        "display-capture",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "midi",
        "payment",
        "usb",
    )
}
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"


# --- REST API (api/) ------------------------------------------------------------------------
# Personal access tokens (Bearer) or the browser session, which DRF holds to Django's CSRF
# check. Every view also needs the token's scope (api/permissions.py). Rates per token or
# person and per address are counted in the default cache.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "api.permissions.TokenScope",
    ],
    "DEFAULT_THROTTLE_CLASSES": [
        "api.throttling.TokenRateThrottle",
        "api.throttling.AddressRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "token": env("API_RATE_PER_TOKEN", "600/min"),
        "address": env("API_RATE_PER_ADDRESS", "1200/min"),
    },
    "DEFAULT_PAGINATION_CLASS": "api.pagination.PagePagination",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Lifecycle Review Board API",
    "DESCRIPTION": (
        "Read what you can see and drive your stages from notebooks and CI. Authenticate with "
        "`Authorization: Bearer <personal access token>` (profile page → Access tokens). "
        "Errors are RFC 9457 problem details."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "api.schema.add_problem_responses",
    ],
    "ENUM_NAME_OVERRIDES": {
        "DecisionOutcomeEnum": "reviews.models.DecisionOutcome",
        "ProjectOutcomeEnum": "lifecycle.models.Outcome",
    },
}

# --- Webhooks (api/webhooks.py) --------------------------------------------------------------
# Outgoing deliveries refuse loopback, private and link-local addresses after DNS resolution;
# hosts named here (comma-separated, e.g. a test receiver) are allowed anyway, over http too.
WEBHOOK_ALLOWED_HOSTS = [
    h.strip() for h in env("WEBHOOK_ALLOWED_HOSTS", "").split(",") if h.strip()
]
WEBHOOK_TIMEOUT_SECONDS = float(env("WEBHOOK_TIMEOUT_SECONDS", "5"))
WEBHOOK_MAX_ATTEMPTS = int(env("WEBHOOK_MAX_ATTEMPTS", "8"))

# --- LTI 1.3 (lti/) -------------------------------------------------------------------------
# Platforms are registered in the Django admin. The tool's signing key: a PEM from the
# environment in production; without one, a key generated into the database on first use
# (rotate with `manage.py lti_generate_key`).
LTI_TOOL_PRIVATE_KEY = env("LTI_TOOL_PRIVATE_KEY", "").replace("\\n", "\n")
LTI_HTTP_TIMEOUT = float(env("LTI_HTTP_TIMEOUT", "10"))
LTI_CLOCK_LEEWAY_SECONDS = int(env("LTI_CLOCK_LEEWAY_SECONDS", "30"))
LTI_NRPS_MAX_PAGES = int(env("LTI_NRPS_MAX_PAGES", "200"))
LTI_NONCE_RETENTION_DAYS = int(env("LTI_NONCE_RETENTION_DAYS", "7"))
# Grade passback: a failed send retries after base, 2 x base, 4 x base… seconds; after
# LTI_SCORE_MAX_ATTEMPTS it is shown to course staff as failed (never dropped).
LTI_SCORE_MAX_ATTEMPTS = int(env("LTI_SCORE_MAX_ATTEMPTS", "5"))
LTI_SCORE_BACKOFF_SECONDS = int(env("LTI_SCORE_BACKOFF_SECONDS", "60"))
LTI_SCORE_LEASE_SECONDS = int(env("LTI_SCORE_LEASE_SECONDS", "300"))
