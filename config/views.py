"""Site-level views that belong to no app."""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import cache_control, never_cache
from django.views.decorators.http import require_safe

# Browsers and crawlers ask for /favicon.ico whatever the page's <link rel="icon"> says.
FAVICON = settings.BASE_DIR / "static" / "favicon.ico"


@never_cache
@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness for the load balancer and docker-compose: the process answers. It touches no
    database on purpose, so a slow database does not get every web replica restarted."""
    return HttpResponse("ok", content_type="text/plain; charset=utf-8")


@cache
def _favicon_bytes() -> bytes:
    return FAVICON.read_bytes()


@cache_control(public=True, max_age=86_400)
@require_safe
def favicon(request: HttpRequest) -> HttpResponse:
    """The site's icon (the same check mark as static/favicon.svg) at the address every browser
    tries first: a 200, not a 404 in every log."""
    return HttpResponse(_favicon_bytes(), content_type="image/x-icon")
