"""Reads behind the course staff's board: every project of a course by the stages of its
template, and where the reviews get stuck.

Everything is batched: the board costs the same, fixed number of queries with 10 projects as
with 300 (an instructor opens it for the whole cohort). What covers the whole course (counts,
bottlenecks, the order of the filtered projects) is a BoardSummary kept in the cache until the
course's audit trail moves on; a page then reads the stages of its own 50 projects only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from django.core.cache import cache
from django.db.models import F, OuterRef, Prefetch, Q, Subquery
from django.http import Http404
from django.urls import reverse
from django.utils import timezone
from django.utils.dates import MONTHS_3
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.timesince import timesince

from accounts.models import User
from lifecycle import permissions as lifecycle_permissions
from lifecycle.models import (
    STAFF_ROLES,
    AuditEvent,
    Course,
    Membership,
    Outcome,
    Project,
    ProjectStage,
    StageDefinition,
    StageStatus,
)
from lifecycle.selectors import shown_status

from .models import AssignmentState, Decision, Invitation, ReviewAssignment

SORTS = {
    "title": "Title",
    "stage": "Current stage (furthest behind first)",
    "activity": "Last activity (stalest first)",
}
# The board never reads a stage's draft: leave the large JSON columns in the database.
_DRAFT_FIELDS = ("draft_answers", "draft_changed_at", "draft_changed_by", "override_justification")
CHART_WEEKS = 8


def get_course_for_staff(user: Any, course_pk: int) -> Course:
    """The course, for its instructors and TAs; 404 for everyone else."""
    course = Course.objects.select_related("template").filter(pk=course_pk).first()
    if course is None or not lifecycle_permissions.is_course_staff(user, course):
        raise Http404("No such course.")
    return course


# --- the matrix -----------------------------------------------------------------------------


@dataclass
class Cell:
    """One stage of one project in its current cycle (None: the project's template version has
    no stage of this order)."""

    order: int
    stage: ProjectStage | None
    reviewers: list[str] = field(default_factory=list)
    due: dt.date | None = None
    overdue: bool = False

    @property
    def status(self) -> str:
        return self.stage.status if self.stage else ""


@dataclass
class Row:
    project: Project
    cells: list[Cell]
    members: list[User]
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
    definitions: list[StageDefinition]
    rows: Sequence[Row]  # filtered and sorted; built for the slice read (BoardRows)
    total: int  # projects in the course
    counts: Counts
    reviewers: list[User]  # everyone with an active assignment in the course, for the filter
    bottlenecks: Bottlenecks


def _timeline(stages: Iterable[ProjectStage], cycles: Mapping[int, int]) -> dict[tuple, Any]:
    """(project id, stage order) → the row current_cycle_timeline() shows: the current cycle's,
    or, before a loop-back point, the latest earlier cycle's. ``stages`` come newest cycle
    first within each order."""
    latest: dict[tuple[int, int], ProjectStage] = {}
    for stage in stages:
        if stage.cycle <= cycles.get(stage.project_id, 0):
            latest.setdefault((stage.project_id, stage.definition.order), stage)
    return latest


_BOARD_STAGE_FIELDS = (
    "id",
    "project_id",
    "definition_id",
    "cycle",
    "status",
    "current_revision_id",
    "due_date",
    "opened_at",
    "approved_at",
)


def _course_stages(course: Course, project_ids: list[int] | None = None) -> list[ProjectStage]:
    """Every stage of the course (or of those projects) with the few columns the board reads.
    The definitions (a few dozen at most, over the template versions the projects pinned) are
    read once and shared, not joined and built again for each of thousands of stages."""
    query = ProjectStage.objects.filter(project__course=course)
    if project_ids is not None:
        query = query.filter(project_id__in=project_ids)
    stages = list(
        query.only(*_BOARD_STAGE_FIELDS).order_by("project_id", "definition__order", "-cycle")
    )
    definitions = StageDefinition.objects.in_bulk({s.definition_id for s in stages})
    for stage in stages:
        stage.definition = definitions[stage.definition_id]
    return stages


def timeline_stages_of_order(projects: Iterable[Project], order: int) -> dict[int, ProjectStage]:
    """Project id → the stage of that order in each project's current timeline. One query."""
    projects = list(projects)
    stages = (
        ProjectStage.objects.filter(project__in=projects, definition__order=order)
        .defer(*_DRAFT_FIELDS)
        .select_related("definition")
        .order_by("project_id", "-cycle")
    )
    timeline = _timeline(stages, {p.pk: p.cycle for p in projects})
    return {project_id: stage for (project_id, _), stage in timeline.items()}


def _board_projects(course: Course, project_ids: list[int] | None) -> list[Project]:
    last_event = AuditEvent.objects.filter(project=OuterRef("pk")).order_by("-seq")
    projects = Project.objects.filter(course=course)
    if project_ids is not None:
        projects = projects.filter(pk__in=project_ids)
    return list(
        projects.prefetch_related(
            Prefetch("members", queryset=User.objects.order_by("display_name", "email"))
        )
        .annotate(last_activity=Subquery(last_event.values("created_at")[:1]))
        .order_by("title", "pk")
    )


