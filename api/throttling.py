"""Rate limits: per token (or signed-in person) and per client address, answered with 429 and
Retry-After. Counted in Django's cache, so shared by every process once CACHES is Redis."""

from __future__ import annotations

from typing import Any

from rest_framework.throttling import SimpleRateThrottle

from accounts.throttle import client_ip

from .permissions import token_of


class TokenRateThrottle(SimpleRateThrottle):
    scope = "token"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        token = token_of(request)
        if token is not None:
            ident = f"t{token.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"u{request.user.pk}"
        else:
            return None
        return self.cache_format % {"scope": self.scope, "ident": ident}


class AddressRateThrottle(SimpleRateThrottle):
    scope = "address"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": client_ip(request)}
