"""Helpers of the API tests (tests/api): a JSON client with a Bearer token, and the world of
personas with a token each (the fixture is in tests/api/conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.test import Client

from api import services as api_services
from api.models import Scope

ALL_SCOPES = list(Scope.values)


@dataclass
class ApiWorld:
    p: Any  # the shared personas
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self, who: str | None, scopes: list[str] | None = None) -> ApiClient:
        if who is None:
            return ApiClient(None)
        if scopes is None:
            return ApiClient(self.tokens[who])
        user = getattr(self.p, who)
        _, secret = api_services.token_create(user=user, name=f"{who} {scopes}", scopes=scopes)
        return ApiClient(secret)


class ApiClient:
    """Django's test client, speaking JSON with a Bearer token."""

    def __init__(self, secret: str | None) -> None:
        self.secret = secret
        self.client = Client(enforce_csrf_checks=True)

    def _headers(self) -> dict[str, str]:
        return {"HTTP_AUTHORIZATION": f"Bearer {self.secret}"} if self.secret else {}

    def get(self, url: str, **extra: Any) -> Any:
        return self.client.get(url, **self._headers(), **extra)

    def post(self, url: str, data: Any = None, **extra: Any) -> Any:
        if isinstance(data, dict) and any(hasattr(v, "read") for v in data.values()):
            for value in data.values():
                if hasattr(value, "seek"):
                    value.seek(0)
            return self.client.post(url, data, **self._headers(), **extra)  # multipart
        return self.client.post(
            url, data or {}, content_type="application/json", **self._headers(), **extra
        )

    def put(self, url: str, data: Any = None, **extra: Any) -> Any:
        return self.client.put(
            url, data or {}, content_type="application/json", **self._headers(), **extra
        )


def notification_model() -> Any:
    from django.apps import apps

    try:
        return apps.get_model("notifications", "Notification")
    except LookupError:
        return apps.get_model("reviews", "Notification")


def some_notification_of(user: Any) -> Any:
    return notification_model().objects.filter(recipient=user).order_by("pk").first()


PERSONAS = ("alice", "bob", "carol", "tina", "ian", "erin", "oscar")


def make_world(personas: Any) -> ApiWorld:
    """The shared personas with Erin assigned as the project's domain expert, and a token of
    each with every scope."""
    from factories import declare_no_conflict

    from reviews.models import ReviewerRole
    from reviews.services import assignment_create

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
