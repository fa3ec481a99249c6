"""A learning platform (LMS) simulated inside the tests, speaking LTI 1.3 Advantage for real.

It has its own RSA key pair (``cryptography``) and serves, from a ``http.server`` thread on a
port of 127.0.0.1 (8300-8319 unless LTI_SIM_PORTS says otherwise):

* ``GET /jwks`` — the platform's JWKS, which the tool fetches over HTTP to verify launches;
* ``POST /token`` — OAuth 2 client credentials: the tool's client assertion (a JWT it signs) is
  verified against the tool's JWKS (as served by the tool's /lti/jwks/, handed to
  ``trust_tool_jwks``), its iss/sub/aud/exp checked and its jti refused a second time; the
  access token it answers carries the granted scopes;
* ``GET /nrps/<context>`` — the Names and Role Provisioning membership container, paged with
  ``Link: <…>; rel="next"``;
* ``GET|POST /ags/<context>/lineitems`` and ``POST /ags/<context>/lineitems/<n>/scores`` —
  Assignment and Grade Services; everything received is recorded, and ``fail_next`` makes the
  next calls of a kind answer an error status (500, 422…).

Launches are built by ``id_token`` (RS256, the platform's kid), from the state and nonce of the
tool's login redirect (``authorize``): nothing in the tool's validation is mocked. The server
touches no database, so any test (or another test module) can use it.
"""

from __future__ import annotations

import html
import json
import os
import secrets
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwcrypto.jwk import JWK

CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
MEMBERSHIP = "http://purl.imsglobal.org/vocab/lis/v2/membership"
LEARNER = f"{MEMBERSHIP}#Learner"
INSTRUCTOR = f"{MEMBERSHIP}#Instructor"
TEACHING_ASSISTANT = f"{MEMBERSHIP}/Instructor#TeachingAssistant"
MENTOR = f"{MEMBERSHIP}#Mentor"
NRPS_SCOPE = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
AGS_SCOPES = [
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
    "https://purl.imsglobal.org/spec/lti-ags/scope/score",
]
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _port_range() -> range:
    low, _, high = os.environ.get("LTI_SIM_PORTS", "8300-8319").partition("-")
    return range(int(low), int(high or low) + 1)


class RsaKey:
    def __init__(self) -> None:
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_pem = self.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        public_pem = self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        jwk = JWK.from_pem(public_pem)
        self.kid = jwk.thumbprint()
        self.public_jwk = {**json.loads(jwk.export_public()), "kid": self.kid, "alg": "RS256"}


@dataclass
class Received:
    """One request the platform answered, as the tests inspect it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Platform:
    """The simulator's state: members, line items, recorded calls, injected failures."""

    issuer: str = ""
    client_id: str = "board-tool"
    deployment_id: str = "deployment-1"
    key: RsaKey = field(default_factory=RsaKey)
    tool_jwks: dict[str, Any] = field(default_factory=lambda: {"keys": []})
    members: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    page_size: int = 2
    line_items: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    scores: list[Received] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    tokens: dict[str, list[str]] = field(default_factory=dict)
    token_refusals: list[str] = field(default_factory=list)
    used_jti: set[str] = field(default_factory=set)
    failures: dict[str, list[tuple[int, str]]] = field(default_factory=lambda: defaultdict(list))
    lock: threading.Lock = field(default_factory=threading.Lock)


