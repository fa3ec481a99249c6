"""The embedded default: SQLite, the filesystem broker, console e-mail, DEBUG on."""

from .base import *  # noqa: F403
from .base import CELERY_BROKER_FOLDER, CONTENT_SECURITY_POLICY, STORAGES, VAR_DIR, env_bool

DEBUG = env_bool("DEBUG", True)
LRB_DEMO_ALLOWED = True

for folder in (
    VAR_DIR,
    VAR_DIR / "staticfiles",
    CELERY_BROKER_FOLDER / "queue",
    CELERY_BROKER_FOLDER / "control",
    CELERY_BROKER_FOLDER / "processed",
):
    folder.mkdir(parents=True, exist_ok=True)

# runserver serves static files from STATICFILES_DIRS without collectstatic.
STORAGES = {
    **STORAGES,
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Django's debug pages (DEBUG on) style themselves inline: the policy only reports here, in the
# browser console, instead of leaving them unreadable. Tests and production enforce it.
if DEBUG:
    CONTENT_SECURITY_POLICY_REPORT_ONLY = CONTENT_SECURITY_POLICY
    CONTENT_SECURITY_POLICY = None  # type: ignore[assignment]
