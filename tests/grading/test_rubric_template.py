"""Rubrics as template data: well formed or refused with the path of the mistake, carried by
import, export and new versions, edited on the template editor's stage page, and given to
the default template's graded stages from the lecture."""

from __future__ import annotations

import copy
import io
import json

import pytest
from django.test import Client
from django.urls import reverse

from grading.compute import criteria_of
from lifecycle import template_services as ts
from lifecycle.default_template import DEFAULT_TEMPLATE
from lifecycle.models import StageDefinition, TemplateDraft
from lifecycle.rubrics import rubric_errors
from lifecycle.template_data import default_document, diff_documents, validate_document

pytestmark = pytest.mark.django_db

GOOD = {
    "criteria": [
        {
            "key": "loss",
            "title": "The loss reflects our values",
            "allow_na": True,
            "levels": [{"points": 0, "label": "No"}, {"points": 2.5, "label": "Yes"}],
        }
    ]
}


def with_change(change) -> dict:
    rubric = copy.deepcopy(GOOD)
    change(rubric)
    return rubric


@pytest.mark.parametrize(
    ("rubric", "path", "says"),
    [
        (
            with_change(lambda r: r["criteria"].append(copy.deepcopy(r["criteria"][0]))),
            "criteria[1].key",
            "used twice",
        ),
        (
            with_change(lambda r: r["criteria"][0].update(levels=[])),
            "criteria[0].levels",
            "at least one level",
        ),
        (
            with_change(lambda r: r["criteria"][0]["levels"][0].update(points=-1)),
            "criteria[0].levels[0].points",
            "from 0",
        ),
        (
            with_change(lambda r: r["criteria"][0]["levels"][0].update(points="3")),
            "criteria[0].levels[0].points",
            "number",
        ),
        (
            with_change(lambda r: r["criteria"][0]["levels"][1].update(points=0)),
            "criteria[0].levels[1].points",
            "two levels",
        ),
        (
            with_change(lambda r: r["criteria"][0].update(allow_na="yes")),
            "criteria[0].allow_na",
            "true or false",
        ),
        (
            with_change(lambda r: r["criteria"][0].update(key="Not A Slug")),
            "criteria[0].key",
            "slug",
        ),
        (with_change(lambda r: r["criteria"][0].pop("title")), "criteria[0].title", "title"),
        (with_change(lambda r: r.update(weights=[])), "weights", "not a field"),
        ([1, 2], "", "an object"),
    ],
)
def test_a_malformed_rubric_is_refused_with_the_path_of_the_mistake(rubric, path, says):
    errors = dict(rubric_errors(rubric))

    assert says in errors[path]


def test_a_well_formed_or_empty_rubric_passes():
    assert rubric_errors(GOOD) == []
    assert rubric_errors({}) == []
    assert rubric_errors({"criteria": []}) == []


def test_a_template_documents_rubric_errors_name_the_stage():
    doc = default_document()
    doc["stages"][1]["rubric"] = with_change(lambda r: r["criteria"][0].update(levels=[]))

    errors = validate_document(doc)

    assert "stages[1].rubric.criteria[0].levels" in errors


def test_the_default_template_grades_its_first_six_stages_from_the_lecture():
    graded = {s["key"]: s["rubric"] for s in DEFAULT_TEMPLATE["stages"] if s["rubric"]}

    assert len(graded) == 6
    assert all(rubric_errors(r) == [] for r in graded.values())
    keys = {c["key"] for r in graded.values() for c in r["criteria"]}
    assert {"stakeholders", "should-be-done", "loss", "error-costs", "monitoring"} <= keys
    stored = StageDefinition.objects.filter(
        template__slug=DEFAULT_TEMPLATE["slug"], key="build-and-train"
    ).get()
    assert [c.key for c in criteria_of(stored.rubric)] == ["loss", "error-costs"]


# --- the editor -----------------------------------------------------------------------------


@pytest.fixture
def drafted(personas):
    ts.template_draft_start(course=personas.course, actor=personas.ian, source="current")
    return personas


def stage_post(rubric_text: str) -> dict:
    draft = TemplateDraft.objects.get()
    stage = draft.data["stages"][0]
    data = {k: v for k, v in stage.items() if not isinstance(v, (list, dict))}
    data = {k: v for k, v in data.items() if v is not False}
    return {**data, "loop_targets": "", "rubric": rubric_text, "base_revision": draft.revision}


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_editor_shows_a_rubric_mistake_next_to_the_rubric_field(drafted):
    p = drafted
    url = reverse("lifecycle:template_stage", args=[p.course.pk, 0])
    bad = with_change(lambda r: r["criteria"][0]["levels"][0].update(points=-2))
    before = TemplateDraft.objects.get().revision

    r = client_for(p.ian).post(url, stage_post(json.dumps(bad)))
    junk = client_for(p.ian).post(url, stage_post("{not json"))

    assert r.status_code == 400
    assert "criteria[0].levels[0].points" in r.context["form"].errors["rubric"][0]
    assert junk.status_code == 400 and "Not JSON" in junk.context["form"].errors["rubric"][0]
    assert TemplateDraft.objects.get().revision == before


