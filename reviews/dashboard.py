"""Reads behind the course staff's board: every project of a course by the stages of its
template, and where the reviews get stuck.

Everything is batched: the board costs the same, fixed number of queries with 10 projects as
with 300 (an instructor opens it for the whole cohort). What covers the whole course (counts,
bottlenecks, reviewer quality, the order of the filtered projects, the stage columns and the
people a bulk action may assign) is a BoardSummary kept in the cache until the course's audit
trail moves on; a page then reads the stages of its own 50 projects only, as plain values
(no model instances: a page of 50 projects is 350 stages), and prints them in one pass.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any, overload

from django.core.cache import cache
from django.db.models import Exists, F, OuterRef, Q, Subquery, Value
from django.http import Http404
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.dates import MONTHS_3
from django.utils.safestring import SafeString, mark_safe
from django.utils.timesince import TIME_STRINGS, timesince
from django.utils.translation import get_language

from accounts.models import User
from lifecycle.models import (
    STAFF_ROLES,
    AuditEvent,
    Course,
    Membership,
    Outcome,
    Project,
    ProjectStage,
    ProjectStatus,
    StageDefinition,
    StageStatus,
)
from lifecycle.selectors import shown_status

from . import quality
from .models import AssignmentState, Decision, Invitation, ReviewAssignment
from .quality import QualityTable, course_decisions, person_name, reviewer_quality

SORTS = {
    "title": "Title",
    "stage": "Current stage (furthest behind first)",
    "activity": "Last activity (stalest first)",
}
# The board never reads a stage's draft: leave the large JSON columns in the database.
_DRAFT_FIELDS = ("draft_answers", "draft_changed_at", "draft_changed_by", "override_justification")
CHART_WEEKS = 8


def get_course_for_staff(user: Any, course_pk: int, *, audit_head: bool = False) -> Course:
    """The course, for its instructors and TAs; 404 for everyone else. One query: the
    viewer's role comes with the course (lifecycle.permissions.is_course_staff's rule), and
    with ``audit_head`` the seq of the course's latest audit event (``course.audit_head``,
    the board summary's cache key)."""
    if not getattr(user, "is_authenticated", False):
        raise Http404("No such course.")
    role = Membership.objects.filter(course=OuterRef("pk"), user_id=user.pk).values("role")[:1]
    courses = Course.objects.filter(pk=course_pk).annotate(viewer_role=Subquery(role))
    if audit_head:
        courses = courses.annotate(audit_head=Subquery(_audit_head(OuterRef("pk"))[:1]))
    course = courses.first()
    if course is None or course.viewer_role not in STAFF_ROLES:  # type: ignore[attr-defined]
        raise Http404("No such course.")
    return course


def _audit_head(course: Any) -> Any:
    return AuditEvent.objects.filter(course=course).order_by("-seq").values("seq")


# --- the matrix -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Column:
    """A stage of the course's template, as the board heads a column with it."""

    pk: int
    order: int
    title: str


@dataclass(frozen=True, slots=True)
class Person:
    pk: int
    name: str
    email: str


@dataclass(slots=True)
class BoardProject:
    """The columns of a project the board reads."""

    pk: int
    title: str
    status: str
    outcome: str
    cycle: int
    current_stage_id: int | None
    last_activity: dt.datetime | None

    @property
    def is_active(self) -> bool:
        return self.status == ProjectStatus.ACTIVE

    def get_outcome_display(self) -> str:
        return _OUTCOME_LABELS.get(self.outcome, self.outcome)


@dataclass(slots=True)
class BoardStage:
    """The columns of a project stage the board reads, with its definition's order and
    title."""

    pk: int
    project_id: int
    definition_id: int
    order: int
    title: str
    cycle: int
    status: str
    current_revision_id: int | None
    due_date: dt.date | None
    opened_at: dt.datetime | None
    approved_at: dt.datetime | None

    def get_status_display(self) -> str:
        return _STATUS_LABELS.get(self.status, self.status)


@dataclass(slots=True)
class BoardAssignment:
    """An assignment of a reviewer to a project (stage_definition_id None: every stage)."""

    pk: int
    project_id: int
    stage_definition_id: int | None
    reviewer: Person
    due_date: dt.date | None
    state: str
    decided: bool

    @property
    def reviewer_id(self) -> int:
        return self.reviewer.pk

    def covers(self, definition_id: int) -> bool:  # as ReviewAssignment.covers
        return self.stage_definition_id is None or self.stage_definition_id == definition_id


