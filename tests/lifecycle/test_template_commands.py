"""``manage.py export_template`` / ``import_template`` and the documented JSON schema file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from lifecycle.models import AuditEvent, LifecycleTemplate
from lifecycle.template_data import (
    FORMAT,
    QUESTION_FIELDS,
    SCHEMA_PATH,
    SCHEMA_VERSION,
    STAGE_FIELDS,
    default_document,
)

pytestmark = pytest.mark.django_db


def test_the_schema_file_documents_every_field_the_site_reads():
    schema = json.loads((Path(settings.BASE_DIR) / SCHEMA_PATH).read_text())
    assert schema["properties"]["format"]["const"] == FORMAT
    assert schema["properties"]["schema_version"]["const"] == SCHEMA_VERSION
    assert set(schema["$defs"]["stage"]["properties"]) == set(STAGE_FIELDS)
    assert set(schema["$defs"]["question"]["properties"]) == set(QUESTION_FIELDS)
    kinds = schema["$defs"]["question"]["properties"]["kind"]["enum"]
    assert kinds == [
        "short_text",
        "long_text",
        "yes_no_unsure",
        "single_choice",
        "multiple_choice",
        "number",
        "url",
        "date",
    ]


def test_export_then_import_makes_an_identical_version(personas, tmp_path):
    out = tmp_path / "t.json"
    call_command("export_template", course=personas.course.code, output=str(out))
    data = json.loads(out.read_text())
    assert data == default_document()
    call_command("import_template", str(out), course=personas.course.code)
    personas.course.refresh_from_db()
    imported = personas.course.template
    assert imported.course == personas.course and imported.version == 1
    call_command("export_template", slug=imported.slug, output=str(out))
    assert json.loads(out.read_text()) == data
    assert AuditEvent.objects.filter(verb="template.import").count() == 1


def test_a_malformed_import_names_every_bad_field_and_writes_nothing(personas, tmp_path):
    bad = default_document()
    bad["stages"][0]["questions"][1]["key"] = bad["stages"][0]["questions"][0]["key"]
    bad["stages"][3]["min_approvals"] = 0
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    before = LifecycleTemplate.objects.count()
    with pytest.raises(CommandError) as refused:
        call_command("import_template", str(path), slug="mine")
    assert "stages[0].questions[1].key" in str(refused.value)
    assert "stages[3].min_approvals" in str(refused.value)
    assert LifecycleTemplate.objects.count() == before
    path.write_text("{nope")
    with pytest.raises(CommandError, match="not a readable JSON file"):
        call_command("import_template", str(path), slug="mine")