def _build_rows(
    course: Course,
    orders: list[int],
    today: dt.date,
    project_ids: list[int] | None = None,
) -> tuple[list[Row], list[ProjectStage], list[ReviewAssignment]]:
    """The rows of the given projects of the course (every project: None), in title order,
    with the stages and active assignments they were built from."""
    projects = _board_projects(course, project_ids)
    stages = _course_stages(course, project_ids)
    timeline = _timeline(stages, {p.pk: p.cycle for p in projects})
    active = ReviewAssignment.objects.filter(project__course=course, state=AssignmentState.ACTIVE)
    if project_ids is not None:
        active = active.filter(project_id__in=project_ids)
    assignments = list(
        active.select_related("reviewer").order_by(
            F("stage_definition_id").asc(nulls_last=True), "created_at", "pk"
        )
    )
    by_project: dict[int, list[ReviewAssignment]] = defaultdict(list)
    for assignment in assignments:
        by_project[assignment.project_id].append(assignment)

    rows = []
    for project in projects:
        cells = []
        for order in orders:
            stage = timeline.get((project.pk, order))
            cell = Cell(order=order, stage=stage)
            if stage is not None:
                covering = [a for a in by_project[project.pk] if a.covers(stage.definition_id)]
                cell.reviewers = list(dict.fromkeys(a.reviewer.name for a in covering))
                dues = [d for d in [stage.due_date, *(a.due_date for a in covering)] if d]
                cell.due = min(dues) if dues else None
                cell.overdue = (
                    project.is_active
                    and stage.status != StageStatus.APPROVED
                    and cell.due is not None
                    and cell.due < today
                )
            cells.append(cell)
        rows.append(
            Row(
                project=project,
                cells=cells,
                members=list(project.members.all()),
                reviewer_ids={a.reviewer_id for a in by_project[project.pk]},
                last_activity=project.last_activity,  # type: ignore[attr-defined]
            )
        )
    return rows, stages, assignments


@dataclass
class BoardSummary:
    """What the board shows of the whole course: the ids of the projects that match the filters
    in their order, the counts, the reviewers for the filter and the bottlenecks. Computed from
    every row of the course, then kept in the cache until the course's audit trail moves on
    (every write is a service with an audit event) or the day changes; a page of the board
    then reads only its own rows."""

    project_ids: list[int]
    total: int
    counts: Counts
    reviewers: list[User]
    bottlenecks: Bottlenecks


SUMMARY_SECONDS = 600  # also bounds what a write outside the course's trail can leave stale


def _summary_key(course: Course, filters: BoardFilters, today: dt.date) -> str:
    head = (
        AuditEvent.objects.filter(course=course)
        .order_by("-seq")
        .values_list("seq", flat=True)
        .first()
    )
    shape = (
        f"{filters.stage}|{filters.status}|{filters.reviewer}|{int(filters.overdue)}|"
        f"{filters.sort}|{hashlib.sha256(filters.team.encode()).hexdigest()[:16]}"
    )
    return f"board:{course.pk}:{head}:{today.isoformat()}:{shape}"