_STATUS_LABELS = {value: str(label) for value, label in StageStatus.choices}
_OUTCOME_LABELS = {value: str(label) for value, label in Outcome.choices}


@dataclass(slots=True)
class Cell:
    """One stage of one project in its current cycle (None: the project's template version has
    no stage of this order)."""

    order: int
    stage: BoardStage | None
    reviewers: list[str] = field(default_factory=list)
    due: dt.date | None = None
    overdue: bool = False

    @property
    def status(self) -> str:
        return self.stage.status if self.stage else ""


@dataclass
class Row:
    project: BoardProject
    cells: list[Cell]
    members: list[Person]
    reviewer_ids: set[int]
    last_activity: dt.datetime | None

    @property
    def current(self) -> Cell | None:
        stage_id = self.project.current_stage_id
        return next((c for c in self.cells if c.stage and c.stage.pk == stage_id), None)

    @property
    def current_order(self) -> int:
        current = self.current
        return current.order if current else 0

    @property
    def overdue(self) -> bool:
        return any(c.overdue for c in self.cells)


@dataclass
class BoardFilters:
    stage: int | None = None  # the order of the project's current stage
    status: str = ""  # the status of the project's current stage
    reviewer: int | None = None  # an active assignment of this person
    overdue: bool = False
    team: str = ""  # part of a member's name or e-mail address
    sort: str = "title"

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> BoardFilters:
        def number(name: str) -> int | None:
            value = (query.get(name) or "").strip()
            return int(value) if value.isdigit() else None

        status = query.get("status") or ""
        sort = query.get("sort") or "title"
        return cls(
            stage=number("stage"),
            status=status if status in StageStatus.values else "",
            reviewer=number("reviewer"),
            overdue=(query.get("overdue") or "") in {"1", "on", "true"},
            team=(query.get("team") or "").strip()[:100],
            sort=sort if sort in SORTS else "title",
        )

    @property
    def active(self) -> bool:
        return bool(self.stage or self.status or self.reviewer or self.overdue or self.team)

    def matches(self, row: Row) -> bool:
        current = row.current
        # A concluded project stays where it stopped: it is at no stage and in no status.
        if (self.stage is not None or self.status) and not row.project.is_active:
            return False
        if self.stage is not None and row.current_order != self.stage:
            return False
        if self.status and (current is None or current.status != self.status):
            return False
        if self.reviewer is not None and self.reviewer not in row.reviewer_ids:
            return False
        if self.overdue and not row.overdue:
            return False
        if self.team:
            needle = self.team.casefold()
            if not any(
                needle in m.name.casefold() or needle in m.email.casefold() for m in row.members
            ):
                return False
        return True


@dataclass
class Counts:
    in_review: int = 0
    changes_requested: int = 0
    overdue: int = 0
    approved_this_week: int = 0
    concluded: int = 0
    not_pursued: int = 0


@dataclass
class Board:
    course: Course
    definitions: list[Column]
    rows: Sequence[Row]  # filtered and sorted; built for the slice read (BoardRows)
    total: int  # projects in the course
    counts: Counts
    reviewers: list[Person]  # everyone with an active assignment in the course, for the filter
    bottlenecks: Bottlenecks
    quality: QualityTable  # per reviewer, capped (open flags first)
    assignable: list[Person]  # whom a bulk action may assign (assignable_people)
    panels_html: SafeString  # the bottlenecks and reviewer quality, printed


def _timeline(stages: Iterable[Any], cycles: Mapping[int, int]) -> dict[tuple, Any]:
    """(project id, stage order) → the row current_cycle_timeline() shows: the current cycle's,
    or, before a loop-back point, the latest earlier cycle's. ``stages`` (with an ``order``)
    come newest cycle first within each order."""
    latest: dict[tuple[int, int], Any] = {}
    for stage in stages:
        if stage.cycle <= cycles.get(stage.project_id, 0):
            latest.setdefault((stage.project_id, stage.order), stage)
    return latest


