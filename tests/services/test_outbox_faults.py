"""The outbox under faults, with real Redis and real Celery workers: a broker that is down, a
worker killed in the middle of a delivery, an SMTP server that fails. Nothing is lost, nothing is
e-mailed twice."""

from __future__ import annotations

import datetime as dt
import logging
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout

import pytest
from celery_harness import DEAD_BROKER_URL, delivery_outcomes, wait_until
from django.db import connections, transaction

from notifications.models import EmailStatus, Notification, NotificationKind
from notifications.services import notify
from notifications.tasks import deliver_notification, sweep_outbox

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def nudge(recipients, key: str, project) -> list[int]:
    """One event in its own transaction, as a request would commit it."""
    with transaction.atomic():
        return notify(
            recipients=recipients,
            kind=NotificationKind.NUDGE,
            key=key,
            subject=f"[{project.title}] {key}",
            body="A nudge from the course staff.",
            link="http://testserver/",
            project=project,
        )


def all_sent(ids) -> bool:
    return not Notification.objects.filter(pk__in=ids).exclude(email_status=EmailStatus.SENT)


def test_a_broker_outage_loses_nothing_and_the_sweeper_sends_each_once(
    personas, celery_services, publisher, caplog
):
    """(a) 50 events while the broker is unreachable: each commits quickly, rows stay pending;
    with the broker back, the sweeper delivers all 50, each exactly once, even with two workers
    and duplicate tasks racing for the same rows."""
    p = personas
    people = [p.alice, p.bob, p.carol, p.tina, p.ian, p.erin, p.oscar]
    workers = [celery_services.worker(ready=False), celery_services.worker(ready=False)]
    for worker in workers:
        worker.wait_for_log(r"\bready\.", timeout=40)

    publisher.point_at(DEAD_BROKER_URL)
    ids: list[int] = []
    durations: list[float] = []
    with caplog.at_level(logging.WARNING, logger="notifications.tasks"):
        for i in range(50):
            started = time.monotonic()
            ids += nudge([people[i % len(people)]], f"outage:{i}", p.project)
            durations.append(time.monotonic() - started)
    assert len(ids) == 50
    assert max(durations) < 3, f"an event waited {max(durations):.2f} s on the dead broker"
    assert sum(durations) < 30
    left = [r for r in caplog.records if "left for the sweeper" in r.getMessage()]
    assert len(left) == 50

    time.sleep(1)  # nothing reached the workers' broker: nothing moves
    rows = Notification.objects.filter(pk__in=ids)
    assert set(rows.values_list("email_status", flat=True)) == {EmailStatus.PENDING}
    assert set(rows.values_list("email_attempts", flat=True)) == {0}
    assert celery_services.mailbox.keys() == {}

    publisher.point_at(celery_services.broker)
    # Two sweeps and a second, per-row delivery task for every row: the two workers race for
    # the same rows; the conditional UPDATE lets exactly one of them send each.
    sweep_outbox.delay()
    sweep_outbox.delay()
    for pk in ids:
        deliver_notification.delay(pk)
    wait_until(lambda: all_sent(ids), timeout=60, what="the sweeper to deliver all 50")

    keys = celery_services.mailbox.keys()
    assert keys == {n.dedupe_key: 1 for n in rows}, "each notification exactly once"
    assert set(rows.values_list("email_attempts", flat=True)) == {1}
    # Every row was tried at least twice (by the first sweep and by its own task), on two
    # workers: one attempt won the claim, the others came back "not-claimed".
    assert all("reviews.deliver_notification" in w.log() for w in workers)
    outcomes = delivery_outcomes(*(w.log() for w in workers))
    assert outcomes["sent"] == 50
    assert outcomes["not-claimed"] >= 50
    assert set(outcomes) <= {"sent", "not-claimed"}


@pytest.fixture
def silent_broker() -> Iterator[str]:
    """A port that accepts connections (the kernel completes them) and never answers: a paused
    or half-dead Redis, unlike a closed port, which refuses at once."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    server.close()


def test_a_broker_that_never_answers_delays_an_event_only_by_its_timeout(
    personas, celery_services, publisher, silent_broker
):
    """(a, hung) Without a socket read timeout the publish after commit would wait for ever and
    the request with it; the broker's socket_timeout bounds it, the row waits for the sweeper."""
    p = personas
    worker = celery_services.worker()
    publisher.point_at(silent_broker)

    def event(i: int) -> list[int]:
        try:
            return nudge([p.alice], f"hung:{i}", p.project)
        finally:
            connections.close_all()  # this thread's connection

    ids: list[int] = []
    for i in range(2):
        # In a thread, so that a regression fails here instead of hanging the suite.
        pool = ThreadPoolExecutor(1)
        started = time.monotonic()
        try:
            ids += pool.submit(event, i).result(timeout=10)
        except FuturesTimeout:
            pytest.fail("an event waited over 10 s on a broker that never answers")
        finally:
            pool.shutdown(wait=False)
        assert time.monotonic() - started < 10
    rows = Notification.objects.filter(pk__in=ids)
    assert set(rows.values_list("email_status", flat=True)) == {EmailStatus.PENDING}

    publisher.point_at(celery_services.broker)
    sweep_outbox.delay()
    wait_until(lambda: all_sent(ids), timeout=30, what="the sweeper to deliver both")
    assert celery_services.mailbox.keys() == {n.dedupe_key: 1 for n in rows}
    assert "reviews.sweep_outbox" in worker.log()


