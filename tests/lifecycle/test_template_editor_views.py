"""The template editor's pages with personas: staff (instructor and TA) use every page and
POST; a student, an invited expert and an outsider get 404 from all of them; wrong methods get
405; concurrent edits get the conflict page; bad input is refused next to the field."""

from __future__ import annotations

import io
import json

import pytest
from django.test import Client
from django.urls import reverse

from lifecycle import template_services as ts
from lifecycle.models import AuditEvent, LifecycleTemplate, TemplateDraft
from lifecycle.template_data import default_document

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def drafted(personas):
    ts.template_draft_start(course=personas.course, actor=personas.ian, source="current")
    return personas


def rev(course) -> int:
    return TemplateDraft.objects.get(course=course).revision


def pages(course):
    c = course.pk
    return [
        reverse("lifecycle:template_editor", args=[c]),
        reverse("lifecycle:template_stage", args=[c, 0]),
        reverse("lifecycle:template_question", args=[c, 0, 0]),
        reverse("lifecycle:template_export", args=[c]),
        reverse("reviews:template_migrations", args=[c]),
    ]


def posts(course, project):
    c = course.pk
    return [
        (reverse("lifecycle:template_start", args=[c]), {"source": "default"}),
        (reverse("lifecycle:template_stage_add", args=[c]), {"key": "x", "title": "X"}),
        (reverse("lifecycle:template_stage_move", args=[c, 0]), {"direction": "down"}),
        (reverse("lifecycle:template_stage_remove", args=[c, 0]), {}),
        (reverse("lifecycle:template_stage", args=[c, 0]), {"title": "t"}),
        (reverse("lifecycle:template_question_add", args=[c, 0]), {"key": "k", "prompt": "p"}),
        (reverse("lifecycle:template_question", args=[c, 0, 0]), {"key": "k", "prompt": "p"}),
        (reverse("lifecycle:template_question_move", args=[c, 0, 0]), {"direction": "down"}),
        (reverse("lifecycle:template_question_remove", args=[c, 0, 0]), {}),
        (reverse("lifecycle:template_rule_remove", args=[c, 0, 0]), {}),
        (reverse("lifecycle:template_criterion_add", args=[c, 0]), {"key": "k", "title": "t"}),
        (reverse("lifecycle:template_criterion_remove", args=[c, 0, 0]), {}),
        (reverse("reviews:template_rule_add", args=[c, 0]), {"kind": "min_approvals", "count": 1}),
        (reverse("lifecycle:template_publish", args=[c]), {}),
        (reverse("lifecycle:template_discard", args=[c]), {}),
        (reverse("lifecycle:template_import", args=[c]), {}),
        (reverse("lifecycle:template_version_delete", args=[c, course.template_id]), {}),
        (reverse("reviews:project_migrate", args=[c, project.pk]), {}),
    ]


@pytest.mark.parametrize("who", ["alice", "carol", "erin", "oscar"])
def test_nobody_but_course_staff_sees_or_changes_the_editor(drafted, who):
    p = drafted
    client = client_for(getattr(p, who))
    for url in pages(p.course):
        assert client.get(url).status_code == 404, url
    before = AuditEvent.objects.count()
    for url, data in posts(p.course, p.project):
        assert client.post(url, {**data, "base_revision": rev(p.course)}).status_code == 404, url
    assert AuditEvent.objects.count() == before


def test_anonymous_visitors_are_sent_to_sign_in(drafted):
    for url in pages(drafted.course):
        response = Client().get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@pytest.mark.parametrize("who", ["ian", "tina"])
def test_course_staff_open_every_page(drafted, who):
    client = client_for(getattr(drafted, who))
    for url in pages(drafted.course):
        assert client.get(url).status_code == 200, url


def test_actions_refuse_the_wrong_method(drafted):
    client = client_for(drafted.ian)
    for url, _data in posts(drafted.course, drafted.project):
        if url.endswith(("/stages/0/", "/questions/0/")):
            continue  # GET shows the form
        assert client.get(url).status_code == 405, url
    assert (
        client.post(reverse("lifecycle:template_export", args=[drafted.course.pk])).status_code
        == 405
    )