def timeline_stages_of_order(projects: Iterable[Project], order: int) -> dict[int, ProjectStage]:
    """Project id → the stage of that order in each project's current timeline. One query."""
    projects = list(projects)
    stages = (
        ProjectStage.objects.filter(project__in=projects, definition__order=order)
        .defer(*_DRAFT_FIELDS)
        .select_related("definition")
        .annotate(order=F("definition__order"))
        .order_by("project_id", "-cycle")
    )
    timeline = _timeline(stages, {p.pk: p.cycle for p in projects})
    return {project_id: stage for (project_id, _), stage in timeline.items()}


@dataclass
class _Read:
    """What the board reads of some projects of a course (all of them: ``project_ids`` None)."""

    projects: list[BoardProject]
    stages: list[BoardStage]
    members: dict[int, list[Person]]
    assignments: list[BoardAssignment]  # active ones, stage assignments first


def _read(
    course: Course, project_ids: list[int] | None, *, ended: list[BoardAssignment] | None = None
) -> _Read:
    """Four queries: the projects with their last activity, their members, their stages with
    the definitions' order and title, and their reviewer assignments. Only the active
    assignments are kept unless ``ended`` is a list to receive the others (with whether a
    decision was made under each: the quality table's declines)."""
    in_scope = (
        Q(project_id__in=project_ids) if project_ids is not None else Q(project__course=course)
    )
    projects = Project.objects.filter(course=course)
    if project_ids is not None:
        projects = projects.filter(pk__in=project_ids)
    last_event = AuditEvent.objects.filter(project=OuterRef("pk")).order_by("-seq")
    project_rows = [
        BoardProject(*values)
        for values in projects.annotate(last_activity=Subquery(last_event.values("created_at")[:1]))
        .order_by("title", "pk")
        .values_list(
            "pk", "title", "status", "outcome", "cycle", "current_stage_id", "last_activity"
        )
    ]
    members: dict[int, list[Person]] = defaultdict(list)
    for project_id, user_id, display_name, email in (
        Project.members.through.objects.filter(in_scope)
        .order_by("user__display_name", "user__email")
        .values_list("project_id", "user_id", "user__display_name", "user__email")
    ):
        members[project_id].append(Person(user_id, person_name(display_name, email), email))
    stages = [
        BoardStage(*values)
        for values in ProjectStage.objects.filter(in_scope)
        .order_by("project_id", "definition__order", "-cycle")
        .values_list(
            "pk",
            "project_id",
            "definition_id",
            "definition__order",
            "definition__title",
            "cycle",
            "status",
            "current_revision_id",
            "due_date",
            "opened_at",
            "approved_at",
        )
    ]
    assignments = ReviewAssignment.objects.filter(in_scope)
    if ended is None:
        assignments = assignments.filter(state=AssignmentState.ACTIVE).annotate(
            decided=Value(False)
        )
    else:
        decided_under = Decision.objects.filter(assignment_id=OuterRef("pk"))
        assignments = assignments.annotate(decided=Exists(decided_under))
    people: dict[int, Person] = {}
    active = []
    for (
        pk,
        project_id,
        definition_id,
        reviewer_id,
        name,
        email,
        due,
        state,
        decided,
    ) in assignments.order_by(
        F("stage_definition_id").asc(nulls_last=True), "created_at", "pk"
    ).values_list(
        "pk",
        "project_id",
        "stage_definition_id",
        "reviewer_id",
        "reviewer__display_name",
        "reviewer__email",
        "due_date",
        "state",
        "decided",
    ):
        person = people.get(reviewer_id)
        if person is None:
            person = people[reviewer_id] = Person(reviewer_id, person_name(name, email), email)
        assignment = BoardAssignment(pk, project_id, definition_id, person, due, state, decided)
        if state == AssignmentState.ACTIVE:
            active.append(assignment)
        elif ended is not None:
            ended.append(assignment)
    return _Read(project_rows, stages, members, active)


