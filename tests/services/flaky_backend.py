"""An e-mail backend for the worker that tests/services starts: it fails like an SMTP server
that hangs up, a set number of times per notification, then writes files like Django's file
backend.

    EMAIL_BACKEND=flaky_backend.FlakyFileBackend   (tests/services on the worker's PYTHONPATH)
    EMAIL_FILE_PATH=<folder the test reads>
    LRB_FLAKY_LOG=<file: one line per attempt: time, notification, outcome>
    LRB_FLAKY_FAILURES=<failures before a notification goes through>   (default 2)
    LRB_FLAKY_BROKEN=<comma-separated addresses that never go through>
"""

from __future__ import annotations

import os
import smtplib
import time
from pathlib import Path

from django.core.mail.backends.filebased import EmailBackend


def _attempts_so_far(log: Path, key: str) -> int:
    if not log.exists():
        return 0
    return sum(1 for line in log.read_text(encoding="utf-8").splitlines() if line.split()[1] == key)


class FlakyFileBackend(EmailBackend):
    def send_messages(self, email_messages):
        log = Path(os.environ["LRB_FLAKY_LOG"])
        failures = int(os.environ.get("LRB_FLAKY_FAILURES", "2"))
        broken = {a.strip() for a in os.environ.get("LRB_FLAKY_BROKEN", "").split(",") if a}
        for message in email_messages:
            key = message.extra_headers.get("X-LRB-Notification", "-")
            attempt = _attempts_so_far(log, key) + 1
            fails = attempt <= failures or bool(broken & set(message.to))
            with log.open("a", encoding="utf-8") as f:
                f.write(f"{time.time():.3f} {key} {attempt} {'refused' if fails else 'sent'}\n")
            if fails:
                raise smtplib.SMTPServerDisconnected(
                    f"flaky test server hung up (attempt {attempt} for {key})"
                )
        return super().send_messages(email_messages)
