"""Launches: who the platform's person is here, the context and its course, refusals."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from pylti1p3.exception import LtiServiceException
from pylti1p3.service_connector import ServiceConnector

from accounts.models import User
from lifecycle import permissions
from lifecycle import services as lifecycle_services
from lifecycle.audit import audit_record
from lifecycle.errors import IllegalTransition, NotAllowed
from lifecycle.models import Course, Membership

from ..models import (
    LtiContext,
    LtiPlatform,
    LtiProblem,
    LtiUsedNonce,
    LtiUser,
)
from ..roles import course_role
from ..tool_conf import BoardRegistration, LaunchRefused, http_session

log = logging.getLogger(__name__)

CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
MESSAGE_TYPE = CLAIM + "message_type"
CONTEXT = CLAIM + "context"
ROLES = CLAIM + "roles"
DEPLOYMENT = CLAIM + "deployment_id"
LIS = CLAIM + "lis"
NRPS_CLAIM = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
AGS_CLAIM = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS_SCOPE = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
AGS_LINEITEM_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
AGS_SCORE_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
PROJECT_TOTAL = "project-total"


# --- refused launches -----------------------------------------------------------------------


def problem_record(
    *,
    refusal: LaunchRefused,
    claims: dict[str, Any] | None = None,
    remote_addr: str | None = None,
    course: Course | None = None,
) -> LtiProblem:
    """Log a refused login or launch; one with a course also goes into its audit trail."""
    claims = claims or {}
    details = refusal.details
    context_claim = claims.get(CONTEXT) or {}
    aud = claims.get("aud")
    with transaction.atomic():
        problem = LtiProblem.objects.create(
            kind=refusal.kind[:40],
            message=refusal.message[:500],
            issuer=str(details.get("issuer") or claims.get("iss") or "")[:500],
            client_id=str(
                details.get("client_id") or (aud[0] if isinstance(aud, list) and aud else aud) or ""
            )[:255],
            deployment_id=str(details.get("deployment_id") or claims.get(DEPLOYMENT) or "")[:255],
            context_id=str(context_claim.get("id") or "")[:255]
            if isinstance(context_claim, dict)
            else "",
            sub=str(claims.get("sub") or "")[:255],
            course=course,
            remote_addr=remote_addr or None,
        )
        if course is not None:
            audit_record(
                actor=None,
                verb="lti.launch_refused",
                obj=problem,
                course=course,
                new={"reason": refusal.kind, "message": refusal.message, "sub": problem.sub},
                flagged=True,
            )
    log.warning("LTI %s refused: %s (iss=%s)", refusal.kind, refusal.message, problem.issuer)
    return problem


# --- launches -------------------------------------------------------------------------------


@dataclass
class LaunchOutcome:
    user: Any
    lti_user: LtiUser
    context: LtiContext | None
    course: Course | None
    role: str | None
    message_type: str
    created_user: bool = False


def _placeholder_email(platform: LtiPlatform, sub: str) -> str:
    digest = hashlib.sha256(f"{platform.pk}:{sub}".encode()).hexdigest()[:20]
    return f"lti-{platform.pk}-{digest}@lti.invalid"


def _person_name(data: dict[str, Any]) -> str:
    name = str(data.get("name") or "").strip()
    if not name:
        name = " ".join(
            str(data.get(k) or "").strip() for k in ("given_name", "family_name")
        ).strip()
    return name[:150]


class PrivilegedAccount(Exception):
    """The platform's e-mail address is a site administrator's here."""


def _identity(
    *, platform: LtiPlatform, sub: str, email: str, name: str, lms_user_id: str
) -> tuple[LtiUser, bool]:
    """Our account for the platform's person, made on first sight: matched by e-mail when the
    platform sends one (the platform is registered by a site admin and vouches for it), else
    with a placeholder address that can never receive mail."""
    lti_user = LtiUser.objects.select_related("user").filter(platform=platform, sub=sub).first()
    now = timezone.now()
    if lti_user is not None:
        changed = []
        if lms_user_id and lti_user.lms_user_id != lms_user_id:
            lti_user.lms_user_id = lms_user_id
            changed.append("lms_user_id")
        if changed:
            lti_user.save(update_fields=changed)
        return lti_user, False
    email = email.strip().lower()
    user = User.objects.filter(email__iexact=email).first() if email else None
    if user is not None and (user.is_staff or user.is_superuser):
        # A platform's say-so never opens a site administrator's account.
        raise PrivilegedAccount(email)
    created = False
    if user is None:
        user = User.objects.create_user(
            email=email or _placeholder_email(platform, sub),
            password=None,
            display_name=name,
            email_verified_at=now if email else None,
        )
        created = True
    lti_user = LtiUser.objects.create(
        platform=platform, sub=sub, user=user, lms_user_id=lms_user_id or sub
    )
    return lti_user, created


def _context(platform: LtiPlatform, claims: dict[str, Any]) -> LtiContext | None:
    claim = claims.get(CONTEXT)
    if not isinstance(claim, dict) or not claim.get("id"):
        return None
    context, _ = LtiContext.objects.get_or_create(
        platform=platform, context_id=str(claim["id"])[:255]
    )
    fields: dict[str, Any] = {
        "title": str(claim.get("title") or "")[:255],
        "label": str(claim.get("label") or "")[:255],
        "deployment_id": str(claims.get(DEPLOYMENT) or "")[:255],
    }
    nrps = claims.get(NRPS_CLAIM)
    if isinstance(nrps, dict) and nrps.get("context_memberships_url"):
        fields["nrps_url"] = str(nrps["context_memberships_url"])
    ags = claims.get(AGS_CLAIM)
    if isinstance(ags, dict) and ags.get("lineitems"):
        fields["ags_lineitems_url"] = str(ags["lineitems"])
        fields["ags_scopes"] = list(ags.get("scope") or [])
    changed = [k for k, v in fields.items() if getattr(context, k) != v]
    for name in changed:
        setattr(context, name, fields[name])
    if changed:
        context.save(update_fields=changed)
    return context


def _set_membership(*, course: Course, user: Any, role: str, via: str) -> Membership:
    membership, created = Membership.objects.get_or_create(
        course=course, user=user, defaults={"role": role}
    )
    if created:
        audit_record(
            actor=user if via == "launch" else None,
            verb="membership.add",
            obj=membership,
            course=course,
            new={"role": role, "user": user.email, "via": f"lti_{via}"},
        )
    elif membership.role != role:
        old = membership.role
        membership.role = role
        membership.save(update_fields=["role"])
        audit_record(
            actor=user if via == "launch" else None,
            verb="membership.role_change",
            obj=membership,
            course=course,
            old={"role": old},
            new={"role": role, "user": user.email, "via": f"lti_{via}"},
        )
    return membership


def launch_accept(*, platform: LtiPlatform, claims: dict[str, Any]) -> LaunchOutcome:
    """A validated launch: the person's account, the context, and — when the context is linked
    to a course — their membership in the course with the role the platform gives them.
    Raises LaunchRefused (after recording it) for a role the course does not have."""
    message_type = str(claims.get(MESSAGE_TYPE) or "")
    role = course_role(claims.get(ROLES) or [])
    lis_claim = claims.get(LIS)
    lis: dict[str, Any] = lis_claim if isinstance(lis_claim, dict) else {}
    refusal: LaunchRefused | None = None
    with transaction.atomic():
        context = _context(platform, claims)
        course = context.course if context is not None else None
    if role is None:
        refusal = LaunchRefused(
            "unknown_role",
            "Your role in the learning platform's course has no counterpart on the board "
            "(it knows students, teaching assistants and instructors).",
            status=403,
        )
    if refusal is not None:
        problem_record(refusal=refusal, claims=claims, course=course)
        raise refusal
    try:
        with transaction.atomic():
            lti_user, created = _identity(
                platform=platform,
                sub=str(claims.get("sub") or ""),
                email=str(claims.get("email") or ""),
                name=_person_name(claims),
                lms_user_id=str(lis.get("person_sourcedid") or ""),
            )
    except PrivilegedAccount:
        refusal = LaunchRefused(
            "privileged_account",
            "Your e-mail address belongs to a site administrator's account here, which the "
            "board never opens from a learning platform. Sign in to the board directly.",
            status=403,
        )
    else:
        if not lti_user.user.is_active:
            refusal = LaunchRefused("inactive_user", "This account is closed.", status=403)
    if refusal is not None:
        problem_record(refusal=refusal, claims=claims, course=course)
        raise refusal
    with transaction.atomic():
        LtiUser.objects.filter(pk=lti_user.pk).update(last_launch_at=timezone.now())
        user = lti_user.user
        if context is not None and course is not None and role is not None:
            _set_membership(course=course, user=user, role=role, via="launch")
            audit_record(
                actor=user,
                verb="lti.launch",
                obj=context,
                course=course,
                new={"message_type": message_type, "role": role, "sub": lti_user.sub},
            )
    return LaunchOutcome(
        user=user,
        lti_user=lti_user,
        context=context,
        course=course,
        role=role,
        message_type=message_type,
        created_user=created,
    )


# --- linking a context to a course ----------------------------------------------------------


@transaction.atomic
def context_link(*, context: LtiContext, course: Course, actor: Any) -> LtiContext:
    """An instructor of the course links the platform's course to it."""
    context = LtiContext.objects.select_for_update().get(pk=context.pk)
    if not permissions.is_instructor(actor, course):
        raise NotAllowed("Only an instructor of the course links it to the learning platform.")
    if context.course_id is not None and context.course_id != course.pk:
        raise IllegalTransition("This platform course is linked to another board already.")
    if context.course_id == course.pk:
        return context
    context.course = course
    context.save(update_fields=["course"])
    audit_record(
        actor=actor,
        verb="lti.context_link",
        obj=context,
        course=course,
        new={
            "platform": context.platform.issuer,
            "context_id": context.context_id,
            "title": context.title,
        },
    )
    return context