def _build_rows(read: _Read, orders: list[int], today: dt.date) -> list[Row]:
    """The rows of the projects read, in title order, each cell computed once."""
    timeline = _timeline(read.stages, {p.pk: p.cycle for p in read.projects})
    by_project: dict[int, list[BoardAssignment]] = defaultdict(list)
    for assignment in read.assignments:
        by_project[assignment.project_id].append(assignment)

    approved = str(StageStatus.APPROVED)  # a plain string: no enum lookup per cell
    rows = []
    for project in read.projects:
        assignments = by_project.get(project.pk, [])
        # covers(): the stage's own assignments, then the whole-project ones, each in the
        # order read (stage assignments first, then by creation).
        whole = [a for a in assignments if a.stage_definition_id is None]
        active = project.is_active
        cells = []
        for order in orders:
            stage = timeline.get((project.pk, order))
            if stage is None:
                cells.append(Cell(order, None))
                continue
            due = stage.due_date
            reviewers: list[str] = []
            if assignments:
                definition_id = stage.definition_id
                covering = [a for a in assignments if a.stage_definition_id == definition_id]
                covering += whole
                if covering:
                    reviewers = list(dict.fromkeys([a.reviewer.name for a in covering]))
                    for a in covering:
                        if a.due_date and (due is None or a.due_date < due):
                            due = a.due_date
            overdue = active and due is not None and due < today and stage.status != approved
            cells.append(Cell(order, stage, reviewers, due, overdue))
        rows.append(
            Row(
                project=project,
                cells=cells,
                members=read.members.get(project.pk, []),
                reviewer_ids={a.reviewer.pk for a in assignments},
                last_activity=project.last_activity,
            )
        )
    return rows


@dataclass
class BoardSummary:
    """What the board shows of the whole course: the ids of the projects that match the filters
    in their order, the counts, the reviewers for the filter, the bottlenecks and reviewer
    quality, the stage columns and the people a bulk action may assign. Computed from every
    row of the course, then kept in the cache until the course's audit trail moves on (every
    write is a service with an audit event: stages, reviews, ratings, flags, memberships and
    invitations all record one in the course's trail) or the day changes; a page of the board
    then reads only its own rows."""

    project_ids: list[int]
    total: int
    counts: Counts
    reviewers: list[Person]
    bottlenecks: Bottlenecks
    quality: QualityTable
    definitions: list[Column]
    assignable: list[Person]
    # The bottlenecks and reviewer quality as HTML: a function of the summary alone, printed
    # once when it is computed rather than by every page view that reads it.
    panels_html: SafeString


SUMMARY_SECONDS = 600  # also bounds what a write outside the course's trail can leave stale
_UNREAD = object()
SUMMARY_VERSION = 2  # of BoardSummary's shape: a summary cached by older code is not read


def _summary_key(course: Course, filters: BoardFilters, today: dt.date) -> str:
    # Read with the course by the board's view (get_course_for_staff(audit_head=True)).
    head = getattr(course, "audit_head", _UNREAD)
    if head is _UNREAD:
        head = next(iter(_audit_head(course)[:1].values_list("seq", flat=True)), None)
    shape = (
        f"{filters.stage}|{filters.status}|{filters.reviewer}|{int(filters.overdue)}|"
        f"{filters.sort}|{hashlib.sha256(filters.team.encode()).hexdigest()[:16]}"
    )
    # The template version is in the key: a course moved to a new version gets new columns.
    return (
        f"board:v{SUMMARY_VERSION}:{course.pk}:{course.template_id}:{head}:{today.isoformat()}:"
        f"{shape}"
    )


