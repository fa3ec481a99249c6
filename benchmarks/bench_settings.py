"""Settings for the Celery workers that benchmarks/outbox_delivery.py starts (and for the script
itself): the shared base settings, every Redis key under the run's own prefix
(``LRB_BENCH_KEYPREFIX``) so the benchmark never meets another user of the same Redis."""

import os

from config.settings.base import *  # noqa: F403
from config.settings.base import CELERY_BROKER_TRANSPORT_OPTIONS

CELERY_BROKER_TRANSPORT_OPTIONS = {
    **CELERY_BROKER_TRANSPORT_OPTIONS,
    "global_keyprefix": os.environ.get("LRB_BENCH_KEYPREFIX", ""),
}
if "EMAIL_FILE_PATH" in os.environ:  # the file backend's folder (base settings do not read it)
    EMAIL_FILE_PATH = os.environ["EMAIL_FILE_PATH"]
