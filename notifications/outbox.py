"""Delivering the outbox: claim a row with a conditional UPDATE, send, record the outcome.

A row is claimed by flipping it from pending to sending in one UPDATE that names the state it
expects; only one worker can win that, so no e-mail goes out twice. A worker that dies holding
a claim leaves the row in "sending"; after the lease the sweeper puts it back to pending.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import defaultdict
from collections.abc import Iterable

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from .models import EmailStatus, Notification

log = logging.getLogger(__name__)

# Read at call time, not import time, so that override_settings and a worker's environment
# (NOTIFICATION_* variables, see config/settings/base.py) take effect.


def max_attempts() -> int:
    return int(getattr(settings, "NOTIFICATION_MAX_ATTEMPTS", 5))


def lease() -> dt.timedelta:
    return dt.timedelta(seconds=getattr(settings, "NOTIFICATION_LEASE_SECONDS", 300))


def backoff(attempts: int) -> dt.timedelta:
    """base, 2 x base, 4 x base… seconds after the 1st, 2nd, 3rd… failure (base: 60)."""
    base = getattr(settings, "NOTIFICATION_BACKOFF_SECONDS", 60)
    return dt.timedelta(seconds=base * 2 ** max(0, attempts - 1))


def preferences_link() -> str:
    # The fieldset of the profile form that holds the e-mail preference.
    return settings.SITE_URL.rstrip("/") + reverse("accounts:profile") + "#notification-preferences"


def claim(notification_id: int) -> bool:
    now = timezone.now()
    return bool(
        Notification.objects.filter(
            pk=notification_id,
            email_status=EmailStatus.PENDING,
            email_next_attempt_at__lte=now,
        ).update(
            email_status=EmailStatus.SENDING,
            email_claimed_at=now,
            email_attempts=F("email_attempts") + 1,
        )
    )


def build_message(notification: Notification) -> EmailMultiAlternatives:
    context = {"n": notification, "preferences": preferences_link()}
    message = EmailMultiAlternatives(
        subject=notification.subject,
        body=render_to_string("notifications/emails/notification.txt", context),
        to=[notification.email],
        headers={
            # Receivers and tests can tell a retried delivery of the same notification.
            "X-LRB-Notification": notification.dedupe_key,
            "List-Unsubscribe": f"<{context['preferences']}>",
        },
    )
    message.attach_alternative(
        render_to_string("notifications/emails/notification.html", context), "text/html"
    )
    return message


def deliver(notification_id: int) -> str:
    """Send one notification's e-mail if it is due; returns what happened."""
    if not claim(notification_id):
        return "not-claimed"
    notification = Notification.objects.get(pk=notification_id)
    try:
        build_message(notification).send()
    except Exception as exc:
        failed = notification.email_attempts >= max_attempts()
        Notification.objects.filter(pk=notification_id, email_status=EmailStatus.SENDING).update(
            email_status=EmailStatus.FAILED if failed else EmailStatus.PENDING,
            email_error=f"{type(exc).__name__}: {exc}"[:2000],
            email_next_attempt_at=timezone.now() + backoff(notification.email_attempts),
        )
        log.warning(
            "notification %s: attempt %s failed: %s",
            notification_id,
            notification.email_attempts,
            exc,
        )
        return "failed" if failed else "retry"
    Notification.objects.filter(pk=notification_id, email_status=EmailStatus.SENDING).update(
        email_status=EmailStatus.SENT, email_sent_at=timezone.now(), email_error=""
    )
    return "sent"


def release_stale_claims() -> int:
    """Rows a dead worker left in 'sending' go back to pending after the lease. A row whose
    worker died on every one of its attempts is given up as failed: an e-mail that kills the
    worker would otherwise be retried for ever."""
    stale = Q(email_status=EmailStatus.SENDING, email_claimed_at__lt=timezone.now() - lease())
    Notification.objects.filter(stale, email_attempts__gte=max_attempts()).update(
        email_status=EmailStatus.FAILED,
        email_error="The worker stopped while sending, on every attempt.",
    )
    return Notification.objects.filter(stale).update(email_status=EmailStatus.PENDING)


