"""Evidence files in S3-compatible object storage through django-storages: against a real S3
server process (moto in server mode, which these machines can install from PyPI; no MinIO
build is installable here), started by the fixture on a port of its own. An outage refuses the
upload with a message and loses no draft.

Without moto_server the tests skip; in CI (CI=true) they fail instead."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from evidence_samples import notebook, png
from factories import advance_to

from evidence import services as evidence_services
from evidence.models import DraftEvidence, EvidenceBlob
from evidence.services import EvidenceStorageDown
from evidence.storage import evidence_storage

BUCKET = "lrb-evidence-test"


def _port() -> int:
    base = int(os.environ.get("LRB_MOTO_PORT", "8271"))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return base + int(worker.removeprefix("gw") or 0)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def s3_endpoint():
    exe = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    if not Path(exe).exists():
        message = "moto_server is not installed (pip install 'moto[server]')"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    port = _port()
    process = subprocess.Popen(
        [exe, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not _answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"moto_server did not start on port {port}")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _s3_settings(endpoint: str) -> dict:
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": BUCKET,
            "endpoint_url": endpoint,
            "access_key": "testing",
            "secret_key": "testing",
            "region_name": "us-east-1",
            "addressing_style": "path",
            "location": "evidence",
            "default_acl": None,
            "file_overwrite": True,
        },
    }


@pytest.fixture
def s3(settings, s3_endpoint):
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=BUCKET)
    settings.STORAGES = {**settings.STORAGES, "evidence": _s3_settings(s3_endpoint)}
    yield client
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


@pytest.fixture
def stage5(personas):
    return advance_to(personas.project, 5, team_member=personas.alice, reviewer=personas.ian)


def test_a_file_goes_to_the_bucket_under_its_hash_and_comes_back(s3, stage5, personas):
    from django.test import Client
    from django.urls import reverse

    data = png(12, 7)
    attached = evidence_services.evidence_attach(
        stage=stage5,
        actor=personas.alice,
        question_key="subgroup-margins",
        name="matrix.png",
        data=data,
    )
    key = f"evidence/{attached.blob.storage_name}"
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert body == data
    client = Client()
    client.force_login(personas.tina)
    response = client.get(reverse("evidence:draft_file", args=[attached.pk, "download"]))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == data


def test_a_notebook_and_its_rendering_are_both_stored(s3, stage5, personas):
    attached = evidence_services.evidence_attach(
        stage=stage5,
        actor=personas.alice,
        question_key="subgroup-margins",
        name="analysis.ipynb",
        data=notebook(),
    )
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert f"evidence/{attached.blob.storage_name}" in keys
    assert f"evidence/{attached.blob.rendered_name}" in keys
    assert evidence_storage().exists(attached.blob.rendered_name)


def test_an_outage_refuses_the_upload_and_keeps_the_draft(settings, stage5, personas):
    from lifecycle import services

    dead_port = 8279
    assert not _answers(dead_port)
    settings.STORAGES = {
        **settings.STORAGES,
        "evidence": _s3_settings(f"http://127.0.0.1:{dead_port}"),
    }
    stage5.refresh_from_db()
    services.stage_save_draft(
        stage=stage5,
        actor=personas.alice,
        answers={"classified-correctly": "Most referrals."},
        base_version=stage5.draft_version,
    )
    started = time.monotonic()
    with pytest.raises(EvidenceStorageDown, match="not answering"):
        evidence_services.evidence_attach(
            stage=stage5,
            actor=personas.alice,
            question_key="subgroup-margins",
            name="matrix.png",
            data=png(),
        )
    assert time.monotonic() - started < 60
    stage5.refresh_from_db()
    assert stage5.draft_answers["classified-correctly"] == "Most referrals."
    assert not EvidenceBlob.objects.exists() and not DraftEvidence.objects.exists()
