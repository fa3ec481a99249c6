"""Evidence on answers: attached by the team, frozen into the revision (its hash covers the
files' hashes, the audit event names them), unchangeable after submission; storage outages
refuse the upload and lose no draft; twenty uploads at once respect the template's limit."""

from __future__ import annotations

import hashlib

import pytest
from concurrency import outcome_kinds, race
from django.db.models import ProtectedError
from evidence_samples import CSV, notebook, pdf, png
from factories import advance_to, complete_answers, current_stage, fill_and_submit

from evidence import services as evidence_services
from evidence.models import DraftEvidence, EvidenceBlob, RevisionEvidence
from evidence.selectors import evidence_changes
from evidence.services import EvidenceError, EvidenceStorageDown
from evidence.storage import StorageUnavailable
from lifecycle import services
from lifecycle.audit import sha256_hex
from lifecycle.errors import IllegalTransition, NotAllowed
from lifecycle.models import AuditEvent, StageRevision

QUESTION = "subgroup-margins"


@pytest.fixture
def stage5(personas):
    return advance_to(personas.project, 5, team_member=personas.alice, reviewer=personas.ian)


def attach(stage, actor, name="matrix.png", data=None, question=QUESTION):
    return evidence_services.evidence_attach(
        stage=stage, actor=actor, question_key=question, name=name, data=data or png()
    )


def submit(stage, actor):
    stage.refresh_from_db()
    services.stage_save_draft(
        stage=stage, actor=actor, answers=complete_answers(stage), base_version=stage.draft_version
    )
    return services.stage_submit(stage=stage, actor=actor)


def test_a_team_member_attaches_a_file_stored_under_its_hash(stage5, personas, evidence_root):
    data = png()
    attached = attach(stage5, personas.alice, data=data)
    digest = hashlib.sha256(data).hexdigest()
    assert attached.blob.sha256 == digest
    assert (evidence_root / "sha256" / digest[:2] / digest).read_bytes() == data
    event = AuditEvent.objects.order_by("-seq").first()
    assert event.verb == "evidence.attach"
    assert event.new["sha256"] == digest and event.new["name"] == "matrix.png"


def test_the_revision_freezes_the_files_and_its_hash_covers_theirs(stage5, personas):
    attach(stage5, personas.alice, "matrix.png", png())
    attach(stage5, personas.alice, "errors.csv", CSV)
    revision = submit(stage5, personas.alice)
    names = [f["name"] for f in revision.evidence]
    assert names == ["errors.csv", "matrix.png"]
    expected = sha256_hex(
        services.revision_content(revision.answers, revision.stakeholders, revision.evidence)
    )
    assert revision.content_sha256 == expected
    swapped = [dict(f, sha256="0" * 64) for f in revision.evidence]
    assert (
        sha256_hex(services.revision_content(revision.answers, revision.stakeholders, swapped))
        != revision.content_sha256
    )
    without = sha256_hex(services.revision_content(revision.answers, revision.stakeholders))
    assert without != revision.content_sha256
    frozen = RevisionEvidence.objects.filter(revision=revision)
    assert sorted(f.name for f in frozen) == names
    event = AuditEvent.objects.filter(verb="stage.submit").order_by("-seq").first()
    assert [f["name"] for f in event.new["evidence"]] == names
    assert all(len(f["sha256"]) == 64 for f in event.new["evidence"])


def test_a_revision_without_files_hashes_as_before(personas):
    revision = fill_and_submit(current_stage(personas.project), personas.alice)
    assert revision.evidence == []
    assert revision.content_sha256 == sha256_hex(
        services.revision_content(revision.answers, revision.stakeholders)
    )


def test_a_submitted_file_can_neither_change_nor_vanish(stage5, personas):
    attached = attach(stage5, personas.alice)
    revision = submit(stage5, personas.alice)
    with pytest.raises(IllegalTransition):
        attach(stage5, personas.alice, data=png(9, 9))
    with pytest.raises(IllegalTransition):
        evidence_services.evidence_remove(attachment=attached, actor=personas.alice)
    frozen = RevisionEvidence.objects.get(revision=revision)
    with pytest.raises(ValueError):
        frozen.save()
    with pytest.raises(ValueError):
        frozen.blob.save()
    with pytest.raises(ProtectedError):
        frozen.blob.delete()
    with pytest.raises(ProtectedError):
        StageRevision.objects.filter(pk=revision.pk).delete()


