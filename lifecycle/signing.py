"""The server's audit signing key (Ed25519): it signs export heads and daily checkpoints, so that
an auditor holding only the public half can tell a file the server wrote from an edited one.

Where the private key comes from, in order:

1. ``settings.AUDIT_SIGNING_KEY`` (environment variable of the same name): a PEM private key,
   or the 32-byte seed as 64 hex digits. Production sets it (every web and worker process must
   sign with the same key); ``manage.py audit_public_key --generate`` prints a fresh seed.
2. Otherwise the PEM file ``settings.AUDIT_SIGNING_KEY_FILE`` (``var/audit-signing-key.pem`` on
   the embedded default), created with mode 0600 on first use.

The public half is published at ``/audit/public-key/`` and printed by
``manage.py audit_public_key``. Its key id is the first 16 hex digits of the SHA-256 of the
32 raw public-key bytes; heads and checkpoints name the key id they were signed with.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

SIGNATURE_FIELD = "signature"


class PublicKeyError(ValueError):
    """A public key that cannot be read."""


def _private_from_text(text: str) -> Ed25519PrivateKey:
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_private_key(text.encode(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ImproperlyConfigured("AUDIT_SIGNING_KEY is not an Ed25519 private key.")
        return key
    try:
        seed = bytes.fromhex(text)
    except ValueError as error:
        raise ImproperlyConfigured("AUDIT_SIGNING_KEY is neither PEM nor 64 hex digits.") from error
    if len(seed) != 32:
        raise ImproperlyConfigured("AUDIT_SIGNING_KEY must be a 32-byte seed (64 hex digits).")
    return Ed25519PrivateKey.from_private_bytes(seed)


def _private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _key_from_file(path: Path) -> Ed25519PrivateKey:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # O_EXCL: two processes starting at once cannot both write a key; the loser reads.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as out:
                out.write(_private_pem(Ed25519PrivateKey.generate()))
    return _private_from_text(path.read_text())


@functools.cache
def _cached_private_key(configured: str, path: str) -> Ed25519PrivateKey:
    if configured:
        return _private_from_text(configured)
    return _key_from_file(Path(path))


def private_key() -> Ed25519PrivateKey:
    return _cached_private_key(
        getattr(settings, "AUDIT_SIGNING_KEY", ""),
        str(getattr(settings, "AUDIT_SIGNING_KEY_FILE", "")),
    )


def public_key() -> Ed25519PublicKey:
    return private_key().public_key()


def public_raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey | None = None) -> str:
    return hashlib.sha256(public_raw(key or public_key())).hexdigest()[:16]


def public_key_pem(key: Ed25519PublicKey | None = None) -> str:
    return (
        (key or public_key())
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def public_key_text(key: Ed25519PublicKey | None = None) -> str:
    """What the site publishes: the key id, the raw key in hex, and the PEM."""
    key = key or public_key()
    return (
        f"# Lifecycle Review Board audit signing key (Ed25519)\n"
        f"# key id: {key_id(key)}\n"
        f"# raw public key (hex): {public_raw(key).hex()}\n"
        f"{public_key_pem(key)}"
    )


def load_public_key(text: str) -> Ed25519PublicKey:
    """A public key from the published text (its PEM block), a bare PEM, or 64 hex digits."""
    if "-----BEGIN PUBLIC KEY-----" in text:
        pem = text[text.index("-----BEGIN PUBLIC KEY-----") :]
        try:
            key = serialization.load_pem_public_key(pem.encode())
        except ValueError as error:
            raise PublicKeyError(f"not a public key: {error}") from error
        if not isinstance(key, Ed25519PublicKey):
            raise PublicKeyError("not an Ed25519 public key")
        return key
    try:
        raw = bytes.fromhex(text.strip())
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as error:
        raise PublicKeyError("neither a PEM public key nor 64 hex digits") from error


def _message(record: Mapping[str, Any]) -> bytes:
    from .audit import canonical_json

    unsigned = {k: v for k, v in record.items() if k != SIGNATURE_FIELD}
    return canonical_json(unsigned).encode("utf-8")


def signed(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record with ``key_id`` and ``signature`` (base64 Ed25519 over its canonical JSON,
    every field but the signature itself)."""
    with_key = {**record, "key_id": key_id()}
    signature = private_key().sign(_message(with_key))
    return {**with_key, SIGNATURE_FIELD: base64.b64encode(signature).decode("ascii")}


def signature_problem(record: Mapping[str, Any], key: Ed25519PublicKey | None = None) -> str:
    """Empty if the record carries a valid signature by ``key`` (default: this server's key);
    otherwise what is wrong, in words."""
    key = key or public_key()
    signature = record.get(SIGNATURE_FIELD)
    if not isinstance(signature, str) or not signature:
        return "it is not signed"
    if record.get("key_id") != key_id(key):
        return f"it names signing key {record.get('key_id')!r}, not {key_id(key)!r}"
    try:
        key.verify(base64.b64decode(signature, validate=True), _message(record))
    except (InvalidSignature, binascii.Error, ValueError):
        return "its signature does not match its content"
    return ""