def test_an_instructor_edits_orders_and_saves_a_template_without_javascript(drafted):
    p = drafted
    client = client_for(p.ian)
    c = p.course.pk
    first_two = [s["key"] for s in TemplateDraft.objects.get().data["stages"][:2]]
    r = client.post(
        reverse("lifecycle:template_stage_move", args=[c, 0]),
        {"direction": "down", "base_revision": rev(p.course)},
    )
    assert r.status_code == 302
    assert [s["key"] for s in TemplateDraft.objects.get().data["stages"][:2]] == first_two[::-1]
    r = client.post(
        reverse("lifecycle:template_question_add", args=[c, 1]),
        {
            "key": "consent-owner",
            "prompt": "Who consented?",
            "kind": "long_text",
            "required": "on",
            "owner_expertise": "ethics",
            "base_revision": rev(p.course),
        },
    )
    assert r.status_code == 302
    r = client.post(
        reverse("reviews:template_rule_add", args=[c, 1]),
        {
            "kind": "min_approvals",
            "role": "expert",
            "count": 2,
            "risk_tiers": ["high"],
            "action": "add",
            "base_revision": rev(p.course),
        },
    )
    assert r.status_code == 302
    stage = TemplateDraft.objects.get().data["stages"][1]
    assert stage["questions"][-1]["owner_expertise"] == "ethics"
    assert stage["gate_rules"] == [
        {
            "kind": "min_approvals",
            "count": 2,
            "role": "expert",
            "applies_if": {"risk_tier": ["high"]},
        }
    ]
    r = client.post(
        reverse("lifecycle:template_publish", args=[c]), {"base_revision": rev(p.course)}
    )
    assert r.status_code == 302
    template = LifecycleTemplate.objects.get(course=p.course)
    definition = template.stages.get(order=2)
    assert definition.question_owners == {"consent-owner": "ethics"}
    assert definition.gate_rules[0]["applies_if"] == {"risk_tier": ["high"]}


def test_the_guidance_preview_renders_markdown_without_saving(drafted):
    client = client_for(drafted.ian)
    url = reverse("lifecycle:template_stage", args=[drafted.course.pk, 0])
    before = rev(drafted.course)
    data = {
        **{
            k: v
            for k, v in TemplateDraft.objects.get().data["stages"][0].items()
            if not isinstance(v, (list, dict))
        },
        "loop_targets": "",
        "guidance": "**bold** <script>x</script>",
        "action": "preview",
        "base_revision": before,
    }
    data = {k: v for k, v in data.items() if v is not False}
    r = client.post(url, data)
    assert r.status_code == 200
    assert b"<strong>bold</strong>" in r.content and b"<script>x" not in r.content
    assert rev(drafted.course) == before


def test_a_stale_edit_gets_the_conflict_page_and_changes_nothing(drafted):
    p = drafted
    stale = rev(p.course)
    client_for(p.tina).post(
        reverse("lifecycle:template_stage_remove", args=[p.course.pk, 6]), {"base_revision": stale}
    )
    data = TemplateDraft.objects.get().data
    r = client_for(p.ian).post(
        reverse("lifecycle:template_stage_remove", args=[p.course.pk, 0]), {"base_revision": stale}
    )
    assert r.status_code == 409
    assert b"template-conflict" in r.content and b"Tina" in r.content
    assert TemplateDraft.objects.get().data == data


def test_a_duplicate_question_key_is_refused_next_to_the_field(drafted):
    p = drafted
    key = TemplateDraft.objects.get().data["stages"][0]["questions"][0]["key"]
    r = client_for(p.ian).post(
        reverse("lifecycle:template_question_add", args=[p.course.pk, 0]),
        {"key": key, "prompt": "Again", "kind": "long_text", "base_revision": rev(p.course)},
    )
    assert r.status_code == 400
    assert "used twice in this stage" in r.context["question_form"].errors["key"][0]


def test_a_dry_run_shows_the_projects_in_review_and_writes_nothing(drafted):
    from factories import current_stage, fill_and_submit

    p = drafted
    fill_and_submit(current_stage(p.project), p.alice)
    before = (rev(p.course), AuditEvent.objects.count())
    r = client_for(p.ian).post(
        reverse("reviews:template_rule_add", args=[p.course.pk, 0]),
        {
            "kind": "min_approvals",
            "role": "staff",
            "count": 2,
            "action": "dry_run",
            "base_revision": rev(p.course),
        },
    )
    assert r.status_code == 200
    result = r.context["dry_run"]
    assert [row.stage.project for row in result["rows"]] == [p.project]
    assert "needs 2 more course-staff approvals" in result["rows"][0].after.summary
    assert (rev(p.course), AuditEvent.objects.count()) == before


