"""Delivering the outbox: claim a row with a conditional UPDATE, send, record the outcome.

A row is claimed by flipping it from pending to sending in one UPDATE that names the state it
expects; only one worker can win that, so no e-mail goes out twice. A worker that dies holding
a claim leaves the row in "sending"; after the lease the sweeper puts it back to pending.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from .models import EmailStatus, Notification

log = logging.getLogger(__name__)

MAX_ATTEMPTS = getattr(settings, "NOTIFICATION_MAX_ATTEMPTS", 5)
LEASE = dt.timedelta(seconds=getattr(settings, "NOTIFICATION_LEASE_SECONDS", 300))
BACKOFF_BASE_SECONDS = getattr(settings, "NOTIFICATION_BACKOFF_SECONDS", 60)


def backoff(attempts: int) -> dt.timedelta:
    """1, 2, 4, 8… minutes after the first, second, third… failure."""
    return dt.timedelta(seconds=BACKOFF_BASE_SECONDS * 2 ** max(0, attempts - 1))


def preferences_link() -> str:
    return settings.SITE_URL.rstrip("/") + reverse("accounts:profile")


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
        body=render_to_string("reviews/emails/notification.txt", context),
        to=[notification.email],
        headers={
            # Receivers and tests can tell a retried delivery of the same notification.
            "X-LRB-Notification": notification.dedupe_key,
            "List-Unsubscribe": f"<{context['preferences']}>",
        },
    )
    message.attach_alternative(
        render_to_string("reviews/emails/notification.html", context), "text/html"
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
        failed = notification.email_attempts >= MAX_ATTEMPTS
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
    """Rows a dead worker left in 'sending' go back to pending after the lease."""
    return Notification.objects.filter(
        email_status=EmailStatus.SENDING, email_claimed_at__lt=timezone.now() - LEASE
    ).update(email_status=EmailStatus.PENDING)


def due_ids(limit: int = 500) -> list[int]:
    return list(
        Notification.objects.filter(
            email_status=EmailStatus.PENDING, email_next_attempt_at__lte=timezone.now()
        )
        .order_by("email_next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )


def sweep(limit: int = 500) -> dict[str, int]:
    """Deliver whatever is pending and due (the broker may have lost the task)."""
    released = release_stale_claims()
    counts: dict[str, int] = defaultdict(int)
    counts["released"] = released
    for pk in due_ids(limit):
        counts[deliver(pk)] += 1
    return dict(counts)


def send_digests(now: dt.datetime | None = None) -> int:
    """One e-mail per person summarising the notifications held for their daily digest."""
    now = now or timezone.now()
    sent = 0
    recipients = (
        Notification.objects.filter(email_status=EmailStatus.DIGEST, created_at__lte=now)
        .values_list("recipient_id", flat=True)
        .distinct()
    )
    for recipient_id in list(recipients):
        with transaction.atomic():
            rows = list(
                Notification.objects.select_for_update(skip_locked=True)
                .filter(
                    Q(recipient_id=recipient_id),
                    email_status=EmailStatus.DIGEST,
                    created_at__lte=now,
                )
                .order_by("created_at")
            )
            if not rows:
                continue
            context = {"rows": rows, "preferences": preferences_link(), "now": now}
            message = EmailMultiAlternatives(
                subject=f"Lifecycle Review Board: {len(rows)} update"
                f"{'s' if len(rows) != 1 else ''} today",
                body=render_to_string("reviews/emails/digest.txt", context),
                to=[rows[-1].email],
            )
            message.attach_alternative(
                render_to_string("reviews/emails/digest.html", context), "text/html"
            )
            Notification.objects.filter(pk__in=[r.pk for r in rows]).update(
                email_status=EmailStatus.DIGESTED, email_sent_at=now
            )
            # Sent last: if sending raises, the rows roll back to 'digest' for tomorrow.
            message.send()
            sent += 1
    return sent
