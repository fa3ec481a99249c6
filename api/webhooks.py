"""Webhooks: domain events become signed JSON deliveries to the hooks of the course or the
project, through an outbox of their own (``WebhookDelivery``) with retries and back-off.

Each delivery is written in the transaction of the event that caused it and sent by a Celery
task queued on commit (or by the minute sweep if that task was lost). A delivery is claimed
with a conditional UPDATE, so two workers never send it twice.

Outgoing requests are an SSRF risk: the host is resolved once, every address it resolves to
must be public (no loopback, private, link-local, multicast, reserved or unspecified address),
and the connection goes to that checked address — a second DNS answer cannot swap it. Redirects
are never followed; timeouts are short. ``WEBHOOK_ALLOWED_HOSTS`` names hosts exempt from the
address check (a test receiver on 127.0.0.1).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import socket
import ssl
import time
import uuid
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from lifecycle import events
from lifecycle.models import Project, ProjectStage
from reviews import events as review_events

from .models import DeliveryStatus, Webhook, WebhookDelivery, WebhookEvent

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-LRB-Signature-256"
USER_AGENT = "LifecycleReviewBoard-Hookshot/1"
LEASE = dt.timedelta(minutes=5)


class Refused(Exception):
    """The URL may not be called: the reason is shown on the page and in the delivery log."""


# --- addresses ----------------------------------------------------------------------------


def _allowed_host(host: str) -> bool:
    return host.lower() in {h.lower() for h in getattr(settings, "WEBHOOK_ALLOWED_HOSTS", [])}


def public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def validate_hook_url(url: str) -> str:
    """Why this URL cannot be a hook, or "" (DNS is checked again at every delivery)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "Enter a valid URL."
    host = parts.hostname or ""
    if not host:
        return "Enter a valid URL with a host name."
    if parts.username or parts.password:
        return "Put no user name or password in the URL; the signature authenticates us."
    if parts.scheme != "https" and not (parts.scheme == "http" and _allowed_host(host)):
        return "Use an https:// URL."
    try:
        resolve(host, parts.port or (443 if parts.scheme == "https" else 80))
    except Refused as refused:
        return str(refused)
    return ""


def resolve(host: str, port: int) -> str:
    """The first address of ``host``, after checking that every address it has is public."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise Refused(f"The host name {host} does not resolve.") from error
    # The host part is a string (typeshed also allows the (int, bytes) form of an IPv6 address
    # on a Python built without IPv6 support).
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise Refused(f"The host name {host} does not resolve.")
    if not _allowed_host(host):
        for address in addresses:
            if not public_address(address):
                raise Refused(
                    f"{host} resolves to {address}, a private, loopback or link-local address; "
                    "webhooks only go to public addresses."
                )
    return addresses[0]


# --- signing --------------------------------------------------------------------------------


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over ``timestamp.body``: a receiver checks the signature and refuses old
    timestamps (and delivery ids it has seen), so a captured request cannot be replayed."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


# --- sending --------------------------------------------------------------------------------


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, address: str, **kwargs: Any) -> None:
        super().__init__(host, **kwargs)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        context = ssl.create_default_context()
        self.sock = context.wrap_socket(sock, server_hostname=self.host)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, address: str, **kwargs: Any) -> None:
        super().__init__(host, **kwargs)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    """POST to the checked address; return the status code. Never follows a redirect (a 3xx
    is a failed delivery)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme != "https" and not (parts.scheme == "http" and _allowed_host(host)):
        raise Refused("Only https:// URLs are called.")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = resolve(host, port)
    timeout = getattr(settings, "WEBHOOK_TIMEOUT_SECONDS", 5)
    cls = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    conn = cls(host, address, port=port, timeout=timeout)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read(65536)
        return response.status
    finally:
        conn.close()


def backoff(attempts: int) -> dt.timedelta:
    """30 s, 1 min, 2 min… doubling, capped at 6 hours."""
    base = getattr(settings, "WEBHOOK_BACKOFF_SECONDS", 30)
    return dt.timedelta(seconds=min(base * 2 ** max(0, attempts - 1), 6 * 3600))


def claim(delivery_id: int) -> bool:
    now = timezone.now()
    return bool(
        WebhookDelivery.objects.filter(
            pk=delivery_id,
            status__in=(DeliveryStatus.PENDING, DeliveryStatus.RETRYING),
            next_attempt_at__lte=now,
        ).update(next_attempt_at=now + LEASE, last_attempt_at=now)
    )


