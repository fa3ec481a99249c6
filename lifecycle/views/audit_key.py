"""The audit signing key's public half, for anyone verifying an export offline."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from lifecycle import signing


@require_GET
def audit_public_key(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(signing.public_key_text(), content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = 'inline; filename="lrb-audit-public-key.pem"'
    return response