def test_an_unsatisfiable_rule_is_refused_with_the_reason(drafted):
    p = drafted
    r = client_for(p.ian).post(
        reverse("reviews:template_rule_add", args=[p.course.pk, 0]),
        {
            "kind": "min_approvals",
            "role": "staff",
            "count": 5,
            "action": "add",
            "base_revision": rev(p.course),
        },
    )
    assert r.status_code == 400
    assert "the course has 2 staff member(s)" in " ".join(r.context["errors"])
    assert TemplateDraft.objects.get().data["stages"][0]["gate_rules"] == []


def test_export_and_import_round_trip_and_a_malformed_file_names_the_field(drafted):
    p = drafted
    client = client_for(p.ian)
    r = client.get(reverse("lifecycle:template_export", args=[p.course.pk]))
    assert r["Content-Type"].startswith("application/json")
    assert json.loads(r.content) == default_document()
    upload = io.BytesIO(r.content)
    upload.name = "t.json"
    r = client.post(
        reverse("lifecycle:template_import", args=[p.course.pk]),
        {"file": upload, "base_revision": rev(p.course)},
    )
    assert r.status_code == 302
    bad = default_document()
    bad["stages"][2]["questions"][0]["kind"] = "essay"
    upload = io.BytesIO(json.dumps(bad).encode())
    upload.name = "bad.json"
    before = TemplateDraft.objects.get().revision
    r = client.post(
        reverse("lifecycle:template_import", args=[p.course.pk]),
        {"file": upload, "base_revision": before},
    )
    assert r.status_code == 400
    assert any("stages[2].questions[0].kind" in e for e in r.context["document_errors"])
    assert TemplateDraft.objects.get().revision == before
    junk = io.BytesIO(b"{not json")
    junk.name = "junk.json"
    r = client.post(reverse("lifecycle:template_import", args=[p.course.pk]), {"file": junk})
    assert r.status_code == 400 and "Not JSON" in r.context["import_form"].errors["file"][0]


def test_staff_migrate_a_project_from_the_preview_page(drafted):
    p = drafted
    client = client_for(p.ian)
    client.post(
        reverse("lifecycle:template_publish", args=[p.course.pk]), {"base_revision": rev(p.course)}
    )
    p.course.refresh_from_db()
    r = client.get(reverse("reviews:template_migrations", args=[p.course.pk]))
    assert [project for project, _plan in r.context["previews"]] == [p.other_project, p.project]
    r = client.post(
        reverse("reviews:project_migrate", args=[p.course.pk, p.project.pk]),
        {"target": p.course.template_id},
    )
    assert r.status_code == 302
    p.project.refresh_from_db()
    assert p.project.template_id == p.course.template_id


def test_the_team_proposes_attributes_on_the_project_page_and_staff_confirm(personas):
    p = personas
    url = reverse("lifecycle:project_attributes", args=[p.project.pk])
    assert (
        client_for(p.alice).post(url, {"risk_tier": "high", "domain": "health"}).status_code == 302
    )
    assert client_for(p.carol).post(url, {"risk_tier": "low"}).status_code == 404
    assert client_for(p.oscar).post(url, {"risk_tier": "low"}).status_code == 404
    assert (
        client_for(p.tina).post(url, {"risk_tier": "medium", "domain": "health"}).status_code == 302
    )
    p.project.refresh_from_db()
    assert (p.project.risk_tier, p.project.attributes_confirmed_by) == ("medium", p.tina)
    page = client_for(p.alice).get(p.project.get_absolute_url())
    assert b"confirmed by staff" in page.content and b"attributes-form" not in page.content


def test_an_expert_reviewing_a_project_of_the_course_gets_404_from_the_editor_and_roster(drafted):
    """Erin above has no assignment; here she reviews stage 1 of the team's project, and still
    sees none of the course's editor, roster or migration pages."""
    from reviews import services as review_services

    p = drafted
    review_services.assignment_create(
        project=p.project,
        actor=p.ian,
        reviewer=p.erin,
        role="expert",
        stage_definition=p.project.current_stage.definition,
        expertise_tags=["ethics"],
    )
    client = client_for(p.erin)
    roster = reverse("lifecycle:course_roster", args=[p.course.pk])
    for url in [*pages(p.course), roster]:
        assert client.get(url).status_code == 404, url
    before = AuditEvent.objects.count()
    for url, data in [*posts(p.course, p.project), (roster, {"action": "apply", "csv": "x"})]:
        assert client.post(url, {**data, "base_revision": rev(p.course)}).status_code == 404, url
    assert AuditEvent.objects.count() == before
