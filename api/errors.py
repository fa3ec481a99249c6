"""Errors as RFC 9457 problem details (application/problem+json), for DRF's own exceptions and
for the services' domain errors alike. Nothing here ever answers 500 for bad input."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_handler

from lifecycle.errors import DomainError, DraftConflict, InvalidAnswers, NotAllowed

PROBLEM_TYPES = "/api/v1/problems/"
TITLES = {
    400: "Bad request",
    401: "Not signed in",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    413: "Too large",
    415: "Unsupported media type",
    429: "Too many requests",
}


def problem(
    status_code: int, detail: str, *, kind: str = "", headers: Any = None, **extra: Any
) -> Response:
    body = {
        "type": PROBLEM_TYPES + (kind or str(status_code)),
        "title": TITLES.get(status_code, "Error"),
        "status": status_code,
        "detail": detail,
        **extra,
    }
    response = Response(body, status=status_code, headers=headers)
    response.content_type = "application/problem+json"
    return response


def _flatten(detail: Any) -> str:
    if isinstance(detail, dict):
        return "; ".join(f"{k}: {_flatten(v)}" for k, v in detail.items())
    if isinstance(detail, list):
        return " ".join(_flatten(v) for v in detail)
    return str(detail)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    request = context.get("request")
    instance = request.get_full_path() if request is not None else None
    if isinstance(exc, DraftConflict):
        return problem(
            409,
            exc.message,
            kind="draft-conflict",
            instance=instance,
            changed_questions=exc.changed_questions,
            current_version=exc.current_version,
        )
    if isinstance(exc, InvalidAnswers):
        return problem(400, exc.message, kind="invalid", instance=instance, errors=exc.errors)
    if isinstance(exc, NotAllowed):
        # The object was visible (fetched for the user), the action is not theirs.
        return problem(403, exc.message, kind="not-allowed", instance=instance)
    if isinstance(exc, DomainError):
        return problem(exc.status_code, exc.message, kind="domain", instance=instance)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_handler(exc, context)
    if response is None:
        return None
    code = response.status_code
    data = response.data
    extra: dict[str, Any] = {"instance": instance}
    if isinstance(exc, exceptions.ValidationError):
        extra["errors"] = data if isinstance(data, dict) else {"non_field_errors": data}
        detail = "The request is not valid: " + _flatten(data)
    else:
        detail = _flatten(data.get("detail", data) if isinstance(data, dict) else data)
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        extra["retry_after"] = int(exc.wait) + 1
    headers = {
        k: v for k, v in response.items() if k in ("Retry-After", "WWW-Authenticate", "Allow")
    }
    if code == status.HTTP_429_TOO_MANY_REQUESTS and "Retry-After" not in headers:
        headers["Retry-After"] = "60"
    return problem(code, detail, kind=str(code), headers=headers, **extra)
