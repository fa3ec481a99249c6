"""pylti1p3 wiring: the tool configuration read from our models, the launch-data storage in
Django's cache, and a message launch that names why it refused (each reason its own page and
audit event) and refuses a replayed nonce, which pylti1p3 alone does not."""

from __future__ import annotations

from typing import Any

import jwt
import requests
from django.conf import settings
from django.db import IntegrityError, transaction
from pylti1p3.contrib.django import DjangoCacheDataStorage, DjangoMessageLaunch, DjangoOIDCLogin
from pylti1p3.deployment import Deployment
from pylti1p3.exception import LtiException
from pylti1p3.registration import Registration
from pylti1p3.tool_config.abstract import ToolConfAbstract

from . import keys
from .models import LtiPlatform, LtiUsedNonce


class LaunchRefused(Exception):
    """A launch or login the tool will not accept; ``kind`` names why (audited as such)."""

    def __init__(self, kind: str, message: str, *, status: int = 400, **details: Any) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.details = details


class BoardRegistration(Registration):
    """pylti1p3's registration, signing with the board's key under its stored key id."""

    def __init__(self, platform: LtiPlatform) -> None:
        key = keys.signing_key()
        self.platform = platform
        self._kid = key.kid
        (
            self.set_issuer(platform.issuer)
            .set_client_id(platform.client_id)
            .set_auth_login_url(platform.auth_login_url)
            .set_auth_token_url(platform.auth_token_url)
            .set_key_set_url(platform.key_set_url)
            .set_tool_private_key(key.private_pem)
            .set_tool_public_key(key.public_pem)
        )
        if platform.auth_audience:
            self.set_auth_audience(platform.auth_audience)

    def get_kid(self) -> str:
        return self._kid


def find_platform(iss: str, client_id: str | None) -> LtiPlatform | None:
    platforms = LtiPlatform.objects.filter(issuer=iss, is_active=True)
    if client_id:
        return platforms.filter(client_id=client_id).first()
    # A login initiation may omit client_id; that is only unambiguous with one registration.
    found = list(platforms[:2])
    return found[0] if len(found) == 1 else None


class BoardToolConf(ToolConfAbstract):
    """Registrations and deployments from LtiPlatform rows (site admins edit them)."""

    def check_iss_has_one_client(self, iss: str) -> bool:
        return False

    def check_iss_has_many_clients(self, iss: str) -> bool:
        return True

    def find_registration_by_issuer(self, iss: str, *args: Any, **kwargs: Any) -> Any:
        return self.find_registration_by_params(iss, None)

    def find_registration_by_params(
        self, iss: str, client_id: str | None, *args: Any, **kwargs: Any
    ) -> Any:
        platform = find_platform(iss, client_id)
        return BoardRegistration(platform) if platform else None

    def find_deployment(self, iss: str, deployment_id: str) -> Deployment | None:
        return None

    def find_deployment_by_params(
        self, iss: str, deployment_id: str, client_id: str, *args: Any, **kwargs: Any
    ) -> Deployment | None:
        platform = find_platform(iss, client_id)
        if platform is None or deployment_id not in (platform.deployment_ids or []):
            return None
        return Deployment().set_deployment_id(deployment_id)


