"""Scopes: what a token may do, on top of what its owner may see and do."""

from __future__ import annotations

from typing import Any

from rest_framework import permissions

from .models import PersonalAccessToken, Scope


def token_of(request: Any) -> PersonalAccessToken | None:
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, PersonalAccessToken) else None


class TokenScope(permissions.BasePermission):
    """Reads need the `read` scope; a write needs the scope its view names in
    ``write_scope`` (or ``scope_for(request)``). A signed-in browser session (which DRF makes
    pass the CSRF check) acts with every scope."""

    message = "This token does not have the scope this request needs."

    def has_permission(self, request: Any, view: Any) -> bool:
        token = token_of(request)
        if token is None:
            return True
        needed: str | None
        if request.method in permissions.SAFE_METHODS:
            needed = Scope.READ
        else:
            needed = getattr(view, "write_scope", None)
            if needed is None:
                return False
        self.message = f"This token lacks the “{needed}” scope."
        return token.has_scope(needed)
