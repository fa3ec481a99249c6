"""The audit trail: hash chain, append-only in the database itself, tamper detection."""

from __future__ import annotations

import copy
import itertools
import json
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.urls import reverse
from django.utils import timezone
from factories import fill_and_submit

from lifecycle import audit, checkpoints, signing
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


# --- Hash coverage: every hashed field, tampered in the database --------------------------


def bypass_append_only(cursor) -> None:
    """What only the tables' owner can do (the test transaction rolls it back)."""
    if connection.vendor == "postgresql":
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("ALTER TABLE lifecycle_auditevent DISABLE TRIGGER USER")
    else:
        cursor.execute("DROP TRIGGER IF EXISTS lifecycle_auditevent_no_update")


def tamper(seq: int, column: str, value) -> None:
    with connection.cursor() as cursor:
        bypass_append_only(cursor)
        cursor.execute(
            f"UPDATE lifecycle_auditevent SET {column} = %s WHERE seq = %s", [value, seq]
        )
        assert cursor.rowcount == 1


def flagged_override(personas) -> AuditEvent:
    return audit.audit_record(
        actor=personas.ian,
        verb="stage.override",
        obj=personas.project,
        project=personas.project,
        old={"status": "in_review"},
        new={"status": "approved", "justification": "Quorum unreachable this term"},
        flagged=True,
    )


def tampered_values(personas, event: AuditEvent) -> dict:
    return {
        "created_at": event.created_at + timedelta(seconds=1),
        "actor_id": personas.bob.pk,
        "actor_label": "mallory@example.test",
        "actor_name": "Mallory",
        "verb": "stage.forged",
        "object_type": "lifecycle.course",
        "object_id": "999",
        "course_id": None,
        "project_id": personas.other_project.pk,
        "old": '{"status": "drafting"}',
        "new": '{"status": "rejected"}',
        "flagged": not event.flagged,
        "hash_version": 1,
        "prev_hash": "f" * 64,
        "hash": "e" * 64,
    }


HASHED_COLUMNS = [
    "created_at",
    "actor_id",
    "actor_label",
    "actor_name",
    "verb",
    "object_type",
    "object_id",
    "course_id",
    "project_id",
    "old",
    "new",
    "flagged",
    "hash_version",
    "prev_hash",
    "hash",
]


@pytest.mark.parametrize("column", HASHED_COLUMNS)
def test_tampering_with_any_hashed_field_in_the_database_names_that_event(personas, column):
    events_for(personas)
    victim = flagged_override(personas)
    services_after = personas.project.stages.get(definition__order=1)
    fill_and_submit(personas.other_project.stages.get(definition__order=1), personas.carol)
    assert services_after and AuditEvent.objects.filter(seq__gt=victim.seq).exists()
    assert victim.hash_version == audit.HASH_VERSION == 2
    assert audit.verify_chain().intact
    tamper(victim.seq, column, tampered_values(personas, victim)[column])
    report = audit.verify_chain()
    assert report.broken_at == victim.seq, report
    with pytest.raises(CommandError, match=f"BROKEN at event #{victim.seq}"):
        call_command("verify_audit")


def test_an_unknown_hash_version_in_the_database_is_a_break_not_a_crash(personas):
    events = events_for(personas)
    tamper(events[1].seq, "hash_version", 9)
    assert audit.verify_chain().broken_at == events[1].seq


def test_a_sequence_gap_with_correct_links_is_detected(personas):
    events = events_for(personas)
    last = events[-1]
    # The newest event renumbered: every link still holds, only the sequence jumps.
    tamper(last.seq, "seq", last.seq + 5)
    report = audit.verify_chain()
    assert report.broken_at == last.seq + 5
    assert f"expected event #{last.seq}" in report.reason


def test_a_chain_that_does_not_start_at_one_is_detected():
    payload = audit.event_payload(
        seq=2,
        created_at="2026-01-01T00:00:00.000000Z",
        actor_id=None,
        actor_label="system",
        verb="x",
        object_type="lifecycle.course",
        object_id="1",
        course_id=None,
        project_id=None,
        old=None,
        new=None,
        flagged=False,
        prev_hash=audit.GENESIS_HASH,
        hash_version=2,
    )
    report = audit.verify_payloads([(payload, audit.hash_payload(payload))])
    assert report.broken_at == 2 and "expected event #1" in report.reason


def test_a_flagged_event_altered_is_detected(personas):
    events_for(personas)
    victim = flagged_override(personas)
    tamper(victim.seq, "new", '{"status": "approved", "justification": "Routine"}')
    assert audit.verify_chain().broken_at == victim.seq


def test_new_events_bind_the_actors_name_and_the_hash_version(personas):
    event = flagged_override(personas)
    payload = audit.payload_of(event)
    assert (payload["actor_name"], payload["v"]) == ("Ian", 2)
    assert event.hash == audit.event_hash(
        hash_version=2,
        seq=event.seq,
        created_at=audit.format_timestamp(event.created_at),
        actor_id=event.actor_id,
        actor_label=event.actor_label,
        actor_name="Ian",
        verb=event.verb,
        object_type=event.object_type,
        object_id=event.object_id,
        course_id=event.course_id,
        project_id=event.project_id,
        old=event.old,
        new=event.new,
        flagged=True,
        prev_hash=event.prev_hash,
    )
    # Every field of the payload changes the hash.
    for key in payload:
        changed = {**payload, key: "changed" if payload[key] != "changed" else "other"}
        assert audit.hash_payload(changed) != event.hash, key


