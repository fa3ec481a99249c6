"""Bearer tokens for the API. A token authenticates API requests only: the pages read the
session, never this header, and the API's session path keeps Django's CSRF check."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from rest_framework import authentication, exceptions

from .models import TOKEN_PREFIX, PersonalAccessToken
from .services import hash_secret, touch_token


class TokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Any) -> tuple[Any, PersonalAccessToken] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if not parts or parts[0].lower() != self.keyword.lower():
            return None
        if len(parts) != 2 or not parts[1].startswith(TOKEN_PREFIX):
            raise exceptions.AuthenticationFailed("Malformed Authorization header.")
        token = (
            PersonalAccessToken.objects.select_related("user")
            .filter(token_hash=hash_secret(parts[1]))
            .first()
        )
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Unknown token.")
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This token was revoked.")
        if token.expires_at <= timezone.now():
            raise exceptions.AuthenticationFailed("This token has expired.")
        touch_token(token)
        return token.user, token

    def authenticate_header(self, request: Any) -> str:
        return f'{self.keyword} realm="api"'
