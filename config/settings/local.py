"""The embedded default: SQLite, the filesystem broker, console e-mail, DEBUG on."""

from .base import *  # noqa: F403
from .base import CELERY_BROKER_FOLDER, VAR_DIR, env_bool

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
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
