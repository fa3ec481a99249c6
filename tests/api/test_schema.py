"""The OpenAPI schema: served at /api/v1/schema/, checked into the repository, and equal to what
the code generates (regenerate with `make api-schema` after changing the API)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from django.db import connection
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiYamlRenderer

CHECKED_IN = Path(__file__).resolve().parents[2] / "api" / "openapi.yaml"


def generated() -> str:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return OpenApiYamlRenderer().render(schema, renderer_context={}).decode()


@pytest.mark.skipif(
    connection.vendor == "postgresql",
    reason="The checked-in schema is generated on the embedded default (SQLite): integer field "
    "ranges in it come from the database backend.",
)
def test_the_checked_in_schema_matches_the_code():
    assert CHECKED_IN.exists(), "Run `make api-schema` to write api/openapi.yaml."
    assert CHECKED_IN.read_text() == generated(), (
        "The API changed but api/openapi.yaml did not: run `make api-schema` and commit it."
    )


def test_the_schema_is_openapi_3_with_bearer_auth_and_every_operation():
    schema = yaml.safe_load(CHECKED_IN.read_text())
    assert schema["openapi"].startswith("3.")
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    operations = [
        (path, method)
        for path, item in schema["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    ]
    assert len(operations) >= 20
    assert all(path.startswith("/api/v1/") for path, _ in operations)


@pytest.mark.django_db
def test_schema_and_docs_are_served_without_a_cdn():
    client = Client()
    schema = client.get("/api/v1/schema/")
    assert schema.status_code == 200
    docs = client.get("/api/v1/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "cdn" not in html.lower() and "unpkg" not in html.lower()
    assert "/static/drf_spectacular_sidecar/" in html
    # The strict CSP allows no inline script or style: the start-up script is a file too.
    assert "<style" not in html and "<script>" not in html and " style=" not in html
    assert client.get("/api/v1/docs/?script=").status_code == 200