def deliver(delivery_id: int) -> str:
    """Send one delivery if it is due; record the outcome. Safe to call twice."""
    if not claim(delivery_id):
        return "skipped"
    delivery = WebhookDelivery.objects.select_related("webhook").get(pk=delivery_id)
    hook = delivery.webhook
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-LRB-Event": delivery.event,
        "X-LRB-Delivery": str(delivery.delivery_id),
        "X-LRB-Timestamp": timestamp,
        SIGNATURE_HEADER: sign(hook.secret, timestamp, body),
    }
    code: int | None = None
    error = ""
    try:
        code = post(hook.url, body, headers)
    except Refused as refused:
        error = str(refused)
    except (OSError, http.client.HTTPException) as failure:
        error = f"{type(failure).__name__}: {failure}"[:300]
    attempts = delivery.attempts + 1
    ok = code is not None and 200 <= code < 300
    fields: dict[str, Any] = {"attempts": attempts, "response_code": code, "error": error[:300]}
    if ok:
        fields.update(status=DeliveryStatus.DELIVERED, next_attempt_at=timezone.now())
    elif attempts >= getattr(settings, "WEBHOOK_MAX_ATTEMPTS", 8):
        fields.update(status=DeliveryStatus.FAILED, next_attempt_at=timezone.now())
    else:
        fields.update(
            status=DeliveryStatus.RETRYING, next_attempt_at=timezone.now() + backoff(attempts)
        )
    if code is not None and not ok and not error:
        fields["error"] = f"The receiver answered {code}."
    WebhookDelivery.objects.filter(pk=delivery.pk).update(**fields)
    return str(fields["status"])


