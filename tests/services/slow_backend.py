"""An e-mail backend for the worker that tests/services starts: Django's file backend, but slow
and observable, so a test can kill the worker while it is in the middle of a delivery.

    EMAIL_BACKEND=slow_backend.SlowFileBackend   (tests/services on the worker's PYTHONPATH)
    EMAIL_FILE_PATH=<folder the test reads>
    LRB_SLOW_EMAIL_SECONDS=<sleep before writing>  LRB_SLOW_EMAIL_MARKER=<file touched first>
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from django.core.mail.backends.filebased import EmailBackend


class SlowFileBackend(EmailBackend):
    def send_messages(self, email_messages):
        delay = float(os.environ.get("LRB_SLOW_EMAIL_SECONDS", "0"))
        marker = os.environ.get("LRB_SLOW_EMAIL_MARKER")
        if marker:
            # Written before the sleep: the test kills the worker once it sees this.
            with Path(marker).open("a", encoding="utf-8") as f:
                for message in email_messages:
                    f.write(f"{os.getpid()} {','.join(message.to)}\n")
        time.sleep(delay)
        return super().send_messages(email_messages)
