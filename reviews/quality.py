"""The reviewer quality loop (issue 15, part 6; after Peergrade and Moodle's "grade for
assessment"): a team rates each review it received for helpfulness and may flag one as unfair;
course staff read, per reviewer, how many reviews they wrote, how fast, how often they
declined, how helpful the teams found them and the flags still open, and resolve flags.

Writes follow the house rules (project row locked, permission and state checked, an audit event
per action, notifications through a domain event); reads cost a fixed number of queries
whatever the size of the course.

Who sees whom: the rater reads the reviewer as the stage page shows them (a label under
anonymous review); nothing shown to a reviewer names who rated them; course staff see both.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from django.db import transaction
from django.db.models import Count, Exists, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http import Http404
from django.utils import timezone

from accounts.models import User
from lifecycle import permissions as lifecycle_permissions
from lifecycle.audit import audit_record
from lifecycle.errors import IllegalTransition, InvalidAnswers, NotAllowed
from lifecycle.models import Course, Project

from . import events
from .models import (
    FLAG_TRANSITIONS,
    HELPFULNESS_MAX,
    HELPFULNESS_MIN,
    AssignmentState,
    Decision,
    FlagState,
    ReviewAssignment,
    ReviewFlag,
    ReviewRating,
)
from .services import _lock_project

NOTE_LIMIT = 500
REASON_LIMIT = 2000
RESOLUTION_LIMIT = 2000
# The board shows this many reviewers (open flags first); the rest are counted, not listed.
BOARD_REVIEWER_CAP = 25


# --- lookups for views --------------------------------------------------------------------


def _decisions() -> QuerySet[Decision]:
    return Decision.objects.select_related(
        "revision__stage__project__course", "revision__stage__definition", "reviewer"
    )


def get_decision_for_team_member(user: Any, pk: int) -> Decision:
    """A decision on a revision of the user's own project; 404 for anyone else (reviewers,
    course staff and other teams included: rating is the team's say)."""
    decision = _decisions().filter(pk=pk).first()
    if decision is None or not lifecycle_permissions.is_project_member(
        user, decision.revision.stage.project
    ):
        raise Http404("No such review.")
    return decision


def get_flag_for_staff(user: Any, pk: int) -> ReviewFlag:
    flag = (
        ReviewFlag.objects.select_related("decision__revision__stage__project__course")
        .filter(pk=pk)
        .first()
    )
    if flag is None or not lifecycle_permissions.is_course_staff(
        user, flag.decision.revision.stage.project.course
    ):
        raise Http404("No such flag.")
    return flag


# --- writes -------------------------------------------------------------------------------


def _lock_for_team(decision: Decision, actor: Any) -> Project:
    project = _lock_project(decision.revision.stage.project_id)
    if not lifecycle_permissions.is_project_member(actor, project):
        raise NotAllowed("Only the team that received a review rates or flags it.")
    if decision.reviewer_id == getattr(actor, "pk", None):
        raise NotAllowed("You cannot rate or flag your own review.")
    return project


@transaction.atomic
def review_rate(
    *, decision: Decision, rater: User, helpfulness: int, note: str = ""
) -> ReviewRating:
    """Set or change ``rater``'s helpfulness rating of ``decision`` (1 to 5, an optional note).
    The same rating again changes nothing and records nothing."""
    note = (note or "").strip()
    errors: dict[str, list[str]] = {}
    if not isinstance(helpfulness, int) or not HELPFULNESS_MIN <= helpfulness <= HELPFULNESS_MAX:
        errors["helpfulness"] = [f"Choose from {HELPFULNESS_MIN} to {HELPFULNESS_MAX}."]
    if len(note) > NOTE_LIMIT:
        errors["note"] = [f"Keep the note under {NOTE_LIMIT} characters."]
    if errors:
        raise InvalidAnswers(errors)
    # The project's lock serialises two tabs of one person rating at once: the second reads
    # the first's row and changes it, rather than failing on the unique constraint.
    project = _lock_for_team(decision, rater)
    rating = ReviewRating.objects.filter(decision=decision, rater=rater).first()
    now = timezone.now()
    if rating is None:
        rating = ReviewRating.objects.create(
            decision=decision,
            rater=rater,
            helpfulness=helpfulness,
            note=note,
            created_at=now,
            updated_at=now,
        )
        audit_record(
            actor=rater,
            verb="review.rating_set",
            obj=rating,
            project=project,
            new={"decision": decision.pk, "helpfulness": helpfulness, "note": note},
        )
        return rating
    if (rating.helpfulness, rating.note) == (helpfulness, note):
        return rating
    old = {"helpfulness": rating.helpfulness, "note": rating.note}
    rating.helpfulness, rating.note, rating.updated_at = helpfulness, note, now
    rating.save(update_fields=["helpfulness", "note", "updated_at"])
    audit_record(
        actor=rater,
        verb="review.rating_change",
        obj=rating,
        project=project,
        old=old,
        new={"decision": decision.pk, "helpfulness": helpfulness, "note": note},
    )
    return rating


