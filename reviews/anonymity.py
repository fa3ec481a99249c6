"""Anonymous reviewers towards the team (a course's review setting, issue 11).

When a course turns it on, the team reads "Reviewer A, domain expert" wherever it meets a
reviewer: the gate panel on the stage and project pages, the review page's decisions and
threads, the reviewers page, the dossier and the notifications it is sent. Course staff,
reviewers and the audit trail keep the names.

A letter belongs to a person for the whole project (the order in which people first took part
in its review: assigned, decided or commented), so the team can follow one reviewer across
stages and revisions without learning who they are.

Pages mask the rows they show rather than each template choosing a name: ``mask`` puts a
stand-in in the row's cache for its person, so every template path that prints
``decision.reviewer.name`` or ``comment.author.email`` prints the stand-in, including ones
written later. Masked rows are for display only; services re-read what they write.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Min

from lifecycle import permissions as lifecycle_permissions
from lifecycle.models import Course, Project

from .models import Comment, Decision, ReviewAssignment, ReviewerRole

ROLE_WORDS = {ReviewerRole.EXPERT: "domain expert", ReviewerRole.STAFF: "course staff"}


@dataclass(frozen=True)
class MaskedReviewer:
    """What the team sees of a reviewer: a label, no name, no address."""

    pk: int
    name: str
    email: str = ""
    is_active: bool = True

    @property
    def display_name(self) -> str:
        return self.name

    def __str__(self) -> str:
        return self.name


def _letters(n: int) -> str:
    """0 → A, 25 → Z, 26 → AA: as many reviewers as a project may have."""
    letters = ""
    n += 1
    while n:
        n, rest = divmod(n - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def reviewer_labels(project: Project) -> dict[int, str]:
    """Every person outside the team who took part in the project's review → their label.
    Three small aggregate queries, whatever the project's history."""
    members = set(project.members.values_list("pk", flat=True))
    first: dict[int, Any] = {}
    expert: set[int] = set()

    def seen(person: int, at: Any, role: str | None) -> None:
        if person in members or person is None:
            return
        if person not in first or at < first[person]:
            first[person] = at
        if role == ReviewerRole.EXPERT:
            expert.add(person)

    for row in (
        ReviewAssignment.objects.filter(project=project)
        .values("reviewer_id", "role")
        .annotate(at=Min("created_at"))
        .order_by()
    ):
        seen(row["reviewer_id"], row["at"], row["role"])
    for row in (
        Decision.objects.filter(revision__stage__project=project)
        .values("reviewer_id", "role")
        .annotate(at=Min("created_at"))
        .order_by()
    ):
        seen(row["reviewer_id"], row["at"], row["role"])
    for author_id, at in (
        Comment.objects.filter(revision__stage__project=project)
        .values("author_id")
        .annotate(at=Min("created_at"))
        .order_by()
        .values_list("author_id", "at")
    ):
        seen(author_id, at, None)
    order = sorted(first, key=lambda person: (first[person], person))
    return {
        person: f"Reviewer {_letters(n)}, "
        f"{ROLE_WORDS[ReviewerRole.EXPERT if person in expert else ReviewerRole.STAFF]}"
        for n, person in enumerate(order)
    }


class ReviewerNames:
    """How one reader sees a project's reviewers: by name, or (the team of a course with
    anonymous reviewers) by label."""

    def __init__(self, labels: dict[int, str] | None = None) -> None:
        self.labels = labels

    @property
    def anonymous(self) -> bool:
        return self.labels is not None

    def is_masked(self, person_id: int | None) -> bool:
        return self.labels is not None and person_id is not None and person_id in self.labels

    def name_of(self, person: Any) -> str:
        """The name to print for ``person`` (a user), e.g. in a notification's text."""
        if person is None:
            return ""
        if self.labels is not None and person.pk in self.labels:
            return self.labels[person.pk]
        return str(getattr(person, "name", person))

    def stand_in(self, person_id: int) -> MaskedReviewer:
        assert self.labels is not None
        return MaskedReviewer(pk=person_id, name=self.labels[person_id])

    def mask(self, rows: Iterable[Any], *fields: str) -> None:
        """Swap each row's person in ``fields`` (e.g. "reviewer", "author") for its stand-in."""
        if self.labels is None:
            return
        for row in rows:
            for name in fields:
                person_id = getattr(row, f"{name}_id", None)
                if person_id is not None and self.is_masked(person_id):
                    row._meta.get_field(name).set_cached_value(row, self.stand_in(person_id))

    def mask_threads(self, threads: Iterable[Any]) -> None:
        """Comment threads (selectors.Thread, dossier.ThreadEntry): the opening comment and
        every reply."""
        if self.labels is None:
            return
        for thread in threads:
            self.mask([thread.comment, *thread.replies], "author", "resolved_by")


NAMED = ReviewerNames()


def team_sees_anonymous(project: Project) -> bool:
    return bool(project.course.anonymous_reviewers)


def names_for_team(project: Project, *, fresh: bool = True) -> ReviewerNames:
    """How the team sees this project's reviewers (notifications to the team use it). The
    setting is read afresh: an event handler's project may carry a course read long before."""
    anonymous = (
        Course.objects.filter(pk=project.course_id)
        .values_list("anonymous_reviewers", flat=True)
        .first()
        if fresh
        else team_sees_anonymous(project)
    )
    if not anonymous:
        return NAMED
    return ReviewerNames(reviewer_labels(project))


def names_for(viewer: Any, project: Project, *, is_member: bool | None = None) -> ReviewerNames:
    """How ``viewer`` sees this project's reviewers: masked for its team when the course has
    anonymous reviewers, by name for everyone else (course staff, the reviewers)."""
    if not team_sees_anonymous(project):
        return NAMED
    if is_member is None:
        is_member = lifecycle_permissions.is_project_member(viewer, project)
    return names_for_team(project, fresh=False) if is_member else NAMED