def _free_code(base: str) -> str:
    from django.utils.text import slugify

    stem = (slugify(base)[:32] or "lti-course").strip("-") or "lti-course"
    code, n = stem, 1
    while Course.objects.filter(code=code).exists():
        n += 1
        code = f"{stem}-{n}"
    return code


@transaction.atomic
def context_create_course(*, context: LtiContext, actor: Any, title: str = "") -> Course:
    """An instructor makes a new board for the platform's course and links it."""
    from lifecycle.default_template import install_default_template

    course = lifecycle_services.course_create(
        actor=actor,
        title=(title or context.title or context.label or "Course from the learning platform")[
            :200
        ],
        code=_free_code(context.label or context.title or context.context_id),
        template=install_default_template(),
    )
    context_link(context=context, course=course, actor=actor)
    return course


# --- calls to the platform ------------------------------------------------------------------


def connector(platform: LtiPlatform) -> ServiceConnector:
    """pylti1p3's service connector: it asks the platform's token endpoint for an access token
    with a client assertion signed by the tool's key (OAuth 2 client credentials)."""
    return ServiceConnector(BoardRegistration(platform), http_session())


def _service_error(error: Exception) -> str:
    if isinstance(error, LtiServiceException):
        return str(error)[:2000]
    return f"{type(error).__name__}: {error}"[:2000]


def used_nonces_purge(*, older_than: timedelta | None = None) -> int:
    """Forget used nonces once no launch carrying them can still be valid (launch tokens live
    minutes; a week is ample). Returns how many were deleted."""
    cutoff = timezone.now() - (older_than or timedelta(days=settings.LTI_NONCE_RETENTION_DAYS))
    deleted, _ = LtiUsedNonce.objects.filter(used_at__lt=cutoff).delete()
    return deleted
