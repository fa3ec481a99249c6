"""The reviewer's queue: what waits for a person's decision and what they decided, as the
reviewer inbox and the home page's "waiting for you" panel print it.

These are the busiest reads of the review layer (every reviewer's inbox and every staff home
page), so they are written in SQL by hand rather than through the ORM: building and compiling
the equivalent querysets (subqueries, window aggregates, five joins) took ten times the CPU
of running them, most of each page (issue 9: a page must cost little beside a hello-world
view). The SQL is plain SQL that PostgreSQL and SQLite both run (window aggregates, scalar
subqueries, UNION ALL); values come back as tuples, converted where SQLite returns text. The
rules are the ones selectors.pending_review_stages() states with the ORM, and
tests/reviews/test_queue.py holds both to the same answers for every persona.

Three queries for a reviewer's inbox, one for anyone else's page:

* reviewer_scope(): where the user reviews (courses taught, projects they may decide on, their
  assignments, whether anything waits for staff confirmation, whether they are on a team);
* pending_slice(): one page of the stages waiting for their decision, with the counts over all
  pages as window aggregates of the same query;
* done_rows(): their latest standing decisions.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.utils import timezone

from lifecycle.models import STAFF_ROLES, ProjectStatus, StageStatus

from .models import AssignmentState, DecisionOutcome, ReviewerRole

DONE_COMMENT_CHARS = 120


def _date(value: Any) -> dt.date | None:
    """A DATE column: SQLite returns the text of one read through a subquery."""
    return dt.date.fromisoformat(value) if isinstance(value, str) else value


def _datetime(value: Any) -> dt.datetime | None:
    """A timestamp column: SQLite returns it (or its text, read through a subquery) in UTC
    without an offset."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


@dataclass(frozen=True, slots=True)
class Assignment:
    """One of the user's active assignments: a whole project (definition_id None) or a stage."""

    project_id: int
    definition_id: int | None
    role: str
    due_date: dt.date | None
    created_at: dt.datetime
    pk: int

    @property
    def precedence(self) -> tuple[bool, dt.datetime, int]:
        """A stage's own assignment before a whole-project one, then the oldest."""
        return (self.definition_id is None, self.created_at, self.pk)


