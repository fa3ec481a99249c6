"""Settings for the Celery processes that tests/services start: the test settings, with every
Redis key under the test's own prefix (``LRB_SERVICES_KEYPREFIX``), so that runs sharing one
Redis (two engineers, two CI jobs) never consume each other's tasks."""

import os

from config.settings.test import *  # noqa: F403
from config.settings.test import CELERY_BROKER_TRANSPORT_OPTIONS

CELERY_BROKER_TRANSPORT_OPTIONS = {
    **CELERY_BROKER_TRANSPORT_OPTIONS,
    "global_keyprefix": os.environ["LRB_SERVICES_KEYPREFIX"],
}