class TimeoutSession(requests.Session):
    """Every call to a platform gives up after LTI_HTTP_TIMEOUT seconds."""

    def request(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs.setdefault("timeout", settings.LTI_HTTP_TIMEOUT)
        return super().request(*args, **kwargs)


def http_session() -> requests.Session:
    session = TimeoutSession()
    session.headers["User-Agent"] = "LifecycleReviewBoard-LTI"
    return session


def launch_storage() -> DjangoCacheDataStorage:
    return DjangoCacheDataStorage(cache_name="default")


def oidc_login(request: Any) -> DjangoOIDCLogin:
    return DjangoOIDCLogin(request, BoardToolConf(), launch_data_storage=launch_storage())


class BoardMessageLaunch(DjangoMessageLaunch):
    """Validation in this order: state, JWT shape, registration (issuer and audience), the
    signature and times against the platform's JWKS fetched over HTTP, the nonce (issued by our
    login and used once), the deployment, the message's claims."""

    platform: LtiPlatform | None = None

    def __init__(self, request: Any, tool_config: Any = None, **kwargs: Any) -> None:
        kwargs.setdefault("launch_data_storage", launch_storage())
        kwargs.setdefault("requests_session", http_session())
        super().__init__(request, tool_config or BoardToolConf(), **kwargs)

    def validate(self) -> BoardMessageLaunch:
        if self._restored:
            raise LtiException("Can't validate restored launch")
        self._validated = True
        try:
            self.validate_state()
            self.validate_jwt_format()
            self.validate_registration()
            self.validate_jwt_signature()
            self.validate_nonce()
            self.validate_deployment()
            self.validate_message()
            self.save_launch_data()
        except Exception:
            self._validated = False
            raise
        return self

    def _claims(self) -> dict[str, Any]:
        return dict(self._jwt.get("body", {}))

    def validate_state(self) -> BoardMessageLaunch:
        try:
            super().validate_state()
        except LtiException as error:
            raise LaunchRefused(
                "bad_state",
                "This launch does not match a sign-in the board started. If your browser blocks "
                "cookies from the board inside the learning platform, open the board in a new "
                "window from the platform.",
            ) from error
        return self

    def validate_jwt_format(self) -> BoardMessageLaunch:
        try:
            super().validate_jwt_format()
        except LtiException as error:
            raise LaunchRefused("bad_token", "The launch token is not a JWT.") from error
        return self

    def validate_registration(self) -> BoardMessageLaunch:
        claims = self._claims()
        iss = str(claims.get("iss") or "")
        aud = claims.get("aud")
        audiences = [str(a) for a in (aud if isinstance(aud, list) else [aud] if aud else [])]
        if not LtiPlatform.objects.filter(issuer=iss, is_active=True).exists():
            raise LaunchRefused(
                "unknown_issuer", "The board is not registered with this platform.", issuer=iss
            )
        platform = (
            LtiPlatform.objects.filter(issuer=iss, is_active=True, client_id__in=audiences)
            .order_by("pk")
            .first()
        )
        if platform is None:
            raise LaunchRefused(
                "wrong_audience",
                "The launch was meant for another tool (its audience is not our client id).",
                issuer=iss,
                client_id=",".join(audiences)[:255],
            )
        if len(audiences) > 1 and claims.get("azp") != platform.client_id:
            raise LaunchRefused(
                "wrong_audience", "The launch names several audiences and not us as its party."
            )
        self.platform = platform
        self._registration = BoardRegistration(platform)
        return self

    def get_client_id(self) -> str:
        if self.platform is not None:
            return self.platform.client_id
        return super().get_client_id()

    def validate_jwt_signature(self) -> BoardMessageLaunch:
        assert self.platform is not None
        try:
            public_key, alg = self.get_public_key()
        except LtiException as error:
            raise LaunchRefused(
                "bad_signature", f"The platform's key set has no key for this launch ({error})."
            ) from error
        try:
            jwt.decode(
                self._get_id_token(),
                public_key,
                algorithms=[alg],
                audience=self.platform.client_id,
                issuer=self.platform.issuer,
                options={"require": ["exp", "iat", "aud", "iss", "sub", "nonce"]},
                leeway=settings.LTI_CLOCK_LEEWAY_SECONDS,
            )
        except jwt.ExpiredSignatureError as error:
            raise LaunchRefused("expired", "The launch token has expired.") from error
        except jwt.InvalidAudienceError as error:
            raise LaunchRefused(
                "wrong_audience", "The launch was meant for another tool."
            ) from error
        except jwt.InvalidSignatureError as error:
            raise LaunchRefused(
                "bad_signature", "The launch token's signature does not verify."
            ) from error
        except jwt.InvalidTokenError as error:
            raise LaunchRefused("bad_token", f"The launch token is not valid ({error}).") from error
        return self

    def validate_nonce(self) -> BoardMessageLaunch:
        assert self.platform is not None
        nonce = str(self._claims().get("nonce") or "")
        if not nonce or not self._session_service.check_nonce(nonce):
            raise LaunchRefused("bad_nonce", "The launch's nonce was not issued by the board.")
        try:
            with transaction.atomic():
                LtiUsedNonce.objects.create(platform=self.platform, nonce=nonce[:255])
        except IntegrityError as error:
            raise LaunchRefused(
                "replayed_nonce", "This launch was used already (a replayed nonce)."
            ) from error
        return self

    def validate_deployment(self) -> BoardMessageLaunch:
        assert self.platform is not None
        deployment = str(
            self._claims().get("https://purl.imsglobal.org/spec/lti/claim/deployment_id") or ""
        )
        if deployment not in (self.platform.deployment_ids or []):
            raise LaunchRefused(
                "unknown_deployment",
                "The board is not deployed under this deployment id on the platform.",
                deployment_id=deployment[:255],
            )
        return self

    def validate_message(self) -> BoardMessageLaunch:
        try:
            super().validate_message()
        except LtiException as error:
            raise LaunchRefused(
                "bad_message", f"The launch message is incomplete: {error}"
            ) from error
        return self