@dataclass(frozen=True)
class ReviewerScope:
    """Where the user may review, read once per page."""

    staff_courses: list[tuple[int, str, str]] = field(default_factory=list)  # id, role, title
    assignments: list[Assignment] = field(default_factory=list)
    invitations_to_confirm: int = 0  # teams' invitations to the courses they teach
    experts_to_confirm: int = 0  # accepted experts of those courses not yet confirmed
    on_a_team: bool = False
    team_active_projects: list[int] = field(default_factory=list)  # ids, the user's active ones
    _by_project: dict[int, list[Assignment]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for a in self.assignments:
            self._by_project.setdefault(a.project_id, []).append(a)

    @property
    def staff_course_ids(self) -> list[int]:
        return [course_id for course_id, _, _ in self.staff_courses]

    @property
    def reviews(self) -> bool:
        """Whether anything can wait for their decision: they teach or are assigned."""
        return bool(self.staff_courses or self.assignments)

    @property
    def assignment_roles(self) -> set[str]:
        return {a.role for a in self.assignments}

    def assignment_for(self, project_id: int, definition_id: int) -> Assignment | None:
        """The assignment the user decides a stage under (the one the ORM query's subquery
        picks), or None for course staff deciding as such."""
        covering = [
            a
            for a in self._by_project.get(project_id, ())
            if a.definition_id in (None, definition_id)
        ]
        return min(covering, key=lambda a: a.precedence) if covering else None


# The first branch has a column of every type (PostgreSQL types the NULLs of the others by it).
_SCOPE_SQL = """
SELECT 'assigned', a.project_id, a.role, NULL, a.stage_definition_id, a.due_date, a.created_at,
       a.id
  FROM reviews_reviewassignment a
 WHERE a.reviewer_id = %(user)s AND a.state = %(active)s
UNION ALL
SELECT 'staff', m.course_id, m.role, c.title, NULL, NULL, NULL, NULL
  FROM lifecycle_membership m JOIN lifecycle_course c ON c.id = m.course_id
 WHERE m.user_id = %(user)s AND m.role IN ({staff_roles})
UNION ALL
SELECT 'team', t.project_id, p.status, NULL, NULL, NULL, NULL, NULL
  FROM lifecycle_project_members t JOIN lifecycle_project p ON p.id = t.project_id
 WHERE t.user_id = %(user)s
UNION ALL
SELECT 'invitations', COUNT(*), NULL, NULL, NULL, NULL, NULL, NULL
  FROM reviews_invitation i
 WHERE i.course_id IN (SELECT course_id FROM lifecycle_membership
                        WHERE user_id = %(user)s AND role IN ({staff_roles}))
   AND i.needs_confirmation = %(true)s AND i.confirmed_at IS NULL
   AND i.revoked_at IS NULL AND i.accepted_at IS NULL AND i.expires_at > %(now)s
"""
# Reads every assignment of every project of the courses taught (a large course's hundreds of
# projects): only for the pages that print the count (the home page), not the inbox.
_EXPERTS_SQL = """
UNION ALL
SELECT 'experts', COUNT(*), NULL, NULL, NULL, NULL, NULL, NULL
  FROM reviews_reviewassignment e JOIN lifecycle_project ep ON ep.id = e.project_id
 WHERE ep.course_id IN (SELECT course_id FROM lifecycle_membership
                         WHERE user_id = %(user)s AND role IN ({staff_roles}))
   AND e.state = %(active)s AND e.needs_confirmation = %(true)s AND e.confirmed_at IS NULL
"""


def reviewer_scope(user: Any, *, experts: bool = True) -> ReviewerScope:
    """One query (a UNION ALL of index scans on the user's own rows) that tells a page what
    else to ask: a student asks nothing about reviews, a reviewer nothing about teams, and
    nobody reads the confirmations list when nothing awaits confirmation. ``experts=False``
    leaves experts_to_confirm at 0 without counting them (for pages that do not print it)."""
    if not getattr(user, "is_authenticated", False):
        return ReviewerScope()
    staff_roles = {f"staff_role_{i}": role for i, role in enumerate(sorted(STAFF_ROLES))}
    sql = (_SCOPE_SQL + (_EXPERTS_SQL if experts else "")).format(
        staff_roles=", ".join(f"%({name})s" for name in staff_roles)
    )
    params = {
        "user": user.pk,
        "active": AssignmentState.ACTIVE,
        "true": True,
        "now": connection.ops.adapt_datetimefield_value(timezone.now()),
        **staff_roles,
    }
    staff: list[tuple[int, str, str]] = []
    assignments: list[Assignment] = []
    counts: dict[str, int] = {}
    teams: list[tuple[int, str]] = []
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for kind, ref, role, title, definition_id, due, created, pk in cursor.fetchall():
            if kind == "staff":
                staff.append((ref, role, title))
            elif kind == "assigned":
                assignments.append(
                    Assignment(ref, definition_id, role, _date(due), _datetime(created), pk)  # type: ignore[arg-type]
                )
            elif kind == "team":
                teams.append((ref, role))  # project id, its status
            else:
                counts[kind] = ref
    staff.sort(key=lambda course: (course[2], course[0]))
    return ReviewerScope(
        staff_courses=staff,
        assignments=assignments,
        invitations_to_confirm=counts.get("invitations", 0),
        experts_to_confirm=counts.get("experts", 0),
        on_a_team=bool(teams),
        team_active_projects=sorted(pk for pk, status in teams if status == ProjectStatus.ACTIVE),
    )


@dataclass(frozen=True, slots=True)
class PendingRow:
    """A stage waiting for the user's decision."""

    stage_id: int
    order: int
    stage_title: str
    cycle: int
    project_title: str
    course_title: str
    revision: int
    submitted_at: dt.datetime | None  # the stage's, else its current revision's
    due: dt.date | None  # the assignment's due date, else the stage's
    overdue: bool
    role: str  # ReviewerRole the user decides under


@dataclass(frozen=True)
class PendingSlice:
    rows: list[PendingRow]
    total: int  # over every page
    overdue: int  # over every page


# The stages in review of active projects that the user may decide (every stage of the
# projects of the courses they teach, every stage of a project they hold a whole-project
# assignment on, the stage of a stage assignment), minus those of their own team and those
# they have decided on the current revision of. The candidates are found from the user's own
# rows first (the projects of their courses, their assignments' projects: index scans), then
# the stages of those projects through the (project, status) index, never from every stage in
# review. The due date that makes one overdue is
# the one of the assignment the user decides under, else the stage's.
# One-row lookups (titles, numbers) are scalar subqueries rather than joins: PostgreSQL plans
# a six-table join in more CPU (about 1.5 ms) than the whole query then takes to run, and
# runs these for the rows of the page only.
_PENDING_SQL = """
SELECT s.id,
       (SELECT d."order" FROM lifecycle_stagedefinition d WHERE d.id = s.definition_id),
       (SELECT d.title FROM lifecycle_stagedefinition d WHERE d.id = s.definition_id),
       s.cycle, p.title,
       {course_title},
       (SELECT r.number FROM lifecycle_stagerevision r WHERE r.id = s.current_revision_id),
       s.submitted_at,
       CASE WHEN s.submitted_at IS NULL THEN (SELECT r.created_at FROM lifecycle_stagerevision r
                                               WHERE r.id = s.current_revision_id) END,
       s.project_id, s.definition_id, s.due_date, p.course_id,
       COUNT(*) OVER (),
       SUM(CASE WHEN {effective_due} < %(today)s THEN 1 ELSE 0 END) OVER ()
  FROM lifecycle_projectstage s
  JOIN lifecycle_project p ON p.id = s.project_id
 WHERE s.status = %(in_review)s AND p.status = %(active_project)s
   AND s.current_revision_id IS NOT NULL
   AND s.project_id IN ({candidates})
   AND ({may_decide})
   {not_on_team}
   AND NOT EXISTS (SELECT 1 FROM reviews_decision x
                    WHERE x.revision_id = s.current_revision_id AND x.reviewer_id = %(user)s
                      AND x.replaced_at IS NULL)
 ORDER BY CASE WHEN s.submitted_at IS NULL THEN 1 ELSE 0 END, s.submitted_at, s.id
 LIMIT %(limit)s OFFSET %(offset)s
"""
# A course's title is read for the courses the user does not teach only: scope has the others'
# (a subquery per row of the page is most of the page's cost beside finding the rows).
_COURSE_TITLE = "(SELECT c.title FROM lifecycle_course c WHERE c.id = p.course_id)"
_UNTAUGHT_COURSE_TITLE = (
    f"CASE WHEN p.course_id IN ({{courses}}) THEN NULL ELSE {_COURSE_TITLE} END"
)
_ASSIGNMENT_DUE = """COALESCE((SELECT a.due_date FROM reviews_reviewassignment a
           WHERE a.reviewer_id = %(user)s AND a.state = %(active)s
             AND a.project_id = s.project_id
             AND (a.stage_definition_id = s.definition_id OR a.stage_definition_id IS NULL)
           ORDER BY CASE WHEN a.stage_definition_id IS NULL THEN 1 ELSE 0 END,
                    a.created_at, a.id
           LIMIT 1), s.due_date)"""
_ASSIGNED = """EXISTS (SELECT 1 FROM reviews_reviewassignment a
           WHERE a.reviewer_id = %(user)s AND a.state = %(active)s
             AND a.project_id = s.project_id
             AND (a.stage_definition_id = s.definition_id OR a.stage_definition_id IS NULL))"""
_TAUGHT_PROJECTS = "SELECT tp.id FROM lifecycle_project tp WHERE tp.course_id IN ({courses})"
_ASSIGNED_PROJECTS = """SELECT ap.project_id FROM reviews_reviewassignment ap
                         WHERE ap.reviewer_id = %(user)s AND ap.state = %(active)s"""
_NOT_ON_TEAM = """AND NOT EXISTS (SELECT 1 FROM lifecycle_project_members t
                    WHERE t.project_id = s.project_id AND t.user_id = %(user)s)"""


def pending_slice(user: Any, scope: ReviewerScope, *, offset: int, limit: int) -> PendingSlice:
    """``limit`` stages waiting for the user's decision from ``offset``, oldest submission
    first, and the counts over all of them: window aggregates over the rows the slice is cut
    from, so one query. A slice past the end has no row to carry the counts: then the first
    slice is read for them (a page past the end is rare; the view shows the last page)."""
    if not scope.reviews:  # neither teaches nor is assigned: no query at all
        return PendingSlice([], 0, 0)
    params: dict[str, Any] = {
        "user": user.pk,
        "active": AssignmentState.ACTIVE,
        "in_review": StageStatus.IN_REVIEW,
        "active_project": ProjectStatus.ACTIVE,
        "today": connection.ops.adapt_datefield_value(timezone.localdate()),
        "limit": limit,
        "offset": offset,
    }
    candidates, may_decide = [], []
    course_title_sql = _COURSE_TITLE
    if scope.staff_courses:
        params.update({f"c{i}": pk for i, pk in enumerate(scope.staff_course_ids)})
        courses = ", ".join(f"%(c{i})s" for i in range(len(scope.staff_courses)))
        candidates.append(_TAUGHT_PROJECTS.format(courses=courses))
        may_decide.append(f"p.course_id IN ({courses})")
        course_title_sql = _UNTAUGHT_COURSE_TITLE.format(courses=courses)
    if scope.assignments:
        candidates.append(_ASSIGNED_PROJECTS)
        may_decide.append(_ASSIGNED)
    sql = _PENDING_SQL.format(
        course_title=course_title_sql,
        effective_due=_ASSIGNMENT_DUE if scope.assignments else "s.due_date",
        candidates=" UNION ALL ".join(candidates),
        may_decide=" OR ".join(may_decide),
        not_on_team=_NOT_ON_TEAM if scope.on_a_team else "",
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchall()
        if not found and offset:
            cursor.execute(sql, {**params, "offset": 0, "limit": 1})
            counted = cursor.fetchall()
            return PendingSlice([], *(counted[0][-2:] if counted else (0, 0)))
    today = timezone.localdate()
    course_titles = {course_id: title for course_id, _, title in scope.staff_courses}
    rows = []
    for (
        pk,
        order,
        title,
        cycle,
        project_title,
        course_title,
        number,
        submitted,
        revised,
        project_id,
        definition_id,
        stage_due,
        course_id,
    ) in (row[:13] for row in found):
        assignment = scope.assignment_for(project_id, definition_id)
        due = (assignment.due_date if assignment else None) or _date(stage_due)
        rows.append(
            PendingRow(
                stage_id=pk,
                order=order,
                stage_title=title,
                cycle=cycle,
                project_title=project_title,
                course_title=course_titles[course_id] if course_title is None else course_title,
                revision=number,
                submitted_at=_datetime(submitted) or _datetime(revised),
                due=due,
                overdue=due is not None and due < today,
                role=assignment.role if assignment else ReviewerRole.STAFF,
            )
        )
    total, overdue = found[0][-2:] if found else (0, 0)
    return PendingSlice(rows, total, overdue or 0)


@dataclass(frozen=True, slots=True)
class DoneRow:
    """One of the user's standing decisions."""

    stage_id: int
    order: int
    stage_title: str
    project_title: str
    revision_id: int
    revision: int
    approved: bool
    stale_since: int | None  # the current revision's number when a newer one was submitted
    stage_status: str
    created_at: dt.datetime
    comment: str  # at most DONE_COMMENT_CHARS + 1 characters: enough to know it was cut


# One-row lookups are scalar subqueries, as in _PENDING_SQL.
_DONE_SQL = """
SELECT r.stage_id,
       (SELECT d."order" FROM lifecycle_stagedefinition d WHERE d.id = s.definition_id),
       (SELECT d.title FROM lifecycle_stagedefinition d WHERE d.id = s.definition_id),
       (SELECT p.title FROM lifecycle_project p WHERE p.id = s.project_id),
       x.revision_id, r.number, x.outcome, s.current_revision_id,
       (SELECT cr.number FROM lifecycle_stagerevision cr WHERE cr.id = s.current_revision_id),
       s.status, x.created_at, SUBSTR(x.comment, 1, %(comment_chars)s)
  FROM reviews_decision x
  JOIN lifecycle_stagerevision r ON r.id = x.revision_id
  JOIN lifecycle_projectstage s ON s.id = r.stage_id
 WHERE x.reviewer_id = %(user)s AND x.replaced_at IS NULL
 ORDER BY x.created_at DESC, x.id DESC
 LIMIT %(limit)s
"""


def done_rows(user: Any, *, limit: int) -> list[DoneRow]:
    """The user's ``limit`` latest standing decisions, newest first (one query)."""
    if not getattr(user, "is_authenticated", False):
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            _DONE_SQL,
            {"user": user.pk, "limit": limit, "comment_chars": DONE_COMMENT_CHARS + 1},
        )
        found = cursor.fetchall()
    return [
        DoneRow(
            stage_id=stage_id,
            order=order,
            stage_title=title,
            project_title=project,
            revision_id=revision_id,
            revision=number,
            approved=outcome == DecisionOutcome.APPROVE,
            stale_since=current_number if current_id != revision_id else None,
            stage_status=status,
            created_at=_datetime(created_at),  # type: ignore[arg-type]
            comment=comment or "",
        )
        for (
            stage_id,
            order,
            title,
            project,
            revision_id,
            number,
            outcome,
            current_id,
            current_number,
            status,
            created_at,
            comment,
        ) in found
    ]
