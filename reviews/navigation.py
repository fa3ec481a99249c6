"""Whether the navbar offers the reviewer inbox: to course staff and to anyone who reviews or
has reviewed, never to a student only (their inbox would always be empty)."""

from __future__ import annotations

from typing import Any

from django.db.models import Exists, OuterRef
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from accounts.models import User
from lifecycle.models import STAFF_ROLES, Membership

from .models import Decision, ReviewAssignment


def reviews_anything(user: Any) -> bool:
    """One query: staff of some course, or a reviewer assignment or decision of any state."""
    if not getattr(user, "is_authenticated", False):
        return False
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