@transaction.atomic
def review_flag(*, decision: Decision, actor: User, reason: str) -> ReviewFlag:
    """Flag ``decision`` as unfair; course staff are notified through the outbox."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidAnswers({"reason": ["Say why you find this review unfair."]})
    if len(reason) > REASON_LIMIT:
        raise InvalidAnswers({"reason": [f"Keep the reason under {REASON_LIMIT} characters."]})
    project = _lock_for_team(decision, actor)
    if ReviewFlag.objects.filter(decision=decision, raised_by=actor, state=FlagState.OPEN).exists():
        raise IllegalTransition("You have flagged this review already; withdraw that flag first.")
    flag = ReviewFlag.objects.create(decision=decision, raised_by=actor, reason=reason)
    audit_record(
        actor=actor,
        verb="review.flag_raise",
        obj=flag,
        project=project,
        new={"decision": decision.pk, "reviewer": decision.reviewer_id, "reason": reason},
    )
    events.publish(events.REVIEW_FLAGGED, flag=flag, project=project)
    return flag


def _close(flag: ReviewFlag, to: str) -> None:
    if to not in FLAG_TRANSITIONS[flag.state]:
        raise IllegalTransition(f"This flag is {flag.get_state_display().lower()} already.")


@transaction.atomic
def review_flag_withdraw(*, decision: Decision, actor: User) -> ReviewFlag:
    """Withdraw ``actor``'s open flag on ``decision``."""
    project = _lock_for_team(decision, actor)
    flag = (
        ReviewFlag.objects.select_for_update(no_key=True)
        .filter(decision=decision, raised_by=actor, state=FlagState.OPEN)
        .first()
    )
    if flag is None:
        raise IllegalTransition("You have no open flag on this review.")
    _close(flag, FlagState.WITHDRAWN)
    flag.state, flag.closed_at = FlagState.WITHDRAWN, timezone.now()
    flag.save(update_fields=["state", "closed_at"])
    audit_record(
        actor=actor,
        verb="review.flag_withdraw",
        obj=flag,
        project=project,
        old={"state": FlagState.OPEN},
        new={"state": FlagState.WITHDRAWN, "decision": decision.pk},
    )
    return flag


@transaction.atomic
def review_flag_resolve(*, flag: ReviewFlag, actor: User, note: str) -> ReviewFlag:
    """Course staff close a flag with a note of what they did about it."""
    note = (note or "").strip()
    if not note:
        raise InvalidAnswers({"note": ["Say how the flag was resolved."]})
    if len(note) > RESOLUTION_LIMIT:
        raise InvalidAnswers({"note": [f"Keep the note under {RESOLUTION_LIMIT} characters."]})
    project = _lock_project(flag.decision.revision.stage.project_id)
    if not lifecycle_permissions.is_course_staff(actor, project.course):
        raise NotAllowed("Only course staff resolve flags.")
    flag = ReviewFlag.objects.select_for_update(no_key=True).get(pk=flag.pk)
    if flag.decision.reviewer_id == actor.pk:
        raise IllegalTransition("A flag on your own review is for another member of staff.")
    _close(flag, FlagState.RESOLVED)
    flag.state, flag.closed_at = FlagState.RESOLVED, timezone.now()
    flag.resolved_by, flag.resolution_note = actor, note
    flag.save(update_fields=["state", "closed_at", "resolved_by", "resolution_note"])
    audit_record(
        actor=actor,
        verb="review.flag_resolve",
        obj=flag,
        project=project,
        old={"state": FlagState.OPEN},
        new={"state": FlagState.RESOLVED, "decision": flag.decision_id, "note": note},
    )
    return flag


# --- reads: the team's own ratings and flags beside the reviews ------------------------------