def version_1_event(seq: int, prev: str, **fields) -> AuditEvent:
    event = AuditEvent(
        seq=seq,
        created_at=timezone.now(),
        actor_label="old@example.test",
        verb="stage.submit",
        object_type="lifecycle.project",
        object_id="1",
        new={"status": "in_review"},
        prev_hash=prev,
        hash_version=1,
        **fields,
    )
    event.hash = audit.hash_payload(audit.payload_of(event))
    return event


def append_version_1_events(n: int) -> list[AuditEvent]:
    """Events as they were written before hash version 2, continuing the chain."""
    seq, prev = audit.chain_head()
    events = []
    for _ in range(n):
        seq += 1
        events.append(version_1_event(seq, prev))
        prev = events[-1].hash
    AuditEvent.objects.bulk_create(events)
    return events


def test_version_1_events_keep_verifying_beside_version_2_events(personas):
    old = append_version_1_events(2)
    assert "actor_name" not in audit.payload_of(old[0])
    events_for(personas)
    versions = list(AuditEvent.objects.order_by("seq").values_list("hash_version", flat=True))
    assert 1 in versions and versions[-1] == 2
    assert audit.verify_chain().intact
    # A version 1 event passed off as version 2 fails its hash.
    tamper(old[1].seq, "hash_version", 2)
    assert audit.verify_chain().broken_at == old[1].seq


# --- Checkpoints: the chain's head anchored outside the database ---------------------------


def remove_newest(n: int) -> None:
    with connection.cursor() as cursor:
        bypass_append_only(cursor)  # on SQLite the test settings let DELETE through anyway
        cursor.execute(
            "DELETE FROM lifecycle_auditevent WHERE seq > (SELECT max(seq) FROM "
            "lifecycle_auditevent) - %s",
            [n],
        )


def test_a_checkpoint_detects_a_truncated_tail_that_the_chain_alone_cannot(personas, tmp_path):
    events = events_for(personas)
    name, record = checkpoints.checkpoint_write()
    stored = checkpoints.checkpoint_storage().path(name)
    assert json.loads(Path(stored).read_text()) == record
    out = StringIO()
    call_command("verify_audit", "--checkpoint", stored, stdout=out)
    assert f"event #{events[-1].seq}" in out.getvalue()

    remove_newest(2)
    call_command("verify_audit", stdout=StringIO())  # the shorter chain is still intact
    with pytest.raises(CommandError, match=rf"TRUNCATED.*#{events[-3].seq + 1}-#{events[-1].seq}"):
        call_command("verify_audit", "--checkpoint", stored)


def test_a_checkpoint_detects_a_rewritten_tail(personas, tmp_path):
    events_for(personas)
    _, record = checkpoints.checkpoint_write()
    path = tmp_path / "checkpoint.json"
    path.write_text(checkpoints.checkpoint_text(record))
    remove_newest(1)
    # Appended again through the service: same seq, another hash.
    flagged_override(personas)
    with pytest.raises(CommandError, match="is not the one the checkpoint"):
        call_command("verify_audit", "--checkpoint", str(path))


def test_an_edited_checkpoint_is_refused(personas, tmp_path):
    events_for(personas)
    _, record = checkpoints.checkpoint_write()
    record["audit_checkpoint"]["last_seq"] -= 2
    path = tmp_path / "checkpoint.json"
    path.write_text(json.dumps(record))
    with pytest.raises(CommandError, match="cannot be trusted: its signature does not match"):
        call_command("verify_audit", "--checkpoint", str(path))


def test_the_daily_checkpoint_is_stored_and_e_mailed_to_course_staff_once(
    personas, django_capture_on_commit_callbacks, mailoutbox
):
    from notifications.tasks import send_audit_checkpoint

    events = events_for(personas)
    with django_capture_on_commit_callbacks(execute=True):
        result = send_audit_checkpoint()
    assert result["last_seq"] == events[-1].seq
    assert checkpoints.checkpoint_storage().exists(result["stored_as"])
    assert sorted(m.to[0] for m in mailoutbox) == ["ian@example.test", "tina@example.test"]
    body = mailoutbox[0].body
    record = json.loads(body[body.index("{") : body.rindex("}") + 1])
    assert checkpoints.read_checkpoint(json.dumps(record))["last_hash"] == events[-1].hash
    with django_capture_on_commit_callbacks(execute=True):
        send_audit_checkpoint()
    assert len(mailoutbox) == 2  # once a day per person


# --- The signing key ------------------------------------------------------------------------