class Simulator:
    def __init__(self, *, url_host: str = "127.0.0.1") -> None:
        """``url_host`` names the platform in its URLs: a browser test uses "localhost", the
        live server's host, so that the tool's state cookie is same-site with the platform."""
        self.state = Platform()
        self.browser_launches: dict[str, dict[str, Any]] = {}
        self.server = self._bind()
        port = self.server.server_address[1]
        self.base_url = f"http://{url_host}:{port}"
        self.state.issuer = f"{self.base_url}/platform"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _bind(self) -> ThreadingHTTPServer:
        handler = _handler_for(self)
        for port in _port_range():
            try:
                server = ThreadingHTTPServer(("127.0.0.1", port), handler)
            except OSError:
                continue
            server.daemon_threads = True
            return server
        raise RuntimeError(f"No free port for the LTI platform simulator in {_port_range()}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        """A fresh platform (same key, same address) for the next test."""
        key, issuer = self.state.key, self.state.issuer
        self.state = Platform(issuer=issuer, key=key)

    # --- addresses the tool is registered with -----------------------------------------------

    @property
    def auth_login_url(self) -> str:
        return f"{self.base_url}/auth"

    @property
    def auth_token_url(self) -> str:
        return f"{self.base_url}/token"

    @property
    def key_set_url(self) -> str:
        return f"{self.base_url}/jwks"

    def nrps_url(self, context_id: str) -> str:
        return f"{self.base_url}/nrps/{context_id}"

    def lineitems_url(self, context_id: str) -> str:
        return f"{self.base_url}/ags/{context_id}/lineitems"

    def deep_link_return_url(self) -> str:
        return f"{self.base_url}/deep-link-return"

    # --- configuration by the tests ------------------------------------------------------------

    def trust_tool_jwks(self, jwks: dict[str, Any]) -> None:
        self.state.tool_jwks = jwks

    def set_members(self, context_id: str, members: list[dict[str, Any]]) -> None:
        self.state.members[context_id] = members

    def fail_next(self, kind: str, status: int, times: int = 1, body: str = "") -> None:
        """The next ``times`` requests of ``kind`` ("token", "nrps", "lineitems", "scores")
        answer ``status``."""
        for _ in range(times):
            self.state.failures[kind].append((status, body or f"simulated {status}"))

    def prepare_browser_launch(self, login_hint: str, **claim_args: Any) -> None:
        """What ``GET /auth`` answers a browser for this login hint: a page that posts the
        signed launch to the tool, as a platform's authorisation endpoint does."""
        self.browser_launches[login_hint] = claim_args

    # --- the OIDC flow -------------------------------------------------------------------------

    def authorize(self, location: str) -> dict[str, str]:
        """Read the tool's redirect to our authorisation endpoint (what a browser would
        follow), checking what OIDC requires of it."""
        parts = urlsplit(location)
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == self.auth_login_url, location
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        assert query["scope"] == "openid"
        assert query["response_type"] == "id_token"
        assert query["response_mode"] == "form_post"
        assert query["prompt"] == "none"
        assert query["client_id"] == self.state.client_id
        assert query["state"] and query["nonce"] and query["redirect_uri"]
        return query

    def login_params(self, login_hint: str = "hint-1", **extra: str) -> dict[str, str]:
        return {
            "iss": self.state.issuer,
            "login_hint": login_hint,
            "target_link_uri": "http://testserver/lti/launch/",
            "client_id": self.state.client_id,
            "lti_deployment_id": self.state.deployment_id,
            **extra,
        }

    def launch_claims(
        self,
        *,
        sub: str,
        roles: list[str],
        nonce: str,
        context_id: str | None = "ctx-1",
        email: str | None = None,
        name: str = "",
        message_type: str = "LtiResourceLinkRequest",
        services: bool = True,
    ) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.state.issuer,
            "aud": self.state.client_id,
            "sub": sub,
            "iat": now,
            "exp": now + 300,
            "nonce": nonce,
            CLAIM + "message_type": message_type,
            CLAIM + "version": "1.3.0",
            CLAIM + "deployment_id": self.state.deployment_id,
            CLAIM + "target_link_uri": "http://testserver/lti/launch/",
            CLAIM + "roles": roles,
        }
        if message_type == "LtiResourceLinkRequest":
            claims[CLAIM + "resource_link"] = {"id": "resource-1", "title": "Lifecycle board"}
        else:
            claims["https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"] = {
                "deep_link_return_url": self.deep_link_return_url(),
                "accept_types": ["ltiResourceLink"],
                "accept_presentation_document_targets": ["iframe", "window"],
                "data": "platform-opaque-data",
            }
        if email is not None:
            claims["email"] = email
        if name:
            claims["name"] = name
        if context_id is not None:
            claims[CLAIM + "context"] = {
                "id": context_id,
                "label": "CS1470",
                "title": "Deep Learning",
                "type": ["http://purl.imsglobal.org/vocab/lis/v2/course#CourseOffering"],
            }
            if services:
                claims["https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"] = {
                    "context_memberships_url": self.nrps_url(context_id),
                    "service_versions": ["2.0"],
                }
                claims["https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"] = {
                    "scope": AGS_SCOPES,
                    "lineitems": self.lineitems_url(context_id),
                }
        return claims

    def id_token(
        self, claims: dict[str, Any], *, key: RsaKey | None = None, kid: str | None = None
    ) -> str:
        """The launch JWT, signed RS256 by the platform's key (or, for a forged one, another)."""
        signer = key or self.state.key
        return jwt.encode(
            claims,
            signer.private_pem,
            algorithm="RS256",
            headers={"kid": kid or self.state.key.kid},
        )

    def verify_deep_link_response(self, token: str) -> dict[str, Any]:
        """Verify the tool's deep-linking response with the tool's JWKS, as a platform does."""
        header = jwt.get_unverified_header(token)
        key = self._tool_key(header.get("kid"))
        return jwt.decode(
            token,
            key,
            algorithms=["RS256"],
            audience=self.state.issuer,
            issuer=self.state.client_id,
            options={"require": ["exp", "iat", "nonce"]},
        )

    def _tool_key(self, kid: str | None) -> Any:
        for jwk in self.state.tool_jwks.get("keys", []):
            if jwk.get("kid") == kid:
                return jwt.PyJWK(jwk).key
        raise jwt.InvalidKeyError(f"The tool's JWKS has no key {kid!r}")

    # --- what the HTTP handler does ------------------------------------------------------------

    def _failure(self, kind: str) -> tuple[int, str] | None:
        with self.state.lock:
            queue = self.state.failures.get(kind)
            return queue.pop(0) if queue else None

    def handle_token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        failure = self._failure("token")
        if failure:
            return failure[0], {"error": failure[1]}
        try:
            assert form.get("grant_type") == "client_credentials", "grant_type"
            assert form.get("client_assertion_type") == CLIENT_ASSERTION_TYPE, "assertion type"
            assertion = form["client_assertion"]
            key = self._tool_key(jwt.get_unverified_header(assertion).get("kid"))
            claims = jwt.decode(
                assertion,
                key,
                algorithms=["RS256"],
                audience=self.auth_token_url,
                options={"require": ["exp", "iat", "jti", "iss", "sub"]},
            )
            assert claims["iss"] == claims["sub"] == self.state.client_id, "iss/sub"
            with self.state.lock:
                assert claims["jti"] not in self.state.used_jti, "replayed jti"
                self.state.used_jti.add(claims["jti"])
        except (AssertionError, KeyError, jwt.PyJWTError) as error:
            self.state.token_refusals.append(str(error))
            return 401, {"error": "invalid_client", "error_description": str(error)}
        token = secrets.token_urlsafe(24)
        scopes = form.get("scope", "").split()
        with self.state.lock:
            self.state.tokens[token] = scopes
        return 200, {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": " ".join(scopes),
        }

    def scopes_of(self, headers: dict[str, str]) -> list[str]:
        auth = headers.get("authorization", "")
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else ""
        return self.state.tokens.get(token, [])


