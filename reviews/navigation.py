"""Whether the navbar offers the reviewer inbox: to course staff and to anyone who reviews or
has reviewed, never to a student only (their inbox would always be empty)."""

from __future__ import annotations

from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from accounts.models import User
from lifecycle.models import STAFF_ROLES, Membership

from .models import Decision, ReviewAssignment

# The answer, kept per person in Django's cache for NAV_SECONDS; a saved or deleted membership,
# assignment or decision of theirs forgets it (forget_on_change), so it stays right for them.
NAV_SECONDS = 300


def _key(user_id: int) -> str:
    return f"lrbnav:{user_id}"


def reviews_anything(user: Any) -> bool:
    """Staff of some course, or a reviewer assignment or decision of any state: one query, or
    none while the cache remembers."""
    if not getattr(user, "is_authenticated", False):
        return False
    known = cache.get(_key(user.pk))
    if known is None:
        known = _reviews_anything(user)
        cache.set(_key(user.pk), known, NAV_SECONDS)
    return bool(known)


def forget_on_change(sender: Any, instance: Any, **kwargs: Any) -> None:
    """A membership, assignment or decision saved or deleted: that person's answer may change
    (now, and again after the commit, so nobody keeps what a reader saw in between)."""
    user_id = getattr(instance, "user_id", None) or getattr(instance, "reviewer_id", None)
    if user_id is None:
        return
    cache.delete(_key(user_id))
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(lambda: cache.delete(_key(user_id)))


def connect() -> None:
    from django.db.models.signals import post_delete, post_save

    for model in (Membership, ReviewAssignment, Decision):
        uid = f"reviews.navigation.{model._meta.model_name}"
        post_save.connect(forget_on_change, sender=model, dispatch_uid=uid + ".saved")
        post_delete.connect(forget_on_change, sender=model, dispatch_uid=uid + ".deleted")


def _reviews_anything(user: Any) -> bool:
    return (
        User.objects.filter(pk=user.pk)
        .filter(
            Exists(Membership.objects.filter(user=OuterRef("pk"), role__in=STAFF_ROLES))
            | Exists(ReviewAssignment.objects.filter(reviewer=OuterRef("pk")))
            | Exists(Decision.objects.filter(reviewer=OuterRef("pk")))
        )
        .exists()
    )


def reviewer_navigation(request: HttpRequest) -> dict[str, Any]:
    # Lazy: a page that never shows the navbar runs no query.
    return {"shows_reviews": SimpleLazyObject(lambda: reviews_anything(request.user))}