def test_a_worker_killed_mid_delivery_leaves_each_notification_sent_once(
    personas, celery_services, publisher
):
    """(b) SIGKILL while the worker is inside the SMTP call: the row stays claimed ('sending')
    until its lease runs out, then the sweeper sends it; nothing is sent twice."""
    p = personas
    tmp = celery_services.tmp
    marker = tmp / "sending"
    slow = celery_services.worker(
        EMAIL_BACKEND="slow_backend.SlowFileBackend",
        LRB_SLOW_EMAIL_SECONDS="60",
        LRB_SLOW_EMAIL_MARKER=str(marker),
    )
    ids = nudge([p.alice, p.bob, p.carol], "kill-me", p.project)
    assert len(ids) == 3

    wait_until(marker.exists, timeout=20, what="the worker to start sending")
    in_flight = Notification.objects.get(email=marker.read_text().split()[1].strip())
    in_flight.refresh_from_db()
    assert in_flight.email_status == EmailStatus.SENDING
    slow.kill()
    assert not slow.alive()
    assert celery_services.mailbox.keys() == {}, "killed before anything was written"

    # The restarted worker holds claims for 30 s (the production default is 5 minutes).
    fresh = celery_services.worker(NOTIFICATION_LEASE_SECONDS="30")
    others = [pk for pk in ids if pk != in_flight.pk]
    # The other two are still queued (or, had the killed worker reserved one, unacknowledged
    # in Redis until the visibility timeout: the sweep sends it then).
    sweep_outbox.delay()
    wait_until(lambda: all_sent(others), timeout=30, what="the two queued notifications")
    wait_until(lambda: "'released': 0" in fresh.log(), timeout=10, what="the first sweep to finish")
    in_flight.refresh_from_db()
    assert in_flight.email_status == EmailStatus.SENDING, "a claim is held until its lease ends"
    assert celery_services.mailbox.keys() == {
        n.dedupe_key: 1 for n in Notification.objects.filter(pk__in=others)
    }

    # Time passes beyond the lease: move the dead worker's claim 31 s into the past.
    Notification.objects.filter(pk=in_flight.pk).update(
        email_claimed_at=in_flight.email_claimed_at - dt.timedelta(seconds=31)
    )
    sweep_outbox.delay()
    wait_until(lambda: all_sent(ids), timeout=30, what="the sweeper to send the released row")
    assert "'released': 1" in fresh.log()

    rows = Notification.objects.filter(pk__in=ids)
    assert celery_services.mailbox.keys() == {n.dedupe_key: 1 for n in rows}
    in_flight.refresh_from_db()
    assert in_flight.email_attempts == 2
    assert set(rows.exclude(pk=in_flight.pk).values_list("email_attempts", flat=True)) == {1}


def test_smtp_failures_retry_with_back_off_then_send_once_or_end_failed(
    personas, celery_services, publisher
):
    """(c) SMTP hangs up on the first two tries: the third delivers, one e-mail. A recipient
    whose server never answers ends 'failed' with the error after the maximum attempts."""
    p = personas
    tries = celery_services.tmp / "smtp-attempts"
    celery_services.worker(
        EMAIL_BACKEND="flaky_backend.FlakyFileBackend",
        LRB_FLAKY_LOG=str(tries),
        LRB_FLAKY_FAILURES="2",
        LRB_FLAKY_BROKEN=p.bob.email,
        NOTIFICATION_BACKOFF_SECONDS="1",
        NOTIFICATION_MAX_ATTEMPTS="3",
    )
    ids = nudge([p.alice, p.bob], "flaky", p.project)
    good = Notification.objects.get(pk__in=ids, recipient=p.alice)
    bad = Notification.objects.get(pk__in=ids, recipient=p.bob)

    def first_try_failed() -> bool:
        good.refresh_from_db()
        return good.email_attempts == 1 and good.email_status == EmailStatus.PENDING

    wait_until(first_try_failed, timeout=20, what="the first attempt to fail")
    assert "SMTPServerDisconnected" in good.email_error
    assert good.email_next_attempt_at > good.email_claimed_at

    def settled() -> bool:
        sweep_outbox.delay()  # what beat does every minute, here every half second
        time.sleep(0.5)
        states = set(Notification.objects.filter(pk__in=ids).values_list("email_status", flat=True))
        return states <= {EmailStatus.SENT, EmailStatus.FAILED}

    wait_until(settled, timeout=40, what="both notifications to settle", interval=0)

    good.refresh_from_db()
    bad.refresh_from_db()
    assert good.email_status == EmailStatus.SENT
    assert good.email_attempts == 3
    assert good.email_error == ""
    assert bad.email_status == EmailStatus.FAILED
    assert bad.email_attempts == 3
    assert "SMTPServerDisconnected" in bad.email_error
    assert celery_services.mailbox.keys() == {good.dedupe_key: 1}

    attempts = [line.split() for line in tries.read_text().splitlines()]
    of_good = [(float(t), outcome) for t, key, _n, outcome in attempts if key == good.dedupe_key]
    assert [outcome for _t, outcome in of_good] == ["refused", "refused", "sent"]
    # Exponential back-off: 1 s after the first failure, 2 s after the second.
    assert of_good[1][0] - of_good[0][0] >= 1
    assert of_good[2][0] - of_good[1][0] >= 2
    assert len([a for a in attempts if a[1] == bad.dedupe_key]) == 3