def attach_team_member_view(decisions: Iterable[Decision], user: Any) -> None:
    """Set ``my_rating`` and ``my_flag`` (the user's open flag) on each decision: two queries
    for the whole panel."""
    decisions = list(decisions)
    ids = [d.pk for d in decisions]
    ratings = {
        r.decision_id: r for r in ReviewRating.objects.filter(decision_id__in=ids, rater=user)
    }
    flags = {
        f.decision_id: f
        for f in ReviewFlag.objects.filter(
            decision_id__in=ids, raised_by=user, state=FlagState.OPEN
        )
    }
    for d in decisions:
        d.my_rating = ratings.get(d.pk)  # type: ignore[attr-defined]
        d.my_flag = flags.get(d.pk)  # type: ignore[attr-defined]


def attach_reviewer_view(decisions: Iterable[Decision], viewer: Any, *, is_staff: bool) -> None:
    """What the review page shows of the teams' ratings beside each decision: to the decision's
    own reviewer the mean and count only (never who rated, nor the notes that might tell);
    to course staff, for other people's decisions, each rating with its rater and note and the
    open flags. Nothing to anyone else. Two queries at most."""
    decisions = list(decisions)
    for d in decisions:
        d.team_ratings = []  # type: ignore[attr-defined]
        d.team_flags = []  # type: ignore[attr-defined]
        d.team_mean = None  # type: ignore[attr-defined]
    mine = [d for d in decisions if d.reviewer_id == getattr(viewer, "pk", None)]
    others = [d for d in decisions if d not in mine] if is_staff else []
    wanted = {d.pk: d for d in mine + others}
    if not wanted:
        return
    by_decision: dict[int, list[ReviewRating]] = defaultdict(list)
    for rating in (
        ReviewRating.objects.filter(decision_id__in=wanted)
        .select_related("rater")
        .order_by("created_at", "pk")
    ):
        by_decision[rating.decision_id].append(rating)
    for d in mine + others:
        found = by_decision.get(d.pk, [])
        if found:
            d.team_mean = statistics.mean(r.helpfulness for r in found)  # type: ignore[attr-defined]
            d.team_count = len(found)  # type: ignore[attr-defined]
    if not others:
        return
    for d in others:
        d.team_ratings = by_decision.get(d.pk, [])  # type: ignore[attr-defined]
    flags: dict[int, list[ReviewFlag]] = defaultdict(list)
    for flag in ReviewFlag.objects.filter(
        decision_id__in=[d.pk for d in others], state=FlagState.OPEN
    ).select_related("raised_by"):
        flags[flag.decision_id].append(flag)
    for d in others:
        d.team_flags = flags.get(d.pk, [])  # type: ignore[attr-defined]


# --- reads: per reviewer, for course staff ---------------------------------------------------


@dataclass
class ReviewerQuality:
    reviewer_id: int
    name: str
    email: str
    reviews: int = 0
    median_turnaround_days: float | None = None
    declines: int = 0
    mean_helpfulness: float | None = None
    ratings: int = 0
    open_flags: int = 0


@dataclass
class QualityTable:
    rows: list[ReviewerQuality]
    total: int  # reviewers with anything to show, listed or not

    @property
    def hidden(self) -> int:
        return self.total - len(self.rows)


def _days(delta: dt.timedelta) -> float:
    return delta.total_seconds() / 86400


def course_decisions(course: Course) -> list[dict[str, Any]]:
    """Every decision of the course with what the staff's figures need of it, the teams'
    ratings and open flags counted per decision: one query, shared by the board's bottlenecks
    and the reviewer quality table."""
    ratings = ReviewRating.objects.filter(decision=OuterRef("pk")).order_by().values("decision")
    open_flags = (
        ReviewFlag.objects.filter(decision=OuterRef("pk"), state=FlagState.OPEN)
        .order_by()
        .values("decision")
    )
    decisions = (
        Decision.objects.filter(revision__stage__project__course=course)
        .annotate(
            ratings_n=Coalesce(Subquery(ratings.annotate(n=Count("pk")).values("n")), 0),
            ratings_sum=Coalesce(Subquery(ratings.annotate(s=Sum("helpfulness")).values("s")), 0),
            open_flags=Coalesce(Subquery(open_flags.annotate(n=Count("pk")).values("n")), 0),
        )
        .values(
            "reviewer_id",
            "reviewer__display_name",
            "reviewer__email",
            "revision_id",
            "replaced_at",
            "created_at",
            "revision__created_at",
            "assignment__created_at",
            "ratings_n",
            "ratings_sum",
            "open_flags",
        )
        .order_by()
    )
    return cast(list[dict[str, Any]], list(decisions))


