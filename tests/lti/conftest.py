"""The platform simulator (platform_sim.py) for every LTI test, and a launcher that walks the
OIDC flow: login initiation → the platform's authorisation (state, nonce) → signed launch."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from platform_sim import Simulator

from lti.models import LtiPlatform


@pytest.fixture(scope="session")
def simulator() -> Iterator[Simulator]:
    sim = Simulator()
    yield sim
    sim.close()


@pytest.fixture
def sim(simulator: Simulator) -> Simulator:
    simulator.reset()
    return simulator


@pytest.fixture
def platform(db, sim: Simulator) -> LtiPlatform:
    return LtiPlatform.objects.create(
        name="Simulated LMS",
        issuer=sim.state.issuer,
        client_id=sim.state.client_id,
        auth_login_url=sim.auth_login_url,
        auth_token_url=sim.auth_token_url,
        key_set_url=sim.key_set_url,
        deployment_ids=[sim.state.deployment_id],
    )


@dataclass
class Launch:
    response: Any
    claims: dict[str, Any]
    state: str
    id_token: str


class Launcher:
    def __init__(self, client: Client, sim: Simulator) -> None:
        self.client = client
        self.sim = sim

    def login(self, **params: str) -> dict[str, str]:
        response = self.client.get("/lti/login/", self.sim.login_params(**params))
        assert response.status_code == 302, response.content[:500]
        return self.sim.authorize(response["Location"])

    def launch(self, *, sign: Any = None, tamper: Any = None, **claim_args: Any) -> Launch:
        auth = self.login()
        claims = self.sim.launch_claims(nonce=auth["nonce"], **claim_args)
        if tamper:
            tamper(claims)
        token = sign(claims) if sign else self.sim.id_token(claims)
        response = self.post(token, auth["state"])
        return Launch(response, claims, auth["state"], token)

    def post(self, id_token: str, state: str) -> Any:
        return self.client.post("/lti/launch/", {"id_token": id_token, "state": state})


@pytest.fixture
def launcher(client: Client, sim: Simulator, platform: LtiPlatform) -> Launcher:
    # The platform verifies the tool's service tokens with the JWKS the tool serves.
    sim.trust_tool_jwks(client.get("/lti/jwks/").json())
    return Launcher(client, sim)
