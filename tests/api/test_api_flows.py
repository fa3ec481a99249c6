"""Driving a stage through the API as a notebook would: read, save with the base version, the
same conflict answer as the page, submit, review, comment; paging, problem details and rate
limits."""

from __future__ import annotations

import pytest
from django.urls import reverse
from factories import complete_answers, fill_and_submit

from lifecycle.models import AuditEvent, ProjectStage, StageStatus

pytestmark = pytest.mark.django_db


def _stage(world) -> ProjectStage:
    return ProjectStage.objects.select_related("definition").get(
        pk=world.p.project.current_stage_id
    )


def test_a_team_drives_a_stage_and_a_reviewer_approves_it(world):
    stage = _stage(world)
    alice, erin, tina = world.client("alice"), world.client("erin"), world.client("tina")
    read = alice.get(reverse("api:stage", args=[stage.pk])).json()
    assert read["status"] == StageStatus.DRAFTING and read["draft"]["version"] == 0
    answers = complete_answers(stage)
    saved = alice.put(
        reverse("api:stage_draft", args=[stage.pk]), {"base_version": 0, "answers": answers}
    )
    assert saved.status_code == 200, saved.content
    assert saved.json()["draft"]["version"] == 1
    assert AuditEvent.objects.filter(verb="stage.draft_save", actor=world.p.alice).count() == 1
    # Stakeholders are written on the page; stage 1 needs one before it can be submitted.
    from lifecycle.services import stakeholder_add

    stakeholder_add(project=world.p.project, actor=world.p.alice, name="Nurses", kind="direct_user")
    submitted = alice.post(reverse("api:stage_submit", args=[stage.pk]), {"base_version": 1})
    assert submitted.status_code == 201, submitted.content
    revision = submitted.json()
    assert revision["number"] == 1 and len(revision["sha256"]) == 64
    # The draft is the team's: a reviewer reads the stage without it.
    as_erin = erin.get(reverse("api:stage", args=[stage.pk])).json()
    assert as_erin["draft"] is None and as_erin["current_revision"]["sha256"] == revision["sha256"]
    for who in (erin, tina):
        decided = who.post(
            reverse("api:revision_decisions", args=[revision["id"]]), {"outcome": "approve"}
        )
        assert decided.status_code == 201, decided.content
    stage.refresh_from_db()
    gate = alice.get(reverse("api:stage", args=[stage.pk])).json()["gate"]
    assert stage.status == StageStatus.APPROVED, gate
    assert gate["satisfied"] is True


def test_a_stale_save_gets_the_pages_conflict_as_problem_details(world):
    stage = _stage(world)
    key = stage.definition.questions.order_by("order").first().key
    alice, bob = world.client("alice"), world.client("bob")
    url = reverse("api:stage_draft", args=[stage.pk])
    assert bob.put(url, {"base_version": 0, "answers": {key: "Bob's words"}}).status_code == 200
    stale = alice.put(url, {"base_version": 0, "answers": {key: "Alice's words"}})
    assert stale.status_code == 409
    body = stale.json()
    assert stale["Content-Type"] == "application/problem+json"
    assert body["type"].endswith("draft-conflict")
    assert body["changed_questions"] == [key] and body["current_version"] == 1
    stage.refresh_from_db()
    assert stage.draft_answers[key] == "Bob's words"


def test_invalid_input_names_the_field(world):
    stage = _stage(world)
    alice = world.client("alice")
    url = reverse("api:stage_draft", args=[stage.pk])
    missing = alice.put(url, {"answers": {}})
    assert missing.status_code == 400 and "base_version" in missing.json()["errors"]
    url_question = stage.definition.questions.filter(kind="url").first()
    if url_question is not None:
        bad = alice.put(url, {"base_version": 0, "answers": {url_question.key: "not a url"}})
        assert bad.status_code == 400 and url_question.key in bad.json()["errors"]
    garbage = alice.client.put(
        url, "{nope", content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {alice.secret}"
    )
    assert garbage.status_code == 400 and garbage["Content-Type"] == "application/problem+json"
    decision = world.client("erin").post(
        reverse("api:revision_decisions", args=[fill_and_submit(stage, world.p.alice).pk]),
        {"outcome": "request_changes", "comment": ""},
    )
    assert decision.status_code == 400 and "comment" in decision.json()["errors"]


def test_lists_are_paged(world):
    alice = world.client("ian")
    page = alice.get(reverse("api:projects") + "?page_size=1").json()
    assert page["count"] == 2 and len(page["results"]) == 1 and page["next"]
    second = alice.get(page["next"]).json()
    assert len(second["results"]) == 1 and second["results"][0]["id"] != page["results"][0]["id"]


def test_the_audit_trail_pages_by_cursor_and_exports_a_verifiable_file(world, tmp_path):
    stage = _stage(world)
    fill_and_submit(stage, world.p.alice)
    ian = world.client("ian")
    first = ian.get(reverse("api:project_audit", args=[world.p.project.pk]) + "?page_size=2").json()
    assert len(first["results"]) == 2 and first["next"] and "cursor=" in first["next"]
    seqs = [row["seq"] for row in first["results"]]
    rest = ian.get(first["next"]).json()
    assert rest["results"][0]["seq"] > seqs[-1]
    events = AuditEvent.objects.filter(project=world.p.project).count()
    export = ian.get(reverse("api:project_audit_jsonl", args=[world.p.project.pk]))
    body = b"".join(export.streaming_content)
    lines = body.decode().splitlines()
    assert len(lines) == events + 1  # the events, then the signed head
    path = tmp_path / "audit.jsonl"
    path.write_bytes(body)
    from django.core.management import call_command

    call_command("verify_audit", "--file", str(path))  # raises CommandError when it fails


def test_a_token_over_its_rate_gets_429_with_retry_after(world, monkeypatch):
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(
        SimpleRateThrottle, "THROTTLE_RATES", {"token": "3/min", "address": "1000/min"}
    )
    alice = world.client("alice")
    codes = [alice.get("/api/v1/me/").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    refused = alice.get("/api/v1/me/")
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    assert refused.json()["retry_after"] > 0
    assert refused["Content-Type"] == "application/problem+json"
    # Another person's token has its own budget.
    assert world.client("bob").get("/api/v1/me/").status_code == 200


def test_an_address_over_its_rate_gets_429_whoever_asks(world, monkeypatch):
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(
        SimpleRateThrottle, "THROTTLE_RATES", {"token": "1000/min", "address": "4/min"}
    )
    codes = [
        world.client(who).get("/api/v1/me/").status_code
        for who in ("alice", "bob", "ian", "tina", "erin")
    ]
    assert codes == [200, 200, 200, 200, 429]
    assert world.client(None).get("/api/v1/me/").status_code in (401, 429)
