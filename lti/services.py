"""Every write of the LTI app: launches, context links, roster sync (NRPS) and grade passback
(AGS) through the outbox of scores.

The grading app hands grades over through ``queue_score`` and ``queue_project_total``; nothing
here imports it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from pylti1p3.exception import LtiException, LtiServiceException
from pylti1p3.names_roles import NamesRolesProvisioningService
from pylti1p3.service_connector import ServiceConnector

from accounts.models import User
from lifecycle import permissions
from lifecycle import services as lifecycle_services
from lifecycle.audit import audit_record
from lifecycle.errors import IllegalTransition, NotAllowed
from lifecycle.models import Course, Membership, Role, StageDefinition

from .models import (
    LtiContext,
    LtiLineItem,
    LtiPlatform,
    LtiProblem,
    LtiRosterRemoval,
    LtiScore,
    LtiUsedNonce,
    LtiUser,
    ScoreState,
)
from .roles import course_role
from .tool_conf import BoardRegistration, LaunchRefused, http_session

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


# --- Names and Role Provisioning ------------------------------------------------------------


@dataclass
class RosterResult:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    skipped: int = 0  # instructors and roles the board has no place for
    pages: int = 0

    def counts(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "updated": len(self.updated),
            "removed": len(self.removed),
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "pages": self.pages,
        }


class RosterSyncFailed(Exception):
    pass


def _fetch_members(context: LtiContext) -> tuple[list[dict[str, Any]], int]:
    service = NamesRolesProvisioningService(
        connector(context.platform), {"context_memberships_url": context.nrps_url}
    )
    members: list[Any] = []
    pages = 0
    url: str | None = context.nrps_url
    # pylti1p3 follows Link: <…>; rel="next" page by page; bounded so a looping platform ends.
    while url and pages < settings.LTI_NRPS_MAX_PAGES:
        page, url = service.get_members_page(url)
        members.extend(page)
        pages += 1
    return members, pages


def roster_sync(*, context: LtiContext, actor: Any = None) -> RosterResult:
    """Bring the course's students and TAs in line with the platform's roster: add and update
    those listed, remove the students (known through this platform) it no longer lists."""
    course = context.course
    if course is None:
        raise IllegalTransition("This platform course is not linked to a board yet.")
    if not context.nrps_url:
        raise IllegalTransition(
            "The platform has not offered its roster service (Names and Role Provisioning) "
            "in a launch of this course yet."
        )
    if actor is not None and not permissions.is_course_staff(actor, course):
        raise NotAllowed("Only course staff sync the roster.")
    try:
        members, pages = _fetch_members(context)  # over HTTP, outside any transaction
    except (LtiException, OSError, ValueError, KeyError) as error:
        raise RosterSyncFailed(_service_error(error)) from error
    result = RosterResult(pages=pages)
    platform = context.platform
    listed: set[int] = set()
    with transaction.atomic():
        for member in members:
            sub = str(member.get("user_id") or "")
            role = course_role(member.get("roles") or [])
            if not sub:
                result.skipped += 1
                continue
            active = str(member.get("status") or "Active").lower() == "active"
            if role not in (Role.STUDENT, Role.TA) or not active:
                if role is None or role == Role.INSTRUCTOR:
                    result.skipped += 1
                continue
            try:
                with transaction.atomic():
                    lti_user, _ = _identity(
                        platform=platform,
                        sub=sub,
                        email=str(member.get("email") or ""),
                        name=_person_name(member),
                        lms_user_id=str(member.get("lis_person_sourcedid") or ""),
                    )
            except PrivilegedAccount:
                result.skipped += 1
                continue
            user = lti_user.user
            listed.add(user.pk)
            membership = Membership.objects.filter(course=course, user=user).first()
            if membership is None:
                _set_membership(course=course, user=user, role=role, via="roster")
                result.added.append(user.email)
            elif membership.role == Role.INSTRUCTOR or membership.role == role:
                result.unchanged += 1
            else:
                _set_membership(course=course, user=user, role=role, via="roster")
                result.updated.append(user.email)
        known_here = LtiUser.objects.filter(platform=platform).values("user_id")
        gone = (
            Membership.objects.filter(course=course, role=Role.STUDENT, user_id__in=known_here)
            .exclude(user_id__in=listed)
            .select_related("user")
        )
        for membership in gone:
            result.removed.append(membership.user.email)
            LtiRosterRemoval.objects.create(
                context=context, user=membership.user, role=membership.role
            )
            audit_record(
                actor=actor,
                verb="membership.remove",
                obj=membership,
                course=course,
                old={"role": membership.role, "user": membership.user.email},
                new={"via": "lti_roster"},
            )
            membership.delete()
        LtiContext.objects.filter(pk=context.pk).update(last_roster_sync_at=timezone.now())
        audit_record(
            actor=actor,
            verb="lti.roster_sync",
            obj=context,
            course=course,
            new={**result.counts(), "removed_people": sorted(result.removed)},
        )
    return result


def roster_sync_request(*, course: Course, actor: Any) -> list[int]:
    """Course staff ask for a sync; the worker does it (on commit). Returns the contexts."""
    if not permissions.is_course_staff(actor, course):
        raise NotAllowed("Only course staff sync the roster.")
    ids = list(
        LtiContext.objects.filter(course=course).exclude(nrps_url="").values_list("pk", flat=True)
    )
    if not ids:
        raise IllegalTransition(
            "No learning-platform course linked to this board offers its roster yet: launch "
            "the board from the platform first."
        )
    from .tasks import enqueue_roster_syncs

    actor_id = actor.pk
    transaction.on_commit(lambda: enqueue_roster_syncs(ids, actor_id))
    return ids


# --- Assignment and Grade Services ----------------------------------------------------------


def _label(course: Course, stage_key: str) -> str:
    if stage_key == PROJECT_TOTAL:
        return "Project total"
    title = (
        StageDefinition.objects.filter(template__courses=course, key=stage_key)
        .values_list("title", flat=True)
        .first()
    )
    return (title or stage_key)[:255]


def queue_score(
    *,
    course: Course,
    stage_key: str,
    user: Any,
    score_given: Decimal,
    score_maximum: Decimal,
    comment: str = "",
    label: str = "",
) -> list[LtiScore]:
    """Put a grade in the passback outbox of every platform course linked to the board that
    knows the person; sent on commit, retried with back-off. A newer grade for the same person
    and column replaces one still waiting. Nothing happens for a course without LTI."""
    score_given = Decimal(score_given)
    score_maximum = Decimal(score_maximum)
    if score_maximum <= 0 or score_given < 0:
        raise IllegalTransition("A score is at least 0 out of a positive maximum.")
    label = label or _label(course, stage_key)
    queued: list[LtiScore] = []
    with transaction.atomic():
        contexts = LtiContext.objects.filter(course=course).exclude(ags_lineitems_url="")
        for context in contexts.select_related("platform"):
            lti_user = LtiUser.objects.filter(platform=context.platform, user=user).first()
            if lti_user is None:
                continue
            now = timezone.now()
            values = {
                "lti_user": lti_user,
                "label": label,
                "score_given": score_given,
                "score_maximum": score_maximum,
                "comment": comment,
                "graded_at": now,
                "next_attempt_at": now,
                "attempts": 0,
                "last_error": "",
            }
            waiting = (
                LtiScore.objects.select_for_update()
                .filter(context=context, stage_key=stage_key, user=user, state=ScoreState.PENDING)
                .first()
            )
            if waiting is not None:
                for name, value in values.items():
                    setattr(waiting, name, value)
                waiting.save(update_fields=list(values))
                score = waiting
            else:
                score = LtiScore.objects.create(
                    context=context, user=user, stage_key=stage_key, **values
                )
            queued.append(score)
        ids = [s.pk for s in queued]
        if ids:
            from .tasks import enqueue_scores

            transaction.on_commit(lambda: enqueue_scores(ids))
    return queued


def queue_project_total(
    *,
    course: Course,
    user: Any,
    score_given: Decimal,
    score_maximum: Decimal,
    comment: str = "",
) -> list[LtiScore]:
    return queue_score(
        course=course,
        stage_key=PROJECT_TOTAL,
        user=user,
        score_given=score_given,
        score_maximum=score_maximum,
        comment=comment,
        label="Project total",
    )


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _all_line_items(service: ServiceConnector, url: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    pages = 0
    next_url: str | None = url
    while next_url and pages < settings.LTI_NRPS_MAX_PAGES:
        response = service.make_service_request(
            [AGS_LINEITEM_SCOPE],
            next_url,
            accept="application/vnd.ims.lis.v2.lineitemcontainer+json",
        )
        body = response["body"]
        items.extend(b for b in (body if isinstance(body, list) else []) if isinstance(b, dict))
        next_url = response["next_page_url"]
        pages += 1
    return items


def line_item_ensure(
    *,
    context: LtiContext,
    stage_key: str,
    label: str,
    score_maximum: Decimal,
    service: ServiceConnector | None = None,
) -> LtiLineItem:
    """The platform's column for the stage: remembered, else found among its line items by
    resourceId, else created (POST)."""
    known = LtiLineItem.objects.filter(context=context, stage_key=stage_key).first()
    if known is not None:
        return known
    service = service or connector(context.platform)
    found = next(
        (
            item
            for item in _all_line_items(service, context.ags_lineitems_url)
            if item.get("resourceId") == stage_key and item.get("id")
        ),
        None,
    )
    if found is None:
        response = service.make_service_request(
            [AGS_LINEITEM_SCOPE],
            context.ags_lineitems_url,
            is_post=True,
            data=json.dumps(
                {
                    "label": label or stage_key,
                    "scoreMaximum": _number(score_maximum),
                    "resourceId": stage_key,
                    "tag": "lifecycle-review-board",
                }
            ),
            content_type="application/vnd.ims.lis.v2.lineitem+json",
            accept="application/vnd.ims.lis.v2.lineitem+json",
        )
        body = response["body"]
        found = body if isinstance(body, dict) else {}
        if not found.get("id"):
            raise LtiException("The platform created a line item without an id.")
    item, _ = LtiLineItem.objects.get_or_create(
        context=context,
        stage_key=stage_key,
        defaults={
            "url": str(found["id"]),
            "label": str(found.get("label") or label)[:255],
            "score_maximum": Decimal(str(found.get("scoreMaximum") or score_maximum)),
        },
    )
    return item


def scores_url(line_item_url: str) -> str:
    parts = urlsplit(line_item_url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/scores"))


def _claim(score_id: int) -> LtiScore | None:
    """Take the score for sending: a conditional UPDATE, so two workers never both send it."""
    now = timezone.now()
    lease = now + timedelta(seconds=settings.LTI_SCORE_LEASE_SECONDS)
    due = Q(state=ScoreState.PENDING, next_attempt_at__lte=now) | Q(
        state=ScoreState.SENDING, lease_until__lt=now
    )
    taken = LtiScore.objects.filter(due, pk=score_id).update(
        state=ScoreState.SENDING, lease_until=lease, attempts=F("attempts") + 1
    )
    if not taken:
        return None
    return LtiScore.objects.select_related("context__platform", "lti_user", "user").get(pk=score_id)


def score_deliver(*, score_id: int) -> str:
    """Send one score to the platform. Returns the state it ends in, or "skipped" when it is
    not due or another worker has it (running twice is harmless)."""
    score = _claim(score_id)
    if score is None:
        return "skipped"
    context = score.context
    try:
        service = connector(context.platform)
        item = line_item_ensure(
            context=context,
            stage_key=score.stage_key,
            label=score.label,
            score_maximum=score.score_maximum,
            service=service,
        )
        payload = {
            "userId": score.lti_user.sub,
            "scoreGiven": _number(score.score_given),
            "scoreMaximum": _number(score.score_maximum),
            "activityProgress": "Completed",
            "gradingProgress": "FullyGraded",
            "timestamp": score.graded_at.astimezone(UTC).isoformat(timespec="milliseconds"),
            "comment": score.comment,
        }
        try:
            service.make_service_request(
                [AGS_SCORE_SCOPE],
                scores_url(item.url),
                is_post=True,
                data=json.dumps(payload),
                content_type="application/vnd.ims.lis.v1.score+json",
            )
        except LtiServiceException as error:
            if getattr(error, "response", None) is not None and error.response.status_code == 404:
                # The column was deleted on the platform: make it again on the next attempt.
                LtiLineItem.objects.filter(pk=item.pk).delete()
            raise
    except Exception as error:  # any failure is recorded and retried
        return _score_failed(score, _service_error(error))
    with transaction.atomic():
        LtiScore.objects.filter(pk=score.pk).update(
            state=ScoreState.SENT, sent_at=timezone.now(), lease_until=None, last_error=""
        )
        audit_record(
            actor=None,
            verb="lti.score_sent",
            obj=score,
            course=context.course,
            new={
                "stage": score.stage_key,
                "user": score.user.email,
                "score": f"{score.score_given}/{score.score_maximum}",
                "attempts": score.attempts,
            },
        )
    return ScoreState.SENT


def _score_failed(score: LtiScore, message: str) -> str:
    now = timezone.now()
    exhausted = score.attempts >= settings.LTI_SCORE_MAX_ATTEMPTS
    with transaction.atomic():
        if exhausted:
            LtiScore.objects.filter(pk=score.pk).update(
                state=ScoreState.FAILED, last_error=message, lease_until=None
            )
            audit_record(
                actor=None,
                verb="lti.score_failed",
                obj=score,
                course=score.context.course,
                new={
                    "stage": score.stage_key,
                    "user": score.user.email,
                    "attempts": score.attempts,
                    "error": message[:500],
                },
                flagged=True,
            )
            return ScoreState.FAILED
        backoff = settings.LTI_SCORE_BACKOFF_SECONDS * 2 ** max(score.attempts - 1, 0)
        LtiScore.objects.filter(pk=score.pk).update(
            state=ScoreState.PENDING,
            last_error=message,
            lease_until=None,
            next_attempt_at=now + timedelta(seconds=backoff),
        )
    return ScoreState.PENDING


@transaction.atomic
def score_retry(*, score: LtiScore, actor: Any) -> LtiScore:
    """Course staff send a failed score again (with a fresh count of attempts)."""
    score = LtiScore.objects.select_for_update().select_related("context").get(pk=score.pk)
    course = score.context.course
    if course is None or not permissions.is_course_staff(actor, course):
        raise NotAllowed("Only course staff retry a grade passback.")
    if score.state != ScoreState.FAILED:
        raise IllegalTransition("Only a failed passback can be retried.")
    if LtiScore.objects.filter(
        context=score.context, stage_key=score.stage_key, user=score.user, state=ScoreState.PENDING
    ).exists():
        raise IllegalTransition("A newer grade for this person is waiting to be sent already.")
    score.state = ScoreState.PENDING
    score.attempts = 0
    score.next_attempt_at = timezone.now()
    score.save(update_fields=["state", "attempts", "next_attempt_at"])
    audit_record(
        actor=actor,
        verb="lti.score_retry",
        obj=score,
        course=course,
        old={"state": ScoreState.FAILED, "error": score.last_error[:500]},
        new={"state": ScoreState.PENDING},
    )
    from .tasks import enqueue_scores

    ids = [score.pk]
    transaction.on_commit(lambda: enqueue_scores(ids))
    return score


def due_score_ids(limit: int = 200) -> list[int]:
    now = timezone.now()
    due = Q(state=ScoreState.PENDING, next_attempt_at__lte=now) | Q(
        state=ScoreState.SENDING, lease_until__lt=now
    )
    return list(
        LtiScore.objects.filter(due)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


def used_nonces_purge(*, older_than: timedelta | None = None) -> int:
    """Forget used nonces once no launch carrying them can still be valid (launch tokens live
    minutes; a week is ample). Returns how many were deleted."""
    cutoff = timezone.now() - (older_than or timedelta(days=settings.LTI_NONCE_RETENTION_DAYS))
    deleted, _ = LtiUsedNonce.objects.filter(used_at__lt=cutoff).delete()
    return deleted