def _summary(
    course: Course, definitions: list[StageDefinition], filters: BoardFilters, today: dt.date
) -> tuple[BoardSummary, list[Row] | None]:
    key = _summary_key(course, filters, today)
    cached = cache.get(key)
    if cached is not None:
        return cached, None
    rows, stages, assignments = _build_rows(course, [d.order for d in definitions], today)

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
        {a.reviewer_id: a.reviewer for a in assignments}.values(), key=lambda u: u.name.casefold()
    )
    shown = [row for row in rows if filters.matches(row)]
    if filters.sort == "stage":
        shown.sort(key=lambda r: (not r.project.is_active, r.current_order, r.project.title))
    elif filters.sort == "activity":
        oldest = dt.datetime.min.replace(tzinfo=dt.UTC)
        shown.sort(key=lambda r: (r.last_activity or oldest, r.project.title))
    summary = BoardSummary(
        project_ids=[row.project.pk for row in shown],
        total=len(rows),
        counts=counts,
        reviewers=reviewers,
        bottlenecks=_bottlenecks(
            course=course,
            definitions=definitions,
            rows=rows,
            stages=stages,
            assignments=assignments,
            today=today,
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
        rows, _, _ = _build_rows(self.course, self.orders, self.today, ids)
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
    definitions = list(course.template.stages.order_by("order"))
    summary, built = _summary(course, definitions, filters, today)
    return Board(
        course=course,
        definitions=definitions,
        rows=BoardRows(course, [d.order for d in definitions], today, summary.project_ids, built),
        total=summary.total,
        counts=summary.counts,
        reviewers=summary.reviewers,
        bottlenecks=summary.bottlenecks,
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
    definition: StageDefinition
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
    course: Course,
    definitions: list[StageDefinition],
    rows: list[Row],
    stages: list[ProjectStage],
    assignments: list[ReviewAssignment],
    today: dt.date,
) -> Bottlenecks:
    decisions = list(
        Decision.objects.filter(revision__stage__project__course=course).values(
            "reviewer_id",
            "reviewer__display_name",
            "reviewer__email",
            "revision_id",
            "replaced_at",
            "created_at",
            "revision__created_at",
        )
    )
    standing = {(d["reviewer_id"], d["revision_id"]) for d in decisions if not d["replaced_at"]}
    loads: dict[int, ReviewerLoad] = {}
    for a in assignments:
        loads.setdefault(
            a.reviewer_id, ReviewerLoad(a.reviewer_id, a.reviewer.name, a.reviewer.email)
        )
    days_to_decide: dict[int, list[float]] = defaultdict(list)
    for d in decisions:
        if d["reviewer_id"] not in loads:
            email = d["reviewer__email"]
            name = d["reviewer__display_name"] or email.split("@")[0]
            loads[d["reviewer_id"]] = ReviewerLoad(d["reviewer_id"], name, email)
        days_to_decide[d["reviewer_id"]].append(_days(d["created_at"] - d["revision__created_at"]))
    for reviewer_id, values in days_to_decide.items():
        loads[reviewer_id].decided = len(values)
        loads[reviewer_id].median_days_to_decide = statistics.median(values)

    by_project: dict[int, list[ReviewAssignment]] = defaultdict(list)
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
            per_order[stage.definition.order].append(_days(stage.approved_at - stage.opened_at))
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
    return list(
        User.objects.filter(Q(pk__in=staff) | Q(pk__in=experts), is_active=True).order_by(
            "display_name", "email"
        )
    )


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


@dataclass(frozen=True)
class RowView:
    """A board row with everything the template prints computed once, in Python: the page loop
    then has no per-cell {% url %}, {% with %} or filter chains (28,000 template nodes for 300
    projects before this)."""

    pk: int
    title: str
    href: str
    outcome: str
    cycle: int
    members: str
    activity: str
    cells: list[SafeString]


def _url_pattern(name: str) -> str:
    """A URL with a placeholder for its one integer argument: reverse() once per page."""
    return reverse(name, args=[_PLACEHOLDER]).replace(str(_PLACEHOLDER), "{}")


_PLACEHOLDER = 987654321


_STATUS_LABELS = {value: str(label) for value, label in StageStatus.choices}


def _day_month(day: dt.date) -> str:
    """dateformat's "j M" without its per-call formatter object (2,100 cells a page)."""
    return f"{day.day} {MONTHS_3[day.month].title()}"


def _cell_html(cell: Cell, project: Project, stage_url: str) -> SafeString:
    """One cell as HTML; plain string building with escape() on every value that is not ours
    (format_html's per-argument machinery was most of the board's rendering time)."""
    stage = cell.stage
    if stage is None:
        return mark_safe(  # only an integer is interpolated
            f'<td class="board-cell text-body-secondary" data-order="{int(cell.order)}" '
            'data-status="">—</td>'
        )
    # A concluded project has no stage at work: an open one shows as closed.
    status, label = shown_status(stage, project)
    css = f"board-cell status-{escape(status)}"
    if cell.overdue:
        css += " is-overdue"
    if project.is_active and stage.pk == project.current_stage_id:
        css += " is-current"
    reviewers = (
        f'<span class="d-block reviewers">{escape(", ".join(cell.reviewers))}</span>'
        if cell.reviewers
        else ""
    )
    due = ""
    if cell.due:
        overdue = ' <strong class="text-danger">overdue</strong>' if cell.overdue else ""
        due = f'<span class="d-block">due {escape(_day_month(cell.due))}{overdue}</span>'
    cycle = int(stage.cycle)
    return mark_safe(  # every value not ours is escaped above or here
        f'<td class="{css}" data-order="{int(cell.order)}" data-status="{escape(status)}" '
        f'data-cycle="{cycle}" data-overdue="{"1" if cell.overdue else "0"}">'
        f'<a href="{escape(stage_url.format(int(stage.pk)))}" '
        f'title="{escape(project.title)}: {escape(stage.definition.title)}, cycle {cycle}">'
        f'<span class="fw-semibold">{escape(label)}'
        f'</span> <span class="text-nowrap">· c{cycle}</span>{reviewers}{due}'
        "</a></td>"
    )


def row_views(rows: Iterable[Row]) -> list[RowView]:
    """The rows of one page, each cell rendered to HTML in one pass."""
    stage_url = _url_pattern("reviews:review_stage")
    project_url = _url_pattern("lifecycle:project_detail")
    now = timezone.now()
    views = []
    for row in rows:
        project = row.project
        activity = (
            f"active {timesince(row.last_activity, now)} ago"
            if row.last_activity
            else "no activity yet"
        )
        views.append(
            RowView(
                pk=project.pk,
                title=project.title,
                href=project_url.format(project.pk),
                outcome="" if project.is_active else project.get_outcome_display(),
                cycle=project.cycle,
                members=", ".join(m.name for m in row.members),
                activity=activity,
                cells=[_cell_html(cell, project, stage_url) for cell in row.cells],
            )
        )
    return views
