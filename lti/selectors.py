"""Reads of the LTI app, scoped by course membership (404 for anyone else)."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q
from django.http import Http404

from lifecycle import permissions
from lifecycle.models import Course, Membership, Role

from .models import LtiContext, LtiRosterRemoval, LtiScore, ScoreState

PAGE_CAP = 100


def get_course_for_staff(user: Any, course_pk: int) -> Course:
    course = Course.objects.filter(pk=course_pk).first()
    if course is None or not permissions.is_course_staff(user, course):
        raise Http404("No such course.")
    return course


def get_failed_score_for_staff(user: Any, course: Course, score_pk: int) -> LtiScore:
    score = (
        LtiScore.objects.select_related("context")
        .filter(pk=score_pk, context__course=course)
        .first()
    )
    if score is None:
        raise Http404("No such passback.")
    return score


def instructor_courses(user: Any) -> list[Course]:
    return list(
        Course.objects.filter(
            pk__in=Membership.objects.filter(user=user, role=Role.INSTRUCTOR).values("course_id")
        ).order_by("title")[:PAGE_CAP]
    )


def passback_status(course: Course) -> dict[str, Any]:
    """What the course's LTI page shows: linked platform courses, counts of scores by state (one
    aggregate), and the scores that need staff (failed) or are on their way, capped."""
    contexts = list(
        LtiContext.objects.filter(course=course).select_related("platform").order_by("pk")[:20]
    )
    counts = LtiScore.objects.filter(context__course=course).aggregate(
        **{state: Count("pk", filter=Q(state=state)) for state in ScoreState.values}
    )
    failed = list(
        LtiScore.objects.filter(context__course=course, state=ScoreState.FAILED)
        .select_related("user", "context__platform")
        .order_by("-created_at", "-pk")[:PAGE_CAP]
    )
    waiting = list(
        LtiScore.objects.filter(
            context__course=course, state__in=[ScoreState.PENDING, ScoreState.SENDING]
        )
        .select_related("user")
        .order_by("next_attempt_at", "pk")[:PAGE_CAP]
    )
    removals = list(
        LtiRosterRemoval.objects.filter(context__course=course)
        .select_related("user")
        .order_by("-removed_at", "-pk")[:PAGE_CAP]
    )
    return {
        "contexts": contexts,
        "counts": counts,
        "failed": failed,
        "waiting": waiting,
        "removals": removals,
    }
