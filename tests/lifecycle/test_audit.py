"""The audit trail: hash chain, append-only in the database itself, tamper detection."""

from __future__ import annotations

import copy
import itertools

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from factories import fill_and_submit

from lifecycle import audit
from lifecycle.models import AuditEvent

pytestmark = pytest.mark.django_db


def events_for(personas, n: int = 5) -> list[AuditEvent]:
    stage = personas.project.stages.get(definition__order=1)
    fill_and_submit(stage, personas.alice)
    events = list(AuditEvent.objects.order_by("seq"))
    assert len(events) >= n
    return events


def test_each_event_links_to_the_previous_hash(personas):
    events = events_for(personas)
    assert events[0].prev_hash == audit.GENESIS_HASH
    for before, after in itertools.pairwise(events):
        assert after.prev_hash == before.hash
        assert after.seq == before.seq + 1
    for event in events:
        assert event.hash == audit.hash_payload(audit.payload_of(event))


def test_verify_audit_prints_the_count_and_head_when_intact(personas, capsys):
    events = events_for(personas)
    call_command("verify_audit")
    out = capsys.readouterr().out
    assert f"{len(events)} events" in out
    assert events[-1].hash in out


@pytest.mark.django_db(transaction=True)
def test_the_audit_trail_must_be_written_inside_a_transaction(personas):
    with pytest.raises(RuntimeError, match="atomic"):
        audit.audit_record(actor=personas.alice, verb="x", obj=personas.project)


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE lifecycle_auditevent SET verb = 'forged'",
        "UPDATE lifecycle_auditevent SET new = NULL WHERE seq = 1",
    ],
)
def test_the_database_refuses_updates_of_audit_events(personas, sql):
    events_for(personas)
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)
    assert not AuditEvent.objects.filter(verb="forged").exists()


def test_the_database_refuses_orm_updates_and_deletes(personas, settings):
    settings.AUDIT_ALLOW_TEST_FLUSH = False
    events_for(personas)
    count = AuditEvent.objects.count()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(seq=1).update(verb="forged")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(seq=2).delete()
    assert AuditEvent.objects.count() == count


def test_the_database_refuses_deleting_audit_events_with_raw_sql(personas, settings):
    settings.AUDIT_ALLOW_TEST_FLUSH = False  # the SQLite trigger's test-only escape hatch off
    events_for(personas)
    count = AuditEvent.objects.count()
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM lifecycle_auditevent")
    assert AuditEvent.objects.count() == count


def copied_chain(events):
    return [(copy.deepcopy(audit.payload_of(e)), e.hash) for e in events]


def test_a_copied_chain_verifies(personas):
    rows = copied_chain(events_for(personas))
    report = audit.verify_payloads(rows)
    assert report.intact and report.count == len(rows)
    assert report.head == rows[-1][1]


def test_tampering_with_one_event_is_detected_at_that_event(personas):
    rows = copied_chain(events_for(personas))
    rows[3][0]["new"] = {"status": "approved"}
    report = audit.verify_payloads(rows)
    assert report.broken_at == rows[3][0]["seq"]
    assert report.count == 3
    assert "hash" in report.reason


def test_removing_an_event_is_detected_at_the_next_one(personas):
    rows = copied_chain(events_for(personas))
    del rows[2]
    report = audit.verify_payloads(rows)
    assert report.broken_at == rows[2][0]["seq"]


def test_rehashing_a_forged_event_still_breaks_the_link_after_it(personas):
    rows = copied_chain(events_for(personas))
    rows[1][0]["actor"] = "mallory@example.test"
    rows[1] = (rows[1][0], audit.hash_payload(rows[1][0]))
    report = audit.verify_payloads(rows)
    assert report.broken_at == rows[2][0]["seq"]
    assert "link" in report.reason


def test_verify_audit_names_the_first_broken_event_in_the_database(personas):
    events = events_for(personas)
    victim = events[2]
    with connection.cursor() as cursor:  # the test transaction rolls this back
        if connection.vendor == "postgresql":
            # Only someone who can alter the table gets past the trigger.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE lifecycle_auditevent DISABLE TRIGGER USER")
        else:
            cursor.execute("DROP TRIGGER lifecycle_auditevent_no_update")
        cursor.execute(
            "UPDATE lifecycle_auditevent SET actor_label = 'mallory' WHERE seq = %s",
            [victim.seq],
        )
    with pytest.raises(CommandError, match=f"BROKEN at event #{victim.seq}"):
        call_command("verify_audit")
