"""Schemathesis against the live schema (/api/v1/schema/, served by the app itself through
WSGI): every operation, with generated bodies and parameters, as each persona's token. No
answer may be a 500, and every answer must match the schema (status code documented, content
type, body shape, headers; authentication not ignored).

Path ids are pointed at real objects (a stage in review, its revision, a comment, a
notification), so the generated bodies reach the services instead of stopping at a 404."""

from __future__ import annotations

import os

import pytest
import schemathesis
from api_support import PERSONAS, ApiWorld, make_world
from django.core.wsgi import get_wsgi_application
from evidence_samples import png
from factories import fill_and_submit
from hypothesis import HealthCheck, settings
from schemathesis.checks import negative_data_rejection, positive_data_acceptance

from evidence.models import RevisionEvidence
from evidence.services import evidence_attach
from lifecycle.models import ProjectStage

schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", get_wsgi_application())
EXAMPLES = int(os.environ.get("LRB_SCHEMATHESIS_EXAMPLES", "5"))

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """The WSGI handler closes the database connection after each request; the test's
    transaction lives on it. Django's own test client disconnects the same signals."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture(scope="module")
def world(module_personas) -> ApiWorld:
    """The API's personas and tokens, built once for every operation and persona
    (tests/conftest.py, module_db): each case runs in a savepoint of the module's transaction
    and starts from these same rows."""
    return make_world(module_personas)


@pytest.fixture(scope="module")
def ids(world) -> dict[str, int]:
    from api_support import some_notification_of

    from reviews.services import comment_add

    p = world.p
    stage = ProjectStage.objects.select_related("project").get(pk=p.project.current_stage_id)
    draft_file = evidence_attach(
        stage=stage, actor=p.alice, question_key="problem-statement", name="m.png", data=png()
    )
    revision = fill_and_submit(stage, p.alice)
    comment = comment_add(revision=revision, author=p.erin, body="Which clinics?")
    return {
        "courses": p.course.pk,
        "projects": p.project.pk,
        "stages": stage.pk,
        "revisions": revision.pk,
        "comments": comment.pk,
        "notifications": some_notification_of(p.erin).pk,
        "evidence/drafts": draft_file.pk,
        "evidence/revisions": RevisionEvidence.objects.get(revision=revision).pk,
    }


@pytest.mark.parametrize("who", PERSONAS)
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_every_operation_as_every_persona(case, world, ids, who):
    parts = case.path.split("/")  # /api/v1/<resource>/{id}/... or /api/v1/evidence/<kind>/{id}/
    resource = parts[3] if parts[3] != "evidence" else f"evidence/{parts[4]}"
    if "id" in (case.path_parameters or {}):
        case.path_parameters["id"] = ids[resource]
    # Not asked: that every schema-valid request succeeds (most personas may not do most
    # things), nor that the API rejects every value the schema would not produce (query
    # parameters are lenient, as Django's pages are).
    case.call_and_validate(
        headers={"Authorization": f"Bearer {world.tokens[who]}"},
        excluded_checks=[negative_data_rejection, positive_data_acceptance],
    )