def declined_assignments(course: Course) -> list[tuple[int, str, str]]:
    """(reviewer id, display name, e-mail) per assignment of the course that ended (withdrawn
    or revoked) with no decision under it."""
    decided_under = Decision.objects.filter(assignment_id=OuterRef("pk"))
    return list(
        ReviewAssignment.objects.filter(
            project__course=course,
            state__in=[AssignmentState.WITHDRAWN, AssignmentState.REVOKED],
        )
        .exclude(Exists(decided_under))
        .order_by()
        .values_list("reviewer_id", "reviewer__display_name", "reviewer__email")
    )


def person_name(display_name: str, email: str) -> str:
    """User.name from the two columns a values() query reads."""
    return display_name or email.split("@")[0]


def reviewer_quality(
    *,
    course: Course,
    cap: int | None = BOARD_REVIEWER_CAP,
    decisions: list[dict[str, Any]] | None = None,
    declined: list[tuple[int, str, str]] | None = None,
) -> QualityTable:
    """One row per person who reviewed in ``course`` (decided, declined, or was rated or
    flagged): two queries whatever the number of reviewers, reviews, ratings and flags, none
    when the caller has read ``course_decisions`` and ``declined_assignments`` already.

    - reviews: revisions the reviewer decided on (a changed decision is the same review);
    - turnaround: from when the reviewer was asked for that revision (the later of their
      assignment and the revision's submission; course staff without an assignment: the
      submission) to their first decision on it — the median per reviewer;
    - declines: assignments that ended (withdrawn or revoked) with no decision under them;
    - helpfulness: the mean of the teams' ratings of the reviewer's decisions, with the count;
    - open flags: flags on their decisions neither withdrawn nor resolved.
    """
    if decisions is None:
        decisions = course_decisions(course)
    if declined is None:
        declined = declined_assignments(course)
    rows: dict[int, ReviewerQuality] = {}

    def row_of(person: int, display_name: str, email: str) -> ReviewerQuality:
        row = rows.get(person)
        if row is None:
            row = rows[person] = ReviewerQuality(person, person_name(display_name, email), email)
        return row

    # Per (reviewer, revision): the first decision, and the earliest assignment under any.
    reviews: dict[tuple[int, int], list[Any]] = {}
    sums: dict[int, int] = defaultdict(int)
    for d in decisions:
        row = row_of(d["reviewer_id"], d["reviewer__display_name"], d["reviewer__email"])
        row.ratings += d["ratings_n"]
        sums[row.reviewer_id] += d["ratings_sum"]
        row.open_flags += d["open_flags"]
        key = (d["reviewer_id"], d["revision_id"])
        seen = reviews.get(key)
        assigned = d["assignment__created_at"]
        if seen is None:
            reviews[key] = [d["created_at"], d["revision__created_at"], assigned]
        else:
            seen[0] = min(seen[0], d["created_at"])
            if assigned is not None and (seen[2] is None or assigned < seen[2]):
                seen[2] = assigned
    turnaround: dict[int, list[float]] = defaultdict(list)
    for (person, _), (first, submitted, assigned) in reviews.items():
        asked = max(submitted, assigned or submitted)
        turnaround[person].append(max(0.0, _days(first - asked)))
    for person, display_name, email in declined:
        row_of(person, display_name, email).declines += 1
    for row in rows.values():
        days = turnaround.get(row.reviewer_id, [])
        row.reviews = len(days)
        row.median_turnaround_days = statistics.median(days) if days else None
        if row.ratings:
            row.mean_helpfulness = sums[row.reviewer_id] / row.ratings
    ordered = sorted(rows.values(), key=lambda r: (-r.open_flags, -r.reviews, r.reviewer_id))
    shown = ordered if cap is None else ordered[:cap]
    shown.sort(key=lambda r: (-r.open_flags, r.name.casefold(), r.reviewer_id))
    return QualityTable(rows=shown, total=len(ordered))


def course_flags(*, course: Course, state: str | None = FlagState.OPEN) -> QuerySet[ReviewFlag]:
    """The flags of a course for the staff's page, newest first (page it: it may be long)."""
    flags = ReviewFlag.objects.filter(decision__revision__stage__project__course=course)
    if state:
        flags = flags.filter(state=state)
    return flags.select_related(
        "raised_by",
        "resolved_by",
        "decision__reviewer",
        "decision__revision__stage__project",
        "decision__revision__stage__definition",
    ).order_by("-created_at", "-pk")