def _handler_for(sim: Simulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _headers(self) -> dict[str, str]:
            return {k.lower(): v for k, v in self.headers.items()}

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _send(
            self,
            status: int,
            payload: Any,
            content_type: str = "application/json",
            headers: dict[str, str] | None = None,
        ) -> None:
            raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(raw)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(raw)

        def _record(self, body: Any) -> Received:
            received = Received(self.command, self.path, self._headers(), body)
            sim.state.requests.append(received)
            return received

        def _authorised(self, scope: str) -> bool:
            if scope in sim.scopes_of(self._headers()):
                return True
            self._send(401, {"error": "invalid_token"})
            return False

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            segments = parts.path.strip("/").split("/")
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            self._record(None)
            if parts.path == "/jwks":
                return self._send(200, {"keys": [sim.state.key.public_jwk]})
            if parts.path == "/auth":
                return self._authorisation(query)
            if segments[0] == "nrps" and len(segments) == 2:
                failure = sim._failure("nrps")
                if failure:
                    return self._send(failure[0], {"error": failure[1]})
                if not self._authorised(NRPS_SCOPE):
                    return None
                return self._members(segments[1], int(query.get("page", "1")))
            if segments[0] == "ags" and segments[2:] == ["lineitems"]:
                failure = sim._failure("lineitems")
                if failure:
                    return self._send(failure[0], {"error": failure[1]})
                if not self._authorised(AGS_SCOPES[0]):
                    return None
                items = sim.state.line_items[segments[1]]
                if "resource_id" in query:
                    items = [i for i in items if i.get("resourceId") == query["resource_id"]]
                return self._send(200, items, "application/vnd.ims.lis.v2.lineitemcontainer+json")
            return self._send(404, {"error": "not found"})

        def _authorisation(self, query: dict[str, str]) -> None:
            claim_args = sim.browser_launches.get(query.get("login_hint", ""))
            if claim_args is None or query.get("client_id") != sim.state.client_id:
                return self._send(400, {"error": "unknown login_hint or client"})
            token = sim.id_token(sim.launch_claims(nonce=query["nonce"], **claim_args))
            page = (
                "<!doctype html><html lang='en'><head><title>Simulated LMS</title></head><body>"
                f"<form id='launch' method='post' action='{html.escape(query['redirect_uri'])}'>"
                f"<input type='hidden' name='id_token' value='{html.escape(token)}'>"
                f"<input type='hidden' name='state' value='{html.escape(query['state'])}'>"
                "<button type='submit'>Continue</button></form>"
                "<script>document.getElementById('launch').submit();</script></body></html>"
            )
            return self._send(200, page.encode(), "text/html; charset=utf-8")

        def _members(self, context_id: str, page: int) -> None:
            members = sim.state.members.get(context_id, [])
            size = sim.state.page_size
            chunk = members[(page - 1) * size : page * size]
            headers = {}
            if page * size < len(members):
                next_url = f"{sim.nrps_url(context_id)}?{urlencode({'page': page + 1})}"
                headers["Link"] = f'<{next_url}>; rel="next"'
            body = {
                "id": sim.nrps_url(context_id),
                "context": {"id": context_id, "label": "CS1470", "title": "Deep Learning"},
                "members": chunk,
            }
            self._send(
                200, body, "application/vnd.ims.lti-nrps.v2.membershipcontainer+json", headers
            )

        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            segments = parts.path.strip("/").split("/")
            raw = self._body()
            if parts.path == "/token":
                form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                self._record(form)
                status, payload = sim.handle_token(form)
                return self._send(status, payload)
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                body = raw.decode(errors="replace")
            received = self._record(body)
            if segments[0] == "ags" and segments[2:] == ["lineitems"]:
                failure = sim._failure("lineitems")
                if failure:
                    return self._send(failure[0], {"error": failure[1]})
                if not self._authorised(AGS_SCOPES[0]):
                    return None
                items = sim.state.line_items[segments[1]]
                item = {
                    **body,
                    "id": f"{sim.lineitems_url(segments[1])}/{len(items) + 1}",
                }
                items.append(item)
                return self._send(201, item, "application/vnd.ims.lis.v2.lineitem+json")
            if segments[0] == "ags" and segments[2] == "lineitems" and segments[4:] == ["scores"]:
                failure = sim._failure("scores")
                if failure:
                    return self._send(failure[0], {"error": failure[1]})
                if not self._authorised(AGS_SCOPES[1]):
                    return None
                item_url = f"{sim.lineitems_url(segments[1])}/{segments[3]}"
                if not any(i["id"] == item_url for i in sim.state.line_items[segments[1]]):
                    return self._send(404, {"error": "no such line item"})
                sim.state.scores.append(received)
                return self._send(200, b"", "application/json")
            return self._send(404, {"error": "not found"})

    return Handler


def member(
    sub: str, role: str, *, email: str | None = None, name: str = "", status: str = "Active"
) -> dict[str, Any]:
    data: dict[str, Any] = {"user_id": sub, "roles": [role], "status": status}
    if email:
        data["email"] = email
    if name:
        data["name"] = name
    return data


def new_uuid() -> str:
    return uuid.uuid4().hex
