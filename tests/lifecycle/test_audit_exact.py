"""The audit chain's fixed points asserted by value: the genesis hash, the canonical JSON, who an
event is attributed to, the course a project event carries, and the counts the verifier reports
at the first broken event (including a sequence gap whose links and hashes are all correct)."""

from __future__ import annotations

import copy
import datetime

import pytest
from django.db import DatabaseError, connection, transaction
from factories import fill_and_submit

from lifecycle import audit
from lifecycle.models import AuditEvent

pytestmark = pytest.mark.django_db


def chain(personas) -> list[tuple[dict, str]]:
    fill_and_submit(personas.project.stages.get(definition__order=1), personas.alice)
    events = list(AuditEvent.objects.order_by("seq"))
    assert len(events) >= 5
    return [(copy.deepcopy(audit.payload_of(e)), e.hash) for e in events]


def test_the_chain_starts_from_sixty_four_zeros_and_an_empty_chain_has_that_head(db):
    assert audit.chain_head() == (0, "0" * 64)


def test_the_first_event_links_to_the_genesis_hash(personas):
    first = AuditEvent.objects.order_by("seq").first()
    assert (first.seq, first.prev_hash) == (1, "0" * 64)
    assert audit.chain_head() == (AuditEvent.objects.count(), AuditEvent.objects.latest("seq").hash)


def test_canonical_json_keeps_unicode_sorts_keys_and_has_no_spaces():
    assert audit.canonical_json({"b": "é 🙂", "a": [1, None]}) == '{"a":[1,null],"b":"é 🙂"}'


def test_an_event_names_its_actor_or_the_system_and_a_project_event_its_course(personas):
    p = personas
    with transaction.atomic():
        by_alice = audit.audit_record(
            actor=p.alice, verb="test.alice", obj=p.project, project=p.project
        )
        by_system = audit.audit_record(
            actor=None, verb="test.system", obj=p.course, course=p.course
        )
    assert (by_alice.actor_id, by_alice.actor_label) == (p.alice.pk, "alice@example.test")
    assert (by_alice.course_id, by_alice.project_id) == (p.course.pk, p.project.pk)
    assert (by_system.actor_id, by_system.actor_label) == (None, "system")
    assert (by_system.course_id, by_system.project_id) == (p.course.pk, None)
    assert audit.verify_chain().intact


def test_a_broken_link_reports_how_many_events_verified_before_it(personas):
    rows = chain(personas)
    rows[3][0]["prev"] = "f" * 64
    report = audit.verify_payloads(rows)
    assert (report.count, report.broken_at) == (3, rows[3][0]["seq"])
    assert report.head == rows[2][1]


def test_a_sequence_gap_with_correct_links_and_hashes_is_detected(personas):
    rows = chain(personas)
    # Renumber event 4 onwards as if an event had been cut out, re-linking and re-hashing each.
    forged = rows[:3]
    for payload, _ in rows[3:]:
        payload = {**payload, "seq": payload["seq"] + 1, "prev": forged[-1][1]}
        forged.append((payload, audit.hash_payload(payload)))
    report = audit.verify_payloads(forged)
    assert (report.count, report.broken_at) == (3, rows[3][0]["seq"] + 1)
    assert report.reason == f"expected event #{rows[3][0]['seq']} here"


def test_without_the_test_settings_escape_hatch_a_delete_is_refused(personas, settings):
    del settings.AUDIT_ALLOW_TEST_FLUSH  # production settings do not define it
    chain(personas)
    count = AuditEvent.objects.count()
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM lifecycle_auditevent")
    assert AuditEvent.objects.count() == count


def test_a_repeated_sequence_number_with_correct_links_and_hashes_is_detected(personas):
    rows = chain(personas)
    forged = rows[:3]
    for payload, _ in rows[3:]:
        payload = {**payload, "seq": payload["seq"] - 1, "prev": forged[-1][1]}
        forged.append((payload, audit.hash_payload(payload)))
    report = audit.verify_payloads(forged)
    assert (report.count, report.broken_at) == (3, rows[3][0]["seq"] - 1)
    assert report.reason == f"expected event #{rows[3][0]['seq']} here"


def test_an_events_old_and_new_are_stored_as_their_json_round_trip(personas):
    with transaction.atomic():
        event = audit.audit_record(
            actor=personas.alice,
            verb="test.values",
            obj=personas.project,
            project=personas.project,
            old=None,
            new={"due": datetime.date(2026, 1, 2), "stages": (1, 2)},
        )
    assert event.old is None
    assert event.new == {"due": "2026-01-02", "stages": [1, 2]}
    event.refresh_from_db()
    assert (event.old, event.new) == (None, {"due": "2026-01-02", "stages": [1, 2]})
    assert audit.verify_chain().intact


def test_a_display_name_longer_than_its_column_is_cut_to_150_characters(personas):
    personas.alice.display_name = "N" * 200
    with transaction.atomic():
        event = audit.audit_record(actor=personas.alice, verb="test.name", obj=personas.project)
    event.refresh_from_db()
    assert event.actor_name == "N" * 150
    assert audit.verify_chain().intact


def test_with_the_test_settings_escape_hatch_a_delete_is_allowed(personas, settings):
    # The test runner empties SQLite's tables between transactional tests through this hatch
    # (PostgreSQL's runner truncates, which its own trigger handles).
    if connection.vendor != "sqlite":
        pytest.skip("the DELETE hatch is SQLite's trigger function")
    assert settings.AUDIT_ALLOW_TEST_FLUSH
    chain(personas)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM lifecycle_auditevent")
    assert AuditEvent.objects.count() == 0