def due_ids(limit: int = 200) -> list[int]:
    return list(
        WebhookDelivery.objects.filter(
            status__in=(DeliveryStatus.PENDING, DeliveryStatus.RETRYING),
            next_attempt_at__lte=timezone.now(),
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


def sweep(budget_seconds: float = 45) -> dict[str, int]:
    started = time.monotonic()
    counts: dict[str, int] = {}
    for pk in due_ids():
        if time.monotonic() - started > budget_seconds:
            break
        outcome = deliver(pk)
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


# --- from events to deliveries ---------------------------------------------------------------


def _queue(ids: list[int]) -> None:
    from .tasks import deliver_webhook

    for pk in ids:
        try:
            deliver_webhook.delay(pk)
        except Exception:  # the broker is down: the minute sweep sends it later
            log.warning("Could not queue webhook delivery %s; the sweep will send it.", pk)


# Whether a course has any active hook (of its own or of one of its projects), cached: most
# events happen in courses without one, and asking costs a query per event. The answer is
# stored with the generation it was computed under; any saved or deleted hook replaces the
# generation now and again after its commit, so an answer computed before a hook's commit is
# never used after it (a reader takes the generation before it queries).
HOOKS_GENERATION_KEY = "lrbhooks:gen"
HOOKS_SECONDS = 24 * 3600


def _course_has_hooks(course_id: int) -> bool:
    answer_key = f"lrbhooks:c:{course_id}"
    found = cache.get_many([HOOKS_GENERATION_KEY, answer_key])
    generation = found.get(HOOKS_GENERATION_KEY)
    if generation is None:
        generation = uuid.uuid4().hex
        if not cache.add(HOOKS_GENERATION_KEY, generation, HOOKS_SECONDS):
            generation = cache.get(HOOKS_GENERATION_KEY) or generation
    answer = found.get(answer_key)
    if isinstance(answer, tuple) and len(answer) == 2 and answer[0] == generation:
        return bool(answer[1])
    has = Webhook.objects.filter(
        Q(course_id=course_id) | Q(project__course_id=course_id), active=True
    ).exists()
    cache.set(answer_key, (generation, has), HOOKS_SECONDS)
    return has


def hooks_changed(**_: Any) -> None:
    """A hook was saved or deleted: every cached answer is out of date."""

    def replace() -> None:
        cache.set(HOOKS_GENERATION_KEY, uuid.uuid4().hex, HOOKS_SECONDS)

    replace()  # for the writing transaction's own later events
    transaction.on_commit(replace, robust=True)


def hooks_for(project: Project, event: str) -> list[Webhook]:
    if not _course_has_hooks(project.course_id):
        return []
    return [
        hook
        for hook in Webhook.objects.filter(
            Q(course_id=project.course_id) | Q(project_id=project.pk), active=True
        )
        if event in hook.events
    ]


def enqueue(project: Project, event: str, data: dict[str, Any]) -> list[WebhookDelivery]:
    """Write one delivery per subscribed hook in the caller's transaction; send on commit."""
    hooks = hooks_for(project, event)
    if not hooks:
        return []
    now = timezone.now()
    rows = []
    for hook in hooks:
        delivery_id = uuid.uuid4()
        payload = {
            "id": str(delivery_id),
            "event": event,
            "created_at": now.isoformat(),
            "course": {"id": project.course_id},
            "project": {"id": project.pk, "title": project.title},
            **data,
        }
        rows.append(
            WebhookDelivery(webhook=hook, delivery_id=delivery_id, event=event, payload=payload)
        )
    created = WebhookDelivery.objects.bulk_create(rows)
    ids = [row.pk for row in created]
    transaction.on_commit(lambda: _queue(ids))
    return created


def redeliver(delivery: WebhookDelivery) -> WebhookDelivery:
    """A fresh delivery of the same payload (a new delivery id: receivers dedupe by id)."""
    delivery_id = uuid.uuid4()
    payload = {
        **delivery.payload,
        "id": str(delivery_id),
        "redelivery_of": str(delivery.delivery_id),
    }
    with transaction.atomic():
        row = WebhookDelivery.objects.create(
            webhook=delivery.webhook,
            delivery_id=delivery_id,
            event=delivery.event,
            payload=payload,
            redelivery_of=delivery,
        )
        transaction.on_commit(lambda: _queue([row.pk]))
    return row


def _stage_data(stage: ProjectStage, revision: Any) -> dict[str, Any]:
    return {
        "stage": {
            "id": stage.pk,
            "key": stage.definition.key,
            "title": stage.definition.title,
            "cycle": stage.cycle,
            "status": stage.status,
        },
        "revision": (
            {"id": revision.pk, "number": revision.number, "sha256": revision.content_sha256}
            if revision is not None
            else None
        ),
    }


def on_stage_submitted(*, stage: ProjectStage, revision: Any, **_: Any) -> None:
    enqueue(stage.project, WebhookEvent.STAGE_SUBMITTED, _stage_data(stage, revision))


def on_changes_requested(*, stage: ProjectStage, revision: Any, **_: Any) -> None:
    # The reason is the reviewer's words to the team: it stays on the board, not in the hook.
    enqueue(stage.project, WebhookEvent.CHANGES_REQUESTED, _stage_data(stage, revision))


def on_stage_approved(*, stage: ProjectStage, revision: Any, override: bool, **_: Any) -> None:
    event = WebhookEvent.STAGE_OVERRIDDEN if override else WebhookEvent.STAGE_APPROVED
    enqueue(stage.project, event, _stage_data(stage, revision))


def on_project_concluded(*, project: Project, outcome: str, **_: Any) -> None:
    enqueue(project, WebhookEvent.PROJECT_CONCLUDED, {"outcome": outcome})


def on_comment_added(*, comment: Any, **_: Any) -> None:
    enqueue(
        comment.revision.stage.project,
        WebhookEvent.COMMENT_ADDED,
        {
            "comment": {
                "id": comment.pk,
                "revision": comment.revision_id,
                "question_key": comment.question_key,
                "parent": comment.parent_id,
            }
        },
    )


def connect() -> None:
    from django.db.models.signals import post_delete, post_save

    post_save.connect(hooks_changed, sender=Webhook, dispatch_uid="api.webhooks.saved")
    post_delete.connect(hooks_changed, sender=Webhook, dispatch_uid="api.webhooks.deleted")
    events.subscribe(events.STAGE_SUBMITTED, on_stage_submitted)
    events.subscribe(events.STAGE_CHANGES_REQUESTED, on_changes_requested)
    events.subscribe(events.STAGE_APPROVED, on_stage_approved)
    events.subscribe(events.PROJECT_CONCLUDED, on_project_concluded)
    events.subscribe(review_events.COMMENT_ADDED, on_comment_added)


def deliveries_of(hook: Webhook, limit: int = 50) -> Iterable[WebhookDelivery]:
    return hook.deliveries.order_by("-created_at", "-pk")[:limit]
