"""How drf-spectacular describes the token authentication (imported by the app's ready())."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class TokenAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "api.authentication.TokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A personal access token (profile page → Access tokens).",
        }


PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string", "nullable": True},
        "errors": {"type": "object", "additionalProperties": True},
        "changed_questions": {"type": "array", "items": {"type": "string"}},
        "current_version": {"type": "integer"},
        "retry_after": {"type": "integer"},
    },
    "required": ["type", "title", "status", "detail"],
}
READ_ERRORS = {
    "400": "The request is not valid (a parameter, or the page asked for).",
    "401": "No token, or an unknown, expired or revoked one.",
    "403": "The token lacks the scope, or the person may not do this.",
    "404": "Nothing here that this person may see.",
    "429": "Too many requests: wait for Retry-After seconds.",
}
WRITE_ERRORS = {**READ_ERRORS, "409": "The object's state does not allow this now."}


def add_problem_responses(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Every operation answers its errors as problem details: document them once, here."""
    result.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    ref = {"$ref": "#/components/schemas/Problem"}
    for path, item in result.get("paths", {}).items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            errors = READ_ERRORS if method == "get" else WRITE_ERRORS
            responses = operation.setdefault("responses", {})
            for code, description in errors.items():
                entry = responses.setdefault(code, {"description": description})
                entry.setdefault("description", description)
                entry["content"] = {"application/problem+json": {"schema": ref}}
    return result