def _summary(
    course: Course, filters: BoardFilters, today: dt.date
) -> tuple[BoardSummary, list[Row] | None]:
    key = _summary_key(course, filters, today)
    cached = cache.get(key)
    if cached is not None:
        return cached, None
    definitions = [
        Column(pk, order, title)
        for pk, order, title in StageDefinition.objects.filter(template_id=course.template_id)
        .order_by("order")
        .values_list("pk", "order", "title")
    ]
    ended: list[BoardAssignment] = []
    read = _read(course, None, ended=ended)
    rows = _build_rows(read, [d.order for d in definitions], today)
    stages, assignments = read.stages, read.assignments

    counts = Counts()
    week_start = today - dt.timedelta(days=today.weekday())
    for row in rows:
        if not row.project.is_active:
            if row.project.outcome == Outcome.NOT_PURSUED:
                counts.not_pursued += 1
            else:
                counts.concluded += 1
            continue
        status = row.current.status if row.current else ""
        counts.in_review += status == StageStatus.IN_REVIEW
        counts.changes_requested += status == StageStatus.CHANGES_REQUESTED
        counts.overdue += row.overdue
    counts.approved_this_week = sum(
        1 for s in stages if s.approved_at and timezone.localdate(s.approved_at) >= week_start
    )

    reviewers = sorted(
        {a.reviewer.pk: a.reviewer for a in assignments}.values(), key=lambda u: u.name.casefold()
    )
    shown = [row for row in rows if filters.matches(row)]
    if filters.sort == "stage":
        shown.sort(key=lambda r: (not r.project.is_active, r.current_order, r.project.title))
    elif filters.sort == "activity":
        oldest = dt.datetime.min.replace(tzinfo=dt.UTC)
        shown.sort(key=lambda r: (r.last_activity or oldest, r.project.title))
    decisions = course_decisions(course)
    bottlenecks = _bottlenecks(
        definitions=definitions,
        rows=rows,
        stages=stages,
        assignments=assignments,
        decisions=decisions,
        today=today,
    )
    table = reviewer_quality(
        course=course,
        cap=quality.BOARD_REVIEWER_CAP,
        decisions=decisions,
        declined=[
            (a.reviewer.pk, a.reviewer.name, a.reviewer.email)
            for a in ended
            if a.state in (AssignmentState.WITHDRAWN, AssignmentState.REVOKED) and not a.decided
        ],
    )
    summary = BoardSummary(
        project_ids=[row.project.pk for row in shown],
        total=len(rows),
        counts=counts,
        reviewers=reviewers,
        bottlenecks=bottlenecks,
        quality=table,
        definitions=definitions,
        assignable=[Person(u.pk, u.name, u.email) for u in assignable_people(course)],
        panels_html=mark_safe(  # a template's output
            render_to_string(
                "reviews/partials/board_panels.html",
                {"course": course, "b": bottlenecks, "quality": table},
            )
        ),
    )
    cache.set(key, summary, SUMMARY_SECONDS)
    return summary, shown


class BoardRows(Sequence[Row]):
    """The filtered, sorted rows of the board, built only for the slice that is read: the
    paginator's count is the summary's, and a page of 50 reads 50 projects' stages."""

    def __init__(
        self,
        course: Course,
        orders: list[int],
        today: dt.date,
        project_ids: list[int],
        built: list[Row] | None = None,
    ) -> None:
        self.course, self.orders, self.today = course, orders, today
        self.project_ids = project_ids
        self._built = {row.project.pk: row for row in built} if built is not None else None

    def __len__(self) -> int:
        return len(self.project_ids)

    def _rows(self, ids: list[int]) -> list[Row]:
        if self._built is not None:
            return [self._built[pk] for pk in ids]
        if not ids:
            return []
        rows = _build_rows(_read(self.course, ids), self.orders, self.today)
        by_pk = {row.project.pk: row for row in rows}
        # A project deleted since the summary was made is left out, not a 500.
        return [by_pk[pk] for pk in ids if pk in by_pk]

    @overload
    def __getitem__(self, index: int) -> Row: ...

    @overload
    def __getitem__(self, index: slice) -> list[Row]: ...

    def __getitem__(self, index: int | slice) -> Row | list[Row]:
        if isinstance(index, slice):
            return self._rows(self.project_ids[index])
        return self._rows([self.project_ids[index]])[0]

    def __iter__(self) -> Iterator[Row]:
        return iter(self._rows(self.project_ids))


def course_board(*, course: Course, filters: BoardFilters | None = None) -> Board:
    filters = filters or BoardFilters()
    today = timezone.localdate()
    summary, built = _summary(course, filters, today)
    return Board(
        course=course,
        definitions=summary.definitions,
        rows=BoardRows(
            course, [d.order for d in summary.definitions], today, summary.project_ids, built
        ),
        total=summary.total,
        counts=summary.counts,
        reviewers=summary.reviewers,
        bottlenecks=summary.bottlenecks,
        quality=summary.quality,
        assignable=summary.assignable,
        panels_html=summary.panels_html,
    )


# --- bottlenecks ----------------------------------------------------------------------------