def test_a_rubric_edited_in_the_editor_is_published_with_the_new_version(drafted):
    p = drafted
    client = client_for(p.ian)
    url = reverse("lifecycle:template_stage", args=[p.course.pk, 0])

    r = client.post(url, stage_post(json.dumps(GOOD)))
    assert r.status_code == 302
    page = client.get(url)
    assert "The loss reflects our values" in page.content.decode()
    r = client.post(
        reverse("lifecycle:template_publish", args=[p.course.pk]),
        {"base_revision": TemplateDraft.objects.get().revision},
    )

    assert r.status_code == 302
    p.course.refresh_from_db()
    first = p.course.template.stages.get(order=1)
    assert first.rubric["criteria"][0]["levels"][1] == {
        "points": 2.5,
        "label": "Yes",
        "description": "",
    }


def test_an_imported_template_carries_its_rubrics_and_a_bad_one_is_refused(drafted):
    p = drafted
    client = client_for(p.ian)
    doc = default_document()
    doc["stages"][6]["rubric"] = GOOD
    upload = io.BytesIO(json.dumps(doc).encode())
    upload.name = "t.json"

    r = client.post(
        reverse("lifecycle:template_import", args=[p.course.pk]),
        {"file": upload, "base_revision": TemplateDraft.objects.get().revision},
    )
    assert r.status_code == 302
    assert TemplateDraft.objects.get().data["stages"][6]["rubric"]["criteria"][0]["key"] == "loss"

    doc["stages"][6]["rubric"] = {"criteria": [{"key": "x", "title": "X", "levels": []}]}
    upload = io.BytesIO(json.dumps(doc).encode())
    upload.name = "bad.json"
    r = client.post(
        reverse("lifecycle:template_import", args=[p.course.pk]),
        {"file": upload, "base_revision": TemplateDraft.objects.get().revision},
    )
    assert r.status_code == 400
    assert any("stages[6].rubric.criteria[0].levels" in e for e in r.context["document_errors"])


def test_staff_add_and_remove_a_criterion_without_writing_json(drafted):
    p = drafted
    client = client_for(p.tina)
    add = reverse("lifecycle:template_criterion_add", args=[p.course.pk, 6])

    bad = client.post(
        add,
        {
            "key": "fairness",
            "title": "Fairness",
            "levels": "0 | Missing\nmany | Thorough",
            "base_revision": TemplateDraft.objects.get().revision,
        },
    )
    duplicate_first = client.post(
        reverse("lifecycle:template_criterion_add", args=[p.course.pk, 0]),
        {
            "key": "stakeholders",
            "title": "Again",
            "levels": "0\n1",
            "base_revision": TemplateDraft.objects.get().revision,
        },
    )
    good = client.post(
        add,
        {
            "key": "fairness",
            "title": "Fairness across subgroups",
            "allow_na": "on",
            "levels": "0 | Missing | Not looked at\n1.5 | Partial\n3 | Thorough",
            "base_revision": TemplateDraft.objects.get().revision,
        },
    )

    assert bad.status_code == 400
    assert "'many' is not a number" in bad.context["criterion_form"].errors["levels"][0]
    assert duplicate_first.status_code == 400
    assert "used twice" in duplicate_first.context["criterion_form"].errors["key"][0]
    assert good.status_code == 302
    [criterion] = TemplateDraft.objects.get().data["stages"][6]["rubric"]["criteria"]
    assert criterion["allow_na"] is True
    assert [level["points"] for level in criterion["levels"]] == [0, 1.5, 3]
    removed = client.post(
        reverse("lifecycle:template_criterion_remove", args=[p.course.pk, 6, 0]),
        {"base_revision": TemplateDraft.objects.get().revision},
    )
    assert removed.status_code == 302
    assert TemplateDraft.objects.get().data["stages"][6]["rubric"] == {}


def test_a_changed_rubric_shows_in_the_difference_between_versions():
    old = default_document()
    new = copy.deepcopy(old)
    new["stages"][3]["rubric"]["criteria"].pop()

    change = diff_documents(old, new)

    changed = {s.key: s for s in change.stages}
    assert changed["build-and-train"].rubric_changed and changed["build-and-train"].any
    assert not changed["compile-data"].rubric_changed
