"""Site-level views that belong to no app."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe


@never_cache
@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness for the load balancer and docker-compose: the process answers. It touches no
    database on purpose, so a slow database does not get every web replica restarted."""
    return HttpResponse("ok", content_type="text/plain; charset=utf-8")