def due_ids(limit: int = 500) -> list[int]:
    return list(
        Notification.objects.filter(
            email_status=EmailStatus.PENDING, email_next_attempt_at__lte=timezone.now()
        )
        .order_by("email_next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )


def sweep(limit: int = 500, budget_seconds: float = 45.0) -> dict[str, int]:
    """Deliver whatever is pending and due (the broker may have lost the task). Stops after
    ``budget_seconds``, inside the task's soft time limit, and leaves the rest to the next
    sweep: a slow SMTP server must not turn the time limit into a recorded failure."""
    released = release_stale_claims()
    counts: dict[str, int] = defaultdict(int)
    counts["released"] = released
    deadline = time.monotonic() + budget_seconds
    for pk in due_ids(limit):
        if time.monotonic() > deadline:
            counts["left"] += 1
            continue
        counts[deliver(pk)] += 1
    return dict(counts)


def retry_failed(ids: Iterable[int]) -> int:
    """Give failed e-mails a fresh set of attempts (the admin's "Retry failed e-mails"). Only
    rows still failed are touched, so a retry racing a delivery changes nothing twice; the
    error stays until a delivery succeeds."""
    with transaction.atomic():
        retried = list(
            Notification.objects.select_for_update()
            .filter(pk__in=list(ids), email_status=EmailStatus.FAILED)
            .values_list("pk", flat=True)
        )
        Notification.objects.filter(pk__in=retried, email_status=EmailStatus.FAILED).update(
            email_status=EmailStatus.PENDING,
            email_attempts=0,
            email_next_attempt_at=timezone.now(),
            email_claimed_at=None,
        )
        if retried:
            from .tasks import enqueue_delivery

            transaction.on_commit(lambda: enqueue_delivery(retried))
    return len(retried)


def send_digests(now: dt.datetime | None = None) -> int:
    """One e-mail per person summarising the notifications held for their daily digest."""
    now = now or timezone.now()
    sent = 0
    recipients = (
        Notification.objects.filter(email_status=EmailStatus.DIGEST, created_at__lte=now)
        # Without order_by() the model's ordering joins the SELECT DISTINCT and every row
        # comes back, one per notification instead of one per person.
        .order_by("recipient_id")
        .values_list("recipient_id", flat=True)
        .distinct()
    )
    for recipient_id in list(recipients):
        try:
            sent += _send_digest(recipient_id, now)
        except Exception as exc:
            # One unreachable mailbox must not cost everyone else their digest; this person's
            # rows rolled back to 'digest' and go out with tomorrow's.
            log.warning("digest for user %s not sent: %s", recipient_id, exc)
    return sent


def _send_digest(recipient_id: int, now: dt.datetime) -> int:
    with transaction.atomic():
        rows = list(
            Notification.objects.select_for_update(skip_locked=True)
            .filter(
                Q(recipient_id=recipient_id),
                email_status=EmailStatus.DIGEST,
                created_at__lte=now,
            )
            .order_by("created_at", "pk")
        )
        if not rows:
            return 0
        context = {"rows": rows, "preferences": preferences_link(), "now": now}
        message = EmailMultiAlternatives(
            subject=f"Lifecycle Review Board: {len(rows)} update"
            f"{'s' if len(rows) != 1 else ''} today",
            body=render_to_string("notifications/emails/digest.txt", context),
            to=[rows[-1].email],
        )
        message.attach_alternative(
            render_to_string("notifications/emails/digest.html", context), "text/html"
        )
        Notification.objects.filter(pk__in=[r.pk for r in rows]).update(
            email_status=EmailStatus.DIGESTED, email_sent_at=now
        )
        # Sent last: if sending raises, the rows roll back to 'digest' for tomorrow.
        message.send()
        return 1
