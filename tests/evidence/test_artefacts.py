"""The model card (Hugging Face README with YAML, Model Card Toolkit JSON), the datasheet and
the impact assessment: golden files for the demo project, from approved revisions only, every
mapped section present ("Not answered." when nothing approved fills it).

Regenerate the golden files after an intended change with LRB_UPDATE_GOLDEN=1."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path

import jsonschema
import pytest
import time_machine
import yaml
from django.test import Client
from django.urls import reverse
from factories import complete_answers, current_stage

from evidence.artefacts import (
    ARTEFACT_FILES,
    NOT_ANSWERED,
    SECTION_TITLES,
    approved_content,
    model_card_markdown,
    model_card_toolkit,
)
from lifecycle import services
from lifecycle.default_template import DEFAULT_ARTEFACT_MAP, DEFAULT_TEMPLATE
from lifecycle.models import Project
from reviews.demo import seed_demo

pytestmark = pytest.mark.django_db

GOLDEN = Path(__file__).parent / "golden"
SCHEMA = json.loads((GOLDEN / "model_card_toolkit.schema.json").read_text())
HEX64 = re.compile(r"\b[0-9a-f]{64}\b")
SHORT = re.compile(r"\b(r\d+) [0-9a-f]{12}\b")  # "r1 46707ea3eb64" in the model card's version


def _normalised(text: str) -> str:
    # Revision hashes cover stakeholder and user ids, which differ between databases.
    return SHORT.sub(r"\1 <sha12>", HEX64.sub("<sha256>", text))


@pytest.fixture
def demo_project():
    with time_machine.travel(dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC), tick=False):
        seed_demo()
    return Project.objects.get(title="Crop disease detector")


@pytest.mark.parametrize("filename", list(ARTEFACT_FILES))
def test_the_demo_projects_artefacts_match_their_golden_files(demo_project, filename):
    _, render = ARTEFACT_FILES[filename]
    text = _normalised(render(approved_content(demo_project)))
    golden = GOLDEN / f"crop-disease-detector.{filename}"
    if os.environ.get("LRB_UPDATE_GOLDEN") == "1":
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


def test_the_model_card_yaml_parses_and_names_its_sources(demo_project):
    approved = approved_content(demo_project)
    text = model_card_markdown(approved)
    assert text.startswith("---\n")
    front = yaml.safe_load(text.split("---\n", 2)[1])
    assert front["license"] == "other" and "model-card" in front["tags"]
    sources = front["lifecycle_review_board"]["generated_from"]
    assert [s["stage"] for s in sources] == [s.stage for s in approved.sources]
    # Stages 1-6 approved; the Iterate stage looped back rather than pass its gate.
    assert len(sources) == 6 and all(len(s["sha256"]) == 64 for s in sources)


def test_the_model_card_toolkit_json_validates_against_the_schema(demo_project):
    document = model_card_toolkit(approved_content(demo_project))
    jsonschema.validate(document, SCHEMA)
    assert document["considerations"]["ethical_considerations"][0]["name"].startswith("Blight")


def test_drafts_and_revisions_in_review_never_leak_in(personas):
    p = personas
    stage = current_stage(p.project)
    stage.refresh_from_db()
    answers = {**complete_answers(stage), "problem-statement": "SECRET DRAFT TEXT"}
    services.stage_save_draft(
        stage=stage, actor=p.alice, answers=answers, base_version=stage.draft_version
    )
    services.stakeholder_add(project=p.project, actor=p.alice, name="Nurses", kind="operator")
    services.stage_submit(stage=stage, actor=p.alice)  # in review, not approved
    approved = approved_content(p.project)
    for filename, (_, render) in ARTEFACT_FILES.items():
        text = render(approved)
        assert "SECRET DRAFT TEXT" not in text, filename
        assert NOT_ANSWERED in text, filename


def test_the_lecture_default_maps_every_section_to_its_questions():
    keys = {f"{s['key']}/{q['key']}" for s in DEFAULT_TEMPLATE["stages"] for q in s["questions"]}
    for artefact, sections in SECTION_TITLES.items():
        mapped = DEFAULT_ARTEFACT_MAP[artefact]
        assert set(mapped) == set(sections), artefact
        for section, refs in mapped.items():
            assert refs, (artefact, section)
            assert set(refs) <= keys, (artefact, section, set(refs) - keys)


def test_a_template_maps_its_own_questions(personas):
    p = personas
    template = p.project.template
    template.artefact_map = {
        "datasheet": {"motivation": ["problem-and-stakeholders/success-metric"]}
    }
    approved = approved_content(p.project)
    sections = {s.key: s for s in approved.sections("datasheet")}
    assert sections["motivation"].entries == []  # nothing approved yet
    assert sections["composition"].as_text() == NOT_ANSWERED  # unmapped, still present


@pytest.mark.parametrize(
    ("who", "status"),
    [("alice", 200), ("tina", 200), ("ian", 200), ("carol", 404), ("erin", 404), ("oscar", 404)],
)
def test_the_artefacts_page_and_downloads_are_for_the_project_only(personas, who, status):
    client = Client()
    client.force_login(getattr(personas, who))
    project = personas.project
    assert client.get(reverse("evidence:artefacts", args=[project.pk])).status_code == status
    for filename in ARTEFACT_FILES:
        response = client.get(reverse("evidence:artefact_download", args=[project.pk, filename]))
        assert response.status_code == status
        if status == 200:
            assert response["Content-Disposition"].startswith("attachment")
    missing = reverse("evidence:artefact_download", args=[project.pk, "secrets.txt"])
    assert client.get(missing).status_code == 404