def test_the_public_key_is_served_and_printed_and_verifies_a_checkpoint(personas, client, tmp_path):
    response = client.get(reverse("lifecycle:audit_public_key"))
    assert response.status_code == 200
    text = response.content.decode()
    out = StringIO()
    call_command("audit_public_key", stdout=out)
    assert out.getvalue() == text
    assert f"key id: {signing.key_id()}" in text
    key_file = tmp_path / "server.pub"
    key_file.write_text(text)
    events_for(personas)
    _, record = checkpoints.checkpoint_write()
    checkpoint = tmp_path / "c.json"
    checkpoint.write_text(json.dumps(record))
    call_command(
        "verify_audit",
        "--checkpoint",
        str(checkpoint),
        "--public-key",
        str(key_file),
        stdout=StringIO(),
    )
    other = tmp_path / "other.pub"
    other.write_text(signing.public_key_text(Ed25519PrivateKey.generate().public_key()))
    with pytest.raises(CommandError, match="names signing key"):
        call_command("verify_audit", "--checkpoint", str(checkpoint), "--public-key", str(other))
    assert client.post(reverse("lifecycle:audit_public_key")).status_code == 405


def test_without_a_configured_key_one_is_generated_once_under_var(settings, tmp_path):
    settings.AUDIT_SIGNING_KEY = ""
    settings.AUDIT_SIGNING_KEY_FILE = tmp_path / "var" / "audit-signing-key.pem"
    first = signing.key_id()
    assert settings.AUDIT_SIGNING_KEY_FILE.stat().st_mode & 0o777 == 0o600
    signing._cached_private_key.cache_clear()
    assert signing.key_id() == first
    record = signing.signed({"a": 1})
    assert signing.signature_problem(record) == ""
    assert "does not match" in signing.signature_problem({**record, "a": 2})


# --- audit_batch: a service's events written last, under one taking of the chain's lock ------


def test_a_batch_writes_its_events_at_its_end_in_the_order_they_were_recorded(personas):
    p = personas
    before = AuditEvent.objects.count()
    with transaction.atomic(), audit.audit_batch():
        first = audit.audit_record(
            actor=p.alice, verb="test.first", obj=p.project, project=p.project
        )
        second = audit.audit_record(actor=p.bob, verb="test.second", obj=p.project)
        assert first.pk is None and second.pk is None  # queued, not written yet
        assert AuditEvent.objects.count() == before
    written = list(AuditEvent.objects.order_by("seq")[before:])
    assert [e.verb for e in written] == ["test.first", "test.second"]
    assert [e.pk for e in written] == [first.pk, second.pk]
    assert written[1].seq == written[0].seq + 1
    assert written[1].prev_hash == written[0].hash
    assert written[0].created_at <= written[1].created_at
    assert written[0].course_id == p.project.course_id and written[0].project_id == p.project.pk
    assert audit.verify_chain().intact


def test_a_batch_left_by_an_error_writes_nothing_and_the_next_event_is_written_at_once(
    personas,
):
    p = personas
    before = AuditEvent.objects.count()
    with pytest.raises(RuntimeError, match="boom"), transaction.atomic(), audit.audit_batch():
        audit.audit_record(actor=p.alice, verb="test.lost", obj=p.project)
        raise RuntimeError("boom")
    assert AuditEvent.objects.count() == before
    with transaction.atomic():
        event = audit.audit_record(actor=p.alice, verb="test.after", obj=p.project)
        assert event.pk is not None  # no batch is left open on the connection
    assert audit.verify_chain().intact


def test_a_nested_batch_belongs_to_the_outermost_one(personas):
    p = personas
    before = AuditEvent.objects.count()
    with transaction.atomic(), audit.audit_batch():
        with audit.audit_batch():
            audit.audit_record(actor=p.alice, verb="test.inner", obj=p.project)
        assert AuditEvent.objects.count() == before
        audit.audit_record(actor=p.alice, verb="test.outer", obj=p.project)
    verbs = list(AuditEvent.objects.order_by("seq").values_list("verb", flat=True)[before:])
    assert verbs == ["test.inner", "test.outer"]


@pytest.mark.django_db(transaction=True)
def test_a_batch_must_be_opened_inside_a_transaction(personas):
    with pytest.raises(RuntimeError, match="atomic"), audit.audit_batch():
        pass


def test_every_event_of_a_batch_is_announced_as_saved(personas):
    """Listeners of new events (the pages' freshness tokens) hear of each batched event as if
    it had been saved alone, though the batch inserts them in one statement."""
    from django.db.models.signals import post_save

    p = personas
    heard = []

    def listener(sender, instance, created, **kwargs):
        heard.append((instance.verb, instance.pk is not None, created))

    post_save.connect(listener, sender=AuditEvent, dispatch_uid="test.audit.batch")
    try:
        with transaction.atomic(), audit.audit_batch():
            audit.audit_record(actor=p.alice, verb="test.one", obj=p.project, project=p.project)
            audit.audit_record(actor=p.alice, verb="test.two", obj=p.project, project=p.project)
    finally:
        post_save.disconnect(sender=AuditEvent, dispatch_uid="test.audit.batch")
    assert heard == [("test.one", True, True), ("test.two", True, True)]