@dataclass
class ReviewerLoad:
    reviewer_id: int
    name: str
    email: str
    pending: int = 0
    overdue: int = 0
    decided: int = 0
    median_days_to_decide: float | None = None


@dataclass
class StageTime:
    definition: Column
    approved: int
    median_days: float | None
    p90_days: float | None


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    x: float
    y: float
    width: float
    height: float

    @property
    def centre(self) -> float:
        return round(self.x + self.width / 2, 1)

    @property
    def value_y(self) -> float:
        return round(self.y - 4, 1)


@dataclass(frozen=True)
class BarChart:
    title: str
    bars: list[Bar]
    width: int
    height: int
    baseline: float
    maximum: int

    @property
    def label_y(self) -> float:
        return self.height - 10


@dataclass
class Bottlenecks:
    reviewers: list[ReviewerLoad]
    stage_times: list[StageTime]
    projects_per_stage: BarChart
    approvals_per_week: BarChart
    unassigned_in_review: int


def percentile(values: list[float], share: float) -> float | None:
    """Nearest-rank percentile: a value that occurred, never an interpolation."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def _days(delta: dt.timedelta) -> float:
    return delta.total_seconds() / 86400


def bar_chart(
    title: str, items: list[tuple[str, int]], *, width: int = 560, height: int = 200
) -> BarChart:
    """Bars laid out for an inline SVG: labels below the baseline, values above each bar."""
    top, bottom, gap = 18.0, 30.0, 8.0
    plot = height - top - bottom
    maximum = max((value for _, value in items), default=0)
    slot = width / max(len(items), 1)
    bars = []
    for i, (label, value) in enumerate(items):
        bar_height = plot * value / maximum if maximum else 0.0
        bars.append(
            Bar(
                label=label,
                value=value,
                x=round(i * slot + gap / 2, 1),
                y=round(top + plot - bar_height, 1),
                width=round(slot - gap, 1),
                height=round(bar_height, 1),
            )
        )
    return BarChart(title, bars, width, height, top + plot, maximum)


def _bottlenecks(
    *,
    definitions: list[Column],
    rows: list[Row],
    stages: list[BoardStage],
    assignments: list[BoardAssignment],
    decisions: list[dict[str, Any]],
    today: dt.date,
) -> Bottlenecks:
    standing = {(d["reviewer_id"], d["revision_id"]) for d in decisions if not d["replaced_at"]}
    loads: dict[int, ReviewerLoad] = {}
    for a in assignments:
        person = a.reviewer
        loads.setdefault(person.pk, ReviewerLoad(person.pk, person.name, person.email))
    days_to_decide: dict[int, list[float]] = defaultdict(list)
    for d in decisions:
        if d["reviewer_id"] not in loads:
            email = d["reviewer__email"]
            name = person_name(d["reviewer__display_name"], email)
            loads[d["reviewer_id"]] = ReviewerLoad(d["reviewer_id"], name, email)
        days_to_decide[d["reviewer_id"]].append(_days(d["created_at"] - d["revision__created_at"]))
    for reviewer_id, values in days_to_decide.items():
        loads[reviewer_id].decided = len(values)
        loads[reviewer_id].median_days_to_decide = statistics.median(values)

    by_project: dict[int, list[BoardAssignment]] = defaultdict(list)
    for a in assignments:
        by_project[a.project_id].append(a)
    unassigned = 0
    for row in rows:
        if not row.project.is_active:
            continue
        for cell in row.cells:
            stage = cell.stage
            if stage is None or stage.status != StageStatus.IN_REVIEW:
                continue
            covering = [a for a in by_project[row.project.pk] if a.covers(stage.definition_id)]
            unassigned += not covering
            # A reviewer with a stage and a whole-project assignment waits on it once; the
            # stage assignment (sorted first) names the due date.
            seen: set[int] = set()
            for a in covering:
                if a.reviewer_id in seen or (a.reviewer_id, stage.current_revision_id) in standing:
                    continue
                seen.add(a.reviewer_id)
                load = loads[a.reviewer_id]
                load.pending += 1
                due = a.due_date or stage.due_date
                load.overdue += due is not None and due < today

    per_order: dict[int, list[float]] = defaultdict(list)
    for stage in stages:
        if stage.approved_at and stage.opened_at:
            per_order[stage.order].append(_days(stage.approved_at - stage.opened_at))
    stage_times = [
        StageTime(
            definition=d,
            approved=len(per_order[d.order]),
            median_days=statistics.median(per_order[d.order]) if per_order[d.order] else None,
            p90_days=percentile(per_order[d.order], 0.9),
        )
        for d in definitions
    ]

    at_stage: dict[int, int] = defaultdict(int)
    finished = 0
    for row in rows:
        if row.project.is_active:
            at_stage[row.current_order] += 1
        else:
            finished += 1
    projects_per_stage = bar_chart(
        "Projects per current stage",
        [(str(d.order), at_stage[d.order]) for d in definitions] + [("Done", finished)],
    )

    monday = today - dt.timedelta(days=today.weekday())
    weeks = [monday - dt.timedelta(weeks=n) for n in range(CHART_WEEKS - 1, -1, -1)]
    per_week: dict[dt.date, int] = defaultdict(int)
    for stage in stages:
        if stage.approved_at:
            day = timezone.localdate(stage.approved_at)
            per_week[day - dt.timedelta(days=day.weekday())] += 1
    approvals_per_week = bar_chart(
        f"Stage approvals per week (last {CHART_WEEKS})",
        [(week.strftime("%d %b"), per_week[week]) for week in weeks],
    )
    return Bottlenecks(
        reviewers=sorted(loads.values(), key=lambda r: (-r.pending, -r.overdue, r.name.casefold())),
        stage_times=stage_times,
        projects_per_stage=projects_per_stage,
        approvals_per_week=approvals_per_week,
        unassigned_in_review=unassigned,
    )


# --- choices for the bulk actions -----------------------------------------------------------


def assignable_people(course: Course) -> list[User]:
    """Course staff and everyone who accepted an expert invitation to this course."""
    staff = Membership.objects.filter(course=course, role__in=STAFF_ROLES).values("user_id")
    experts = Invitation.objects.filter(course=course, accepted_by__isnull=False).values(
        "accepted_by_id"
    )
    # One list of ids (a UNION), not two IN tests OR-ed: that plan reads every user there is
    # (45,000 in the benchmark's large size: 30 ms against well under one).
    ids = staff.order_by().union(experts.order_by())
    return list(User.objects.filter(pk__in=ids, is_active=True).order_by("display_name", "email"))


def definitions_of_order(projects: Iterable[Project], order: int) -> dict[int, StageDefinition]:
    """Template id → its stage definition of that order (projects may pin older versions)."""
    template_ids = {p.template_id for p in projects}
    return {
        d.template_id: d
        for d in StageDefinition.objects.filter(template_id__in=template_ids, order=order)
    }


def projects_of_course(course: Course, pks: Iterable[int]) -> list[Project]:
    return list(
        Project.objects.filter(course=course, pk__in=list(pks))
        .select_related("course", "current_stage__definition")
        .order_by("title", "pk")
    )


# --- one page of the matrix, ready to print ---------------------------------------------------


def _url_pattern(name: str) -> str:
    """A URL with a placeholder for its one integer argument: reverse() once per page."""
    return reverse(name, args=[_PLACEHOLDER]).replace(str(_PLACEHOLDER), "{}")


_PLACEHOLDER = 987654321


class _DayMonth(dict):
    """date → dateformat's "j M" ("10 Nov"), each date formatted once a page and each month's
    (lazy) name translated once: no formatter object per cell."""

    def __init__(self) -> None:
        super().__init__()
        self.months: dict[int, str] = {}

    def __missing__(self, day: dt.date) -> str:
        month = self.months.get(day.month)
        if month is None:
            month = self.months[day.month] = str(MONTHS_3[day.month]).title()
        value = self[day] = f"{day.day} {month}"
        return value


class _Memo(dict):
    """value → its escaped HTML, each distinct value escaped once a page (stage titles,
    reviewer lists and labels repeat from row to row)."""

    def __missing__(self, key: str) -> str:
        value = self[key] = escape(key)
        return value


class _UnitText:
    """One of timesince's unit strings ("%(num)d day"/"%(num)d days"), each number
    translated once per language and process: timesince per row, with the lazy
    translations evaluated afresh each time, was a fifth of the rows' time."""

    def __init__(self, lazy: Any) -> None:
        self.lazy = lazy
        self.texts: dict[int, str] = {}

    def __mod__(self, values: Mapping[str, int]) -> str:
        number = values["num"]
        text = self.texts.get(number)
        if text is None:
            text = self.texts[number] = str(self.lazy % values)
        return text


