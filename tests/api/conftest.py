"""The API's personas: the shared ones (tests/conftest.py) with Erin assigned as the project's
domain expert, and a token of each with every scope (tests/api_support.py)."""

from __future__ import annotations

import pytest
from api_support import ALL_SCOPES, PERSONAS, ApiWorld
from factories import declare_no_conflict

from api import services as api_services
from reviews.models import ReviewerRole
from reviews.services import assignment_create


@pytest.fixture
def world(personas) -> ApiWorld:
    assignment_create(
        project=personas.project,
        actor=personas.ian,
        reviewer=personas.erin,
        role=ReviewerRole.EXPERT,
    )
    declare_no_conflict(personas.project, personas.erin)
    tokens = {}
    for who in PERSONAS:
        _, secret = api_services.token_create(
            user=getattr(personas, who), name=f"{who}'s notebook", scopes=ALL_SCOPES
        )
        tokens[who] = secret
    return ApiWorld(personas, tokens)
