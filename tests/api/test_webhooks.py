"""Webhooks against a local receiver (a real HTTP server in a thread): signed deliveries,
retries after 500s and timeouts, no redirect followed, no delivery to a private address, and
nothing lost while the receiver is down."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from factories import fill_and_submit

from api import services, webhooks
from api.models import DeliveryStatus, Webhook, WebhookDelivery, WebhookEvent
from lifecycle.errors import InvalidAnswers, NotAllowed
from lifecycle.models import AuditEvent, ProjectStage

pytestmark = pytest.mark.django_db


class Receiver:
    """A webhook receiver on 127.0.0.1: records what arrives and answers as told."""

    def __init__(self, port: int = 0) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answers: list[Any] = []  # status codes, or ("sleep", seconds), or ("redirect", url)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append({"headers": dict(self.headers), "body": body})
                answer = receiver.answers.pop(0) if receiver.answers else 200
                if isinstance(answer, tuple) and answer[0] == "sleep":
                    time.sleep(answer[1])
                    answer = 200
                if isinstance(answer, tuple) and answer[0] == "redirect":
                    self.send_response(302)
                    self.send_header("Location", answer[1])
                    self.end_headers()
                    return
                self.send_response(answer)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.WEBHOOK_TIMEOUT_SECONDS = 1
    r = Receiver()
    yield r
    r.stop()


def _submit(personas) -> Any:
    stage = ProjectStage.objects.get(pk=personas.project.current_stage_id)
    return fill_and_submit(stage, personas.alice)


def _due_now() -> None:
    WebhookDelivery.objects.update(next_attempt_at=timezone.now())


def test_a_submission_is_delivered_signed_to_course_and_project_hooks(personas, receiver):
    course_hook = services.webhook_create(
        actor=personas.ian, url=receiver.url, events=["stage.submitted"], course=personas.course
    )
    project_hook = services.webhook_create(
        actor=personas.alice,
        url=receiver.url + "?p=1",
        events=["stage.submitted"],
        project=personas.project,
    )
    services.webhook_create(
        actor=personas.carol,
        url=receiver.url,
        events=["stage.submitted"],
        project=personas.other_project,
    )
    revision = _submit(personas)
    deliveries = list(WebhookDelivery.objects.order_by("pk"))
    assert {d.webhook_id for d in deliveries} == {course_hook.pk, project_hook.pk}
    for delivery in deliveries:
        assert webhooks.deliver(delivery.pk) == DeliveryStatus.DELIVERED
    assert len(receiver.requests) == 2
    secrets = {course_hook.secret, project_hook.secret}
    for request in receiver.requests:
        headers, body = request["headers"], request["body"]
        payload = json.loads(body)
        assert payload["event"] == "stage.submitted"
        assert payload["revision"]["sha256"] == revision.content_sha256
        assert payload["id"] == headers["X-LRB-Delivery"]
        assert any(
            webhooks.verify(
                secret, headers["X-LRB-Timestamp"], body, headers["X-LRB-Signature-256"]
            )
            for secret in secrets
        )
        # A forged body fails the check.
        assert not any(
            webhooks.verify(
                secret, headers["X-LRB-Timestamp"], body + b" ", headers["X-LRB-Signature-256"]
            )
            for secret in secrets
        )
    assert AuditEvent.objects.filter(verb="webhook.create").count() == 3


def test_a_500_and_a_timeout_are_retried_with_backoff_then_delivered(personas, receiver):
    services.webhook_create(
        actor=personas.ian, url=receiver.url, events=["stage.submitted"], course=personas.course
    )
    _submit(personas)
    delivery = WebhookDelivery.objects.get()
    receiver.answers = [500, ("sleep", 2.5), 200]
    assert webhooks.deliver(delivery.pk) == DeliveryStatus.RETRYING
    delivery.refresh_from_db()
    assert delivery.response_code == 500 and delivery.attempts == 1
    assert delivery.next_attempt_at > timezone.now() + dt.timedelta(seconds=20)
    assert webhooks.deliver(delivery.pk) == "skipped"  # not due yet
    _due_now()
    assert webhooks.deliver(delivery.pk) == DeliveryStatus.RETRYING
    delivery.refresh_from_db()
    assert "timed out" in delivery.error.lower() or "timeout" in delivery.error.lower()
    _due_now()
    assert webhooks.sweep() == {DeliveryStatus.DELIVERED: 1}
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.attempts == 3
    ids = {r["headers"]["X-LRB-Delivery"] for r in receiver.requests}
    assert ids == {str(delivery.delivery_id)}  # one id across retries: receivers dedupe by it


def test_nothing_is_lost_while_the_receiver_is_down(personas, settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    services.webhook_create(
        actor=personas.ian,
        url=f"http://127.0.0.1:{port}/hook",
        events=["stage.submitted", "stage.approved"],
        course=personas.course,
    )
    _submit(personas)
    for _ in range(3):
        _due_now()
        webhooks.sweep()
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.RETRYING and delivery.attempts == 3
    assert "Connection" in delivery.error or "refused" in delivery.error.lower()
    receiver = Receiver(port)
    try:
        _due_now()
        webhooks.sweep()
    finally:
        receiver.stop()
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert len(receiver.requests) == 1


def test_after_the_last_attempt_a_delivery_fails_and_can_be_redelivered(
    personas, receiver, settings
):
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    hook = services.webhook_create(
        actor=personas.ian, url=receiver.url, events=["stage.submitted"], course=personas.course
    )
    _submit(personas)
    delivery = WebhookDelivery.objects.get()
    receiver.answers = [503, 503]
    webhooks.deliver(delivery.pk)
    _due_now()
    assert webhooks.deliver(delivery.pk) == DeliveryStatus.FAILED
    ian = Client()
    ian.force_login(personas.ian)
    page = ian.get(reverse("api_pages:webhook", args=[hook.pk])).content.decode()
    assert "Failed" in page and "503" in page
    response = ian.post(reverse("api_pages:webhook_redeliver", args=[hook.pk, delivery.pk]))
    assert response.status_code == 302
    again = WebhookDelivery.objects.exclude(pk=delivery.pk).get()
    assert again.redelivery_of_id == delivery.pk and again.delivery_id != delivery.delivery_id
    assert webhooks.deliver(again.pk) == DeliveryStatus.DELIVERED


def test_a_redirect_is_never_followed(personas, receiver):
    services.webhook_create(
        actor=personas.ian, url=receiver.url, events=["stage.submitted"], course=personas.course
    )
    _submit(personas)
    target = Receiver()
    try:
        receiver.answers = [("redirect", target.url)]
        delivery = WebhookDelivery.objects.get()
        assert webhooks.deliver(delivery.pk) == DeliveryStatus.RETRYING
        delivery.refresh_from_db()
        assert delivery.response_code == 302
        assert target.requests == []
    finally:
        target.stop()


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://0.0.0.0/hook",
        "http://example.org/hook",
        "https://user:pw@example.org/hook",
    ],
)
def test_private_addresses_and_plain_http_are_refused(personas, url):
    with pytest.raises(InvalidAnswers) as raised:
        services.webhook_create(
            actor=personas.ian, url=url, events=["stage.submitted"], course=personas.course
        )
    assert "url" in raised.value.errors
    assert not Webhook.objects.exists()


def test_an_address_that_turns_private_after_saving_is_refused_at_delivery(
    personas, settings, monkeypatch
):
    """DNS can change after the hook was saved (rebinding): every delivery checks again, and
    connects to the address it checked."""
    settings.WEBHOOK_ALLOWED_HOSTS = []
    hook = Webhook.objects.create(
        course=personas.course,
        url="https://hooks.example.test/x",
        secret="s" * 64,
        events=["stage.submitted"],
        created_by=personas.ian,
    )
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 443))],
    )
    _submit(personas)
    delivery = WebhookDelivery.objects.get(webhook=hook)
    assert webhooks.deliver(delivery.pk) == DeliveryStatus.RETRYING
    delivery.refresh_from_db()
    assert delivery.response_code is None and "private, loopback" in delivery.error


def test_the_form_refuses_bad_urls_next_to_the_field(personas):
    ian = Client()
    ian.force_login(personas.ian)
    url = reverse("api_pages:course_webhooks", args=[personas.course.pk])
    response = ian.post(url, {"url": "https://127.0.0.1/x", "events": ["stage.submitted"]})
    assert response.status_code == 400
    assert "url" in response.context["form"].errors
    assert not Webhook.objects.exists()


@pytest.mark.parametrize(
    ("who", "course_code", "project_code"),
    [
        ("alice", 404, 200),
        ("bob", 404, 200),
        ("carol", 404, 404),
        ("tina", 200, 200),
        ("ian", 200, 200),
        ("erin", 404, 404),
        ("oscar", 404, 404),
    ],
)
def test_who_manages_which_webhooks(personas, who, course_code, project_code):
    client = Client()
    client.force_login(getattr(personas, who))
    assert (
        client.get(reverse("api_pages:course_webhooks", args=[personas.course.pk])).status_code
        == course_code
    )
    assert (
        client.get(reverse("api_pages:project_webhooks", args=[personas.project.pk])).status_code
        == project_code
    )
    hook = Webhook.objects.create(
        course=personas.course,
        url="https://example.org/h",
        secret="x" * 64,
        events=["stage.submitted"],
        created_by=personas.ian,
    )
    assert client.get(reverse("api_pages:webhook", args=[hook.pk])).status_code == course_code
    if course_code == 404:
        with pytest.raises(NotAllowed):
            services.webhook_delete(hook=hook, actor=getattr(personas, who))


def test_events_map_to_their_hooks_and_roll_back_with_the_change(personas, receiver):
    services.webhook_create(
        actor=personas.ian,
        url=receiver.url,
        events=[WebhookEvent.COMMENT_ADDED],
        course=personas.course,
    )
    revision = _submit(personas)
    assert not WebhookDelivery.objects.exists()  # not subscribed to submissions
    from reviews.services import comment_add

    comment_add(revision=revision, author=personas.ian, body="Which clinics?")
    delivery = WebhookDelivery.objects.get()
    assert delivery.event == "comment.added"
    assert "Which clinics" not in json.dumps(delivery.payload)  # ids, not the words
    with pytest.raises(InvalidAnswers):
        comment_add(revision=revision, author=personas.ian, body="   ")
    assert WebhookDelivery.objects.count() == 1


# --- the cached answer to "has this course any hook?" -----------------------------------------


def test_a_course_without_hooks_is_not_asked_again(personas, django_assert_num_queries):
    assert webhooks.hooks_for(personas.project, WebhookEvent.STAGE_SUBMITTED) == []
    with django_assert_num_queries(0):
        assert webhooks.hooks_for(personas.project, WebhookEvent.STAGE_SUBMITTED) == []
        assert webhooks.hooks_for(personas.other_project, WebhookEvent.STAGE_SUBMITTED) == []


@pytest.mark.parametrize("owner", ["course", "project"])
def test_a_hook_made_after_a_cached_no_gets_the_next_event(personas, receiver, owner):
    assert webhooks.hooks_for(personas.project, WebhookEvent.STAGE_SUBMITTED) == []
    scope = (
        {"actor": personas.ian, "course": personas.course}
        if owner == "course"
        else {"actor": personas.alice, "project": personas.project}
    )
    hook = services.webhook_create(url=receiver.url, events=["stage.submitted"], **scope)
    assert webhooks.hooks_for(personas.project, WebhookEvent.STAGE_SUBMITTED) == [hook]
    _submit(personas)
    assert WebhookDelivery.objects.get().webhook_id == hook.pk


def test_a_deactivated_hook_gets_nothing_after_a_cached_yes(personas, receiver):
    hook = services.webhook_create(
        actor=personas.ian,
        url=receiver.url,
        events=["stage.submitted"],
        course=personas.course,
    )
    assert webhooks.hooks_for(personas.project, WebhookEvent.STAGE_SUBMITTED) == [hook]
    services.webhook_delete(hook=hook, actor=personas.ian)
    _submit(personas)
    assert not WebhookDelivery.objects.exists()


def test_an_answer_computed_before_a_hook_committed_is_not_used_after(
    personas, receiver, monkeypatch
):
    """A reader that asked the database before a hook's commit stores "no" under the generation
    it read first; the hook's commit replaced it, so the next event asks again."""
    exists = type(Webhook.objects.none()).exists
    made = []

    def racing_exists(queryset):
        answer = exists(queryset)  # "no": the hook is not there yet
        if not made:  # meanwhile another request makes one, and commits
            made.append(
                Webhook.objects.create(
                    course=personas.course,
                    url=receiver.url,
                    events=["stage.submitted"],
                    created_by=personas.ian,
                )
            )
        return answer

    monkeypatch.setattr(type(Webhook.objects.none()), "exists", racing_exists)
    assert webhooks.hooks_for(personas.project, WebhookEvent.STAGE_SUBMITTED) == []
    monkeypatch.undo()
    assert webhooks.hooks_for(personas.project, WebhookEvent.STAGE_SUBMITTED) == made


def test_the_generation_is_replaced_after_the_commit(
    personas, receiver, django_capture_on_commit_callbacks
):
    from django.core.cache import cache

    webhooks.hooks_for(personas.project, WebhookEvent.STAGE_SUBMITTED)
    before = cache.get(webhooks.HOOKS_GENERATION_KEY)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        hook = services.webhook_create(
            actor=personas.ian,
            url=receiver.url,
            events=["stage.submitted"],
            course=personas.course,
        )
    now = cache.get(webhooks.HOOKS_GENERATION_KEY)
    assert callbacks and now != before
    hook.delete()
    assert cache.get(webhooks.HOOKS_GENERATION_KEY) != now
