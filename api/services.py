"""Every write of the API app: tokens and webhooks, each with its audit event."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from lifecycle.audit import audit_record
from lifecycle.errors import InvalidAnswers, NotAllowed
from lifecycle.models import STAFF_ROLES, Course, Membership, Project
from lifecycle.permissions import is_course_staff, is_project_member

from .models import (
    DEFAULT_TOKEN_DAYS,
    MAX_TOKEN_DAYS,
    TOKEN_PREFIX,
    PersonalAccessToken,
    Scope,
    Webhook,
    WebhookEvent,
)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@transaction.atomic
def token_create(
    *, user: Any, name: str, scopes: Iterable[str], days: int = DEFAULT_TOKEN_DAYS
) -> tuple[PersonalAccessToken, str]:
    """A new token and its secret, which is never stored and never shown again."""
    name = name.strip()
    scopes = sorted(set(scopes))
    errors: dict[str, list[str]] = {}
    if not name:
        errors["name"] = ["Name the token after where it is used, e.g. “training notebook”."]
    if not scopes:
        errors["scopes"] = ["Choose at least one scope."]
    elif not set(scopes) <= set(Scope.values):
        errors["scopes"] = [f"Unknown scope; choose among {', '.join(Scope.values)}."]
    if not 1 <= days <= MAX_TOKEN_DAYS:
        errors["days"] = [f"A token lives between 1 and {MAX_TOKEN_DAYS} days."]
    if errors:
        raise InvalidAnswers(errors)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = timezone.now()
    token = PersonalAccessToken.objects.create(
        created_at=now,
        user=user,
        name=name[:100],
        prefix=secret[: len(TOKEN_PREFIX) + 6],
        token_hash=hash_secret(secret),
        scopes=scopes,
        expires_at=now + dt.timedelta(days=days),
    )
    audit_record(
        actor=user,
        verb="token.create",
        obj=token,
        new={"name": token.name, "scopes": scopes, "expires_at": token.expires_at.isoformat()},
    )
    return token, secret


def can_revoke_token(actor: Any, token: PersonalAccessToken) -> bool:
    """The owner, and the staff of any course the owner is a member of."""
    if token.user_id == actor.pk:
        return True
    taught = Membership.objects.filter(user=actor, role__in=STAFF_ROLES).values("course_id")
    return Membership.objects.filter(user_id=token.user_id, course_id__in=taught).exists()


@transaction.atomic
def token_revoke(*, token: PersonalAccessToken, actor: Any) -> PersonalAccessToken:
    token = PersonalAccessToken.objects.select_for_update().get(pk=token.pk)
    if not can_revoke_token(actor, token):
        raise NotAllowed("Only the token's owner and their course staff can revoke it.")
    if token.revoked_at is not None:
        return token
    token.revoked_at = timezone.now()
    token.revoked_by = actor
    token.save(update_fields=["revoked_at", "revoked_by"])
    audit_record(
        actor=actor,
        verb="token.revoke",
        obj=token,
        old={"state": "active"},
        new={"state": "revoked", "owner": token.user_id, "name": token.name},
    )
    return token


def touch_token(token: PersonalAccessToken) -> None:
    """Record the last use, at most once a minute (no write per request)."""
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > dt.timedelta(minutes=1):
        PersonalAccessToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now


# --- webhooks ------------------------------------------------------------------------------


def can_manage_hooks(actor: Any, *, course: Course | None, project: Project | None) -> bool:
    if course is not None:
        return is_course_staff(actor, course)
    assert project is not None
    return is_project_member(actor, project) or is_course_staff(actor, project.course)


@transaction.atomic
def webhook_create(
    *,
    actor: Any,
    url: str,
    events: Iterable[str],
    course: Course | None = None,
    project: Project | None = None,
) -> Webhook:
    from .webhooks import validate_hook_url

    if (course is None) == (project is None):
        raise ValueError("A webhook belongs to a course or to a project.")
    if not can_manage_hooks(actor, course=course, project=project):
        raise NotAllowed("Only course staff (or the team, for its project) manage webhooks.")
    events = sorted(set(events))
    errors: dict[str, list[str]] = {}
    problem = validate_hook_url(url)
    if problem:
        errors["url"] = [problem]
    if not events:
        errors["events"] = ["Choose at least one event."]
    elif not set(events) <= set(WebhookEvent.values):
        errors["events"] = ["Unknown event."]
    if errors:
        raise InvalidAnswers(errors)
    hook = Webhook.objects.create(
        course=course,
        project=project,
        url=url,
        secret=secrets.token_hex(32),
        events=events,
        created_by=actor,
    )
    audit_record(
        actor=actor,
        verb="webhook.create",
        obj=hook,
        course=course,
        project=project,
        new={"url": url, "events": events},
    )
    return hook


@transaction.atomic
def webhook_delete(*, hook: Webhook, actor: Any) -> None:
    hook = (
        Webhook.objects.select_for_update(of=("self",))
        .select_related("course", "project__course")
        .get(pk=hook.pk)
    )
    if not can_manage_hooks(actor, course=hook.course, project=hook.project):
        raise NotAllowed("Only course staff (or the team, for its project) manage webhooks.")
    audit_record(
        actor=actor,
        verb="webhook.delete",
        obj=hook,
        course=hook.course,
        project=hook.project,
        old={"url": hook.url, "events": hook.events},
    )
    hook.active = False
    hook.save(update_fields=["active"])
