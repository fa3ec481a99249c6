"""The API's personas: the shared ones (tests/conftest.py) with Erin assigned as the project's
domain expert, and a token of each with every scope (tests/api_support.py)."""

from __future__ import annotations

import pytest
from api_support import ApiWorld, make_world


@pytest.fixture
def world(personas) -> ApiWorld:
    return make_world(personas)
