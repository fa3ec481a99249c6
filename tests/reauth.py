"""Sessions that typed their password recently (accounts/reauth.py), for tests that sign in with
``force_login`` and then do what needs the password again (an override, a course's audit trail).
"""

from __future__ import annotations

import time

from django.test import Client

from accounts.reauth import SESSION_KEY


def confirm_password(client: Client, *, seconds_ago: float = 0) -> Client:
    session = client.session
    session[SESSION_KEY] = time.time() - seconds_ago
    session.save()
    return client
