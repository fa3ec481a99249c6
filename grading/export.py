"""The course's grades as CSV, laid out for a gradebook import: one row per student of the
course (a student on two teams has a row for each; one on no team a row without grades), with
their e-mail, name and LMS user id, the project, each graded stage's final points (the header
names its maximum) and the moderated project total.

Streamed: students are read in chunks, and each chunk's teams, grades and LMS ids in a fixed
number of queries, so memory and queries per row stay flat however large the course.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from lifecycle.exports import escape_cell
from lifecycle.models import Course, Membership, Project, Role

from .compute import criteria_of, rubric_total
from .models import ProjectGrade, StageGrade

CHUNK = 500

LmsIdSource = Callable[[Course, list[Any]], Mapping[int, str]]
_lms_id_sources: list[LmsIdSource] = []


def register_lms_id_source(source: LmsIdSource) -> LmsIdSource:
    """A layer that knows students' LMS user ids (the LTI app) registers a callable
    ``(course, users) -> {user_id: lms_id}``; the export asks it once per chunk of students."""
    if source not in _lms_id_sources:
        _lms_id_sources.append(source)
    return source


def unregister_lms_id_source(source: LmsIdSource) -> None:
    if source in _lms_id_sources:
        _lms_id_sources.remove(source)


def lms_ids(course: Course, users: list[Any]) -> dict[int, str]:
    found: dict[int, str] = {}
    for source in _lms_id_sources:
        for user_id, lms_id in (source(course, users) or {}).items():
            found.setdefault(user_id, str(lms_id))
    return found


@dataclass(frozen=True)
class GradedStage:
    key: str
    order: int
    title: str
    max_points: Decimal

    @property
    def header(self) -> str:
        return f"{self.order}. {self.title} (max {self.max_points})"


def graded_stages(course: Course) -> list[GradedStage]:
    """The stages of the course's template that have a rubric, with the rubric's maximum."""
    out = []
    for key, order, title, rubric in course.template.stages.order_by("order").values_list(
        "key", "order", "title", "rubric"
    ):
        criteria = criteria_of(rubric)
        if criteria:
            out.append(GradedStage(key, order, title, rubric_total(criteria, {})[1]))
    return out


def header_row(stages: list[GradedStage]) -> list[str]:
    return [
        "email",
        "name",
        "lms_user_id",
        "project",
        *(stage.header for stage in stages),
        "project_total",
        "project_total_max",
    ]


def _points(value: Decimal | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _chunk_rows(course: Course, stages: list[GradedStage], users: list[Any]) -> Iterator[list]:
    user_ids = [user.pk for user in users]
    teams: dict[int, list[int]] = defaultdict(list)
    for user_id, project_id in (
        Project.members.through.objects.filter(user_id__in=user_ids, project__course=course)
        .order_by("project__title", "project_id")
        .values_list("user_id", "project_id")
    ):
        teams[user_id].append(project_id)
    project_ids = {pid for pids in teams.values() for pid in pids}
    titles = dict(Project.objects.filter(pk__in=project_ids).values_list("pk", "title"))
    # The standing grade of each stage; of a stage graded in several cycles, the latest cycle's.
    stage_points: dict[tuple[int, str], Decimal] = {}
    for project_id, key, final in (
        StageGrade.objects.filter(stage__project_id__in=project_ids, replaced_at__isnull=True)
        .order_by("stage__cycle")
        .values_list("stage__project_id", "stage__definition__key", "final_points")
    ):
        stage_points[(project_id, key)] = final
    totals = {
        project_id: (points, maximum)
        for project_id, points, maximum in ProjectGrade.objects.filter(
            project_id__in=project_ids, replaced_at__isnull=True
        ).values_list("project_id", "points", "max_points")
    }
    lms = lms_ids(course, users)
    for user in users:
        on_teams: list[int | None] = list(teams.get(user.pk, [])) or [None]
        for team in on_teams:
            total = totals.get(team) if team else None
            yield [
                user.email,
                user.name,
                lms.get(user.pk, ""),
                titles.get(team, "") if team else "",
                *(_points(stage_points.get((team, s.key))) if team else "" for s in stages),
                _points(total[0] if total else None),
                _points(total[1] if total else None),
            ]


def grade_rows(course: Course, *, chunk: int = CHUNK) -> Iterator[list[str]]:
    """The header, then every student's rows, ordered by e-mail."""
    stages = graded_stages(course)
    yield header_row(stages)
    students = (
        Membership.objects.filter(course=course, role=Role.STUDENT)
        .select_related("user")
        .order_by("user__email", "pk")
    )
    last_email = None
    while True:
        # Keyset pages (e-mails are unique): each starts after the last student of the one
        # before, so a late page costs what the first one does.
        after = students if last_email is None else students.filter(user__email__gt=last_email)
        page = list(after[:chunk])
        if not page:
            return
        yield from _chunk_rows(course, stages, [m.user for m in page])
        last_email = page[-1].user.email
        if len(page) < chunk:
            return


class _Echo:
    def write(self, text: str) -> str:
        return text


def csv_lines(rows: Iterable[list[str]]) -> Iterator[str]:
    """CSV text, every cell made safe for spreadsheets (the audit export's rule)."""
    writer = csv.writer(_Echo(), lineterminator="\r\n")
    for row in rows:
        yield writer.writerow([escape_cell(str(cell)) for cell in row])


def stream_csv(course: Course, *, chunk: int = CHUNK) -> Iterator[bytes]:
    batch: list[str] = []
    for line in csv_lines(grade_rows(course, chunk=chunk)):
        batch.append(line)
        if len(batch) >= chunk:
            yield "".join(batch).encode("utf-8")
            batch = []
    if batch:
        yield "".join(batch).encode("utf-8")


def student_count(course: Course) -> int:
    return Membership.objects.filter(course=course, role=Role.STUDENT).count()
