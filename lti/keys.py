"""The tool's RSA key pair: generated here (or by ``manage.py lti_generate_key``), the private
half kept in the database, the public half served as the tool's JWKS. A key given in the
environment (``LTI_TOOL_PRIVATE_KEY``, a PEM) takes precedence: production keeps its key in its
secrets store rather than the database."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.db import transaction
from jwcrypto.jwk import JWK

from .models import LtiToolKey


@dataclass(frozen=True)
class ToolKey:
    kid: str
    private_pem: str
    public_pem: str


def _public_pem(private_pem: str) -> str:
    private = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def key_id(public_pem: str) -> str:
    """The RFC 7638 thumbprint: the same key always has the same id."""
    return JWK.from_pem(public_pem.encode()).thumbprint()


def public_jwk(public_pem: str, kid: str) -> dict[str, Any]:
    jwk = json.loads(JWK.from_pem(public_pem.encode()).export_public())
    jwk.update({"kid": kid, "alg": "RS256", "use": "sig"})
    return jwk


def new_private_pem(bits: int = 2048) -> str:
    private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@transaction.atomic
def tool_key_generate() -> LtiToolKey:
    """A new signing key; older keys stay published (active) until a site admin retires them."""
    private_pem = new_private_pem()
    public_pem = _public_pem(private_pem)
    return LtiToolKey.objects.create(
        kid=key_id(public_pem), private_key_pem=private_pem, public_key_pem=public_pem
    )


def _environment_key() -> ToolKey | None:
    pem = getattr(settings, "LTI_TOOL_PRIVATE_KEY", "")
    if not pem:
        return None
    public_pem = _public_pem(pem)
    return ToolKey(kid=key_id(public_pem), private_pem=pem, public_pem=public_pem)


def signing_key() -> ToolKey:
    """The key the tool signs with: the environment's, else the newest active one in the
    database, generated on first use (the embedded setup needs no step for it)."""
    key = _environment_key()
    if key is not None:
        return key
    stored = LtiToolKey.objects.filter(is_active=True).first()
    if stored is None:
        stored = tool_key_generate()
    return ToolKey(stored.kid, stored.private_key_pem, stored.public_key_pem)


def tool_jwks() -> dict[str, Any]:
    signing = signing_key()
    keys = [public_jwk(signing.public_pem, signing.kid)]
    for stored in LtiToolKey.objects.filter(is_active=True).exclude(kid=signing.kid)[:10]:
        keys.append(public_jwk(stored.public_key_pem, stored.kid))
    return {"keys": keys}
