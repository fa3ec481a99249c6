"""Names and Role Provisioning: the course's roster from the platform's, page by page."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from pylti1p3.exception import LtiException
from pylti1p3.names_roles import NamesRolesProvisioningService

from lifecycle import permissions
from lifecycle.audit import audit_record
from lifecycle.errors import IllegalTransition, NotAllowed
from lifecycle.models import Course, Membership, Role

from ..models import (
    LtiContext,
    LtiRosterRemoval,
    LtiUser,
)
from ..roles import course_role
from .launches import (
    PrivilegedAccount,
    _identity,
    _person_name,
    _service_error,
    _set_membership,
    connector,
)

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
    from ..tasks import enqueue_roster_syncs

    actor_id = actor.pk
    transaction.on_commit(lambda: enqueue_roster_syncs(ids, actor_id))
    return ids