_UNIT_TEXTS: dict[str, dict[str, _UnitText]] = {}


def _time_strings() -> dict[str, _UnitText]:
    language = get_language() or ""
    strings = _UNIT_TEXTS.get(language)
    if strings is None:
        strings = _UNIT_TEXTS[language] = {k: _UnitText(v) for k, v in TIME_STRINGS.items()}
    return strings


def rows_html(rows: Iterable[Row]) -> SafeString:
    """The table rows of one page of the board as HTML, every row and cell built in one pass
    of plain string formatting: no template node, {% url %} or filter per row or cell (28,000
    variable nodes and 2,400 {% url %} for 300 projects once). Every value that is not ours
    goes through html.escape (what django.utils.html.escape does, without its lazy-string
    wrapper, which was a third of the cells' time)."""
    stage_url = _url_pattern("reviews:review_stage")
    project_url = _url_pattern("lifecycle:project_detail")
    now = timezone.now()
    time_strings = _time_strings()
    memo, day_month = _Memo(), _DayMonth()
    statuses: dict[tuple[str, bool], tuple[str, str]] = {}  # (status, active) → shown
    out: list[str] = []
    for row in rows:
        project = row.project
        pk = int(project.pk)
        title = escape(project.title)
        badges = ""
        if not project.is_active:
            outcome = memo[project.get_outcome_display()]
            badges += f' <span class="badge text-bg-secondary">{outcome}</span>'
        if project.cycle > 1:
            badges += f' <span class="badge text-bg-light border">cycle {int(project.cycle)}</span>'
        members = escape(", ".join(m.name for m in row.members))
        activity = (
            # timesince only formats its time strings with %: _UnitText does.
            f"active {timesince(row.last_activity, now, time_strings=time_strings)} ago"  # type: ignore[arg-type]
            if row.last_activity
            else "no activity yet"
        )
        out.append(
            f'<tr class="board-row" data-project="{pk}"><td><input class="form-check-input" '
            f'type="checkbox" name="projects" value="{pk}" form="bulk-form" id="select-{pk}" '
            f'aria-label="Select {title}"></td><th scope="row" class="fw-normal">'
            f'<a href="{project_url.format(pk)}" class="fw-semibold">{title}</a>{badges}'
            f'<div class="small text-body-secondary">{members}</div>'
            f'<div class="small text-body-secondary">{escape(activity)}</div></th>'
        )
        active = project.is_active
        current_id = project.current_stage_id if active else None
        for cell in row.cells:
            stage = cell.stage
            if stage is None:
                out.append(
                    f'<td class="board-cell text-body-secondary" data-order="{int(cell.order)}" '
                    'data-status="">—</td>'
                )
                continue
            # A concluded project has no stage at work: an open one shows as closed.
            shown = statuses.get((stage.status, active))
            if shown is None:
                status, label = shown_status(stage, project)  # type: ignore[arg-type]
                shown = statuses[(stage.status, active)] = (escape(status), escape(label))
            status, label = shown
            css = status
            if cell.overdue:
                css += " is-overdue"
            if stage.pk == current_id:
                css += " is-current"
            cycle = int(stage.cycle)
            extra = ""
            if cell.reviewers:
                extra = f"<small>{memo[', '.join(cell.reviewers)]}</small>"
            if cell.due:
                flag = ' <strong class="text-danger">overdue</strong>' if cell.overdue else ""
                extra += f"<small>due {day_month[cell.due]}{flag}</small>"
            # The column's header names the stage; the row's, the project (no per-cell title).
            # board.css sets the <small> lines (reviewers, due date) apart.
            out.append(
                f'<td class="board-cell status-{css}" data-order="{int(cell.order)}" '
                f'data-status="{status}">'
                f'<a href="{stage_url.format(int(stage.pk))}"><b>{label}</b> ·&nbsp;c{cycle}'
                f"{extra}</a></td>"
            )
        out.append("</tr>")
    return mark_safe("".join(out))  # every value not ours is escaped above