def test_only_the_team_attaches(stage5, personas):
    for outsider in (personas.carol, personas.tina, personas.ian, personas.oscar):
        with pytest.raises(NotAllowed):
            attach(stage5, outsider)
    assert not DraftEvidence.objects.exists()


def test_a_question_without_a_slot_takes_no_file(stage5, personas):
    with pytest.raises(EvidenceError, match="does not take files"):
        attach(stage5, personas.alice, question="acceptable-error-rate")


def test_a_refused_file_leaves_nothing_in_storage_or_the_database(stage5, personas, evidence_root):
    with pytest.raises(EvidenceError, match="does not match"):
        attach(stage5, personas.alice, name="matrix.png", data=pdf())
    assert not EvidenceBlob.objects.exists()
    assert not evidence_root.exists() or not any(evidence_root.rglob("*"))


def test_the_template_limits_the_number_of_files(stage5, personas):
    for i in range(5):
        attach(stage5, personas.alice, f"m{i}.png", png(4 + i, 4))
    with pytest.raises(EvidenceError, match="at most 5 files"):
        attach(stage5, personas.alice, "m5.png", png(20, 4))


def test_the_same_name_replaces_and_a_diff_names_every_change(stage5, personas):
    attach(stage5, personas.alice, "matrix.png", png())
    attach(stage5, personas.alice, "old.csv", CSV)
    first = submit(stage5, personas.alice)
    services.stage_request_changes(
        stage=stage5, revision=first, actor=personas.ian, reason="Show the new matrix."
    )
    stage5.refresh_from_db()
    attach(stage5, personas.alice, "matrix.png", png(16, 16))
    evidence_services.evidence_remove(
        attachment=DraftEvidence.objects.get(name="old.csv"), actor=personas.alice
    )
    attach(stage5, personas.alice, "analysis.ipynb", notebook())
    second = submit(stage5, personas.alice)
    changes = {c.name: c.change for c in evidence_changes(first.evidence, second.evidence)}
    assert changes == {"matrix.png": "replaced", "old.csv": "removed", "analysis.ipynb": "added"}
    verbs = list(
        AuditEvent.objects.filter(verb__startswith="evidence.").values_list("verb", flat=True)
    )
    assert verbs.count("evidence.replace") == 1 and verbs.count("evidence.remove") == 1


def test_a_storage_outage_refuses_the_upload_and_keeps_the_draft(stage5, personas, monkeypatch):
    stage5.refresh_from_db()
    services.stage_save_draft(
        stage=stage5,
        actor=personas.alice,
        answers={"classified-correctly": "Most referrals."},
        base_version=stage5.draft_version,
    )

    def down(name, data):
        raise StorageUnavailable("connection refused")

    monkeypatch.setattr("evidence.services.write_object", down)
    with pytest.raises(EvidenceStorageDown, match="not answering"):
        attach(stage5, personas.alice)
    stage5.refresh_from_db()
    assert stage5.draft_answers["classified-correctly"] == "Most referrals."
    assert not EvidenceBlob.objects.exists() and not DraftEvidence.objects.exists()


def test_a_notebook_is_stored_with_its_sanitised_rendering(stage5, personas, evidence_root):
    attached = attach(stage5, personas.alice, "analysis.ipynb", notebook())
    rendered = evidence_root / attached.blob.rendered_name
    assert b"Subgroup error rates" in rendered.read_bytes()


@pytest.mark.django_db(transaction=True)
def test_twenty_uploads_at_once_respect_the_limit_and_leave_no_half_file(personas, evidence_root):
    stage = advance_to(personas.project, 5, team_member=personas.alice, reviewer=personas.ian)
    members = [personas.alice, personas.bob]

    def upload(i):
        return attach(stage, members[i % 2], f"chart-{i}.png", png(10 + i, 10))

    results = race(20, upload)
    kinds = outcome_kinds(results)
    assert kinds["ok"] == 5, kinds
    assert kinds["EvidenceError"] == 15, kinds
    refused = [v for s, v in results if s == "error"]
    assert all("at most 5" in e.message for e in refused)
    assert DraftEvidence.objects.filter(stage=stage).count() == 5
    assert not list(evidence_root.rglob(".incoming-*"))
