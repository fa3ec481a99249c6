"""The home page's project tables for course staff: the first few projects of each course they
teach (the board and the course page have the rest) and every project of their own, read in
one query and printed in one pass.

A teacher's home is every course they teach, so it is read and printed the cheap way: one SQL
query for the projects (the first HOME_PROJECTS_PER_COURSE of each course by title, and each
course's total, as window functions; the person's own projects beside them), one for the
teams' names, and the table rows printed here rather than by a template loop that reverses two
URLs and resolves a dozen variables per row. The markup is lifecycle/project_table.html's,
which students' cards still use.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any

from django.db import connection
from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from .models import Outcome, ProjectStatus, StageStatus
from .templatetags.lifecycle_tags import status_badge

_PLACEHOLDER = 987654321


@dataclass(frozen=True, slots=True)
class ProjectRow:
    """A project as a home card's table shows it."""

    pk: int
    course_id: int
    title: str
    status: str
    outcome: str
    cycle: int
    course_total: int  # every project of its course (taught courses only)
    own: bool  # the person is on its team
    stage_pk: int | None
    stage_status: str
    stage_cycle: int
    stage_order: int
    stage_title: str
    stage_key: str


# The person's own projects (every one, as students see theirs) and the first few of each course
# they teach with each course's total; the current stage of each beside it. One-row lookups are
# scalar subqueries: PostgreSQL plans them in a fraction of what joins cost it.
_PROJECTS_SQL = """
SELECT x.own, x.id, x.course_id, x.title, x.status, x.outcome, x.cycle, x.total, st.id,
       st.status, st.cycle,
       (SELECT d."order" FROM lifecycle_stagedefinition d WHERE d.id = st.definition_id),
       (SELECT d.title FROM lifecycle_stagedefinition d WHERE d.id = st.definition_id),
       (SELECT d.key FROM lifecycle_stagedefinition d WHERE d.id = st.definition_id)
  FROM (SELECT 1 AS own, p.id, p.course_id, p.title, p.status, p.outcome, p.cycle,
               p.current_stage_id, 0 AS total
          FROM lifecycle_project p
         WHERE p.id IN (SELECT project_id FROM lifecycle_project_members WHERE user_id = %(user)s)
        UNION ALL
        SELECT 0, r.id, r.course_id, r.title, r.status, r.outcome, r.cycle, r.current_stage_id,
               r.total
          FROM (SELECT p.id, p.course_id, p.title, p.status, p.outcome, p.cycle,
                       p.current_stage_id,
                       ROW_NUMBER() OVER (PARTITION BY p.course_id ORDER BY p.title, p.id) AS n,
                       COUNT(*) OVER (PARTITION BY p.course_id) AS total
                  FROM lifecycle_project p
                 WHERE p.course_id IN ({taught})) r
         WHERE r.n <= %(per_course)s) x
  LEFT JOIN lifecycle_projectstage st ON st.id = x.current_stage_id
"""

_TEAMS_SQL = """
SELECT pm.project_id, u.display_name, u.email
  FROM lifecycle_project_members pm JOIN accounts_user u ON u.id = pm.user_id
 WHERE pm.project_id IN ({projects})
 ORDER BY u.display_name, u.email
"""


def staff_projects(
    user: Any, *, taught: list[int], per_course: int
) -> tuple[list[ProjectRow], dict[int, list[str]]]:
    """The projects of a course staff member's home (own ones first, then the first
    ``per_course`` of each taught course; a project in both is listed once, as their own) and
    the names of each one's team, in display order."""
    params: dict[str, Any] = {"user": user.pk, "per_course": per_course}
    params.update({f"c{i}": pk for i, pk in enumerate(taught)})
    sql = _PROJECTS_SQL.format(taught=", ".join(f"%(c{i})s" for i in range(len(taught))))
    rows: dict[int, ProjectRow] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for (
            own,
            pk,
            course_id,
            title,
            status,
            outcome,
            cycle,
            total,
            stage_pk,
            stage_status,
            stage_cycle,
            order,
            stage_title,
            key,
        ) in cursor.fetchall():
            row = ProjectRow(
                pk=pk,
                course_id=course_id,
                title=title,
                status=status,
                outcome=outcome,
                cycle=cycle,
                course_total=total,
                own=bool(own),
                stage_pk=stage_pk,
                stage_status=stage_status or "",
                stage_cycle=stage_cycle or 0,
                stage_order=order or 0,
                stage_title=stage_title or "",
                stage_key=key or "",
            )
            if pk in rows:  # on the team of a project of a course they teach: listed once
                row = replace(row, own=True, course_total=max(total, rows[pk].course_total))
            rows[pk] = row
        teams: dict[int, list[str]] = defaultdict(list)
        if rows:
            ids = sorted(rows)
            cursor.execute(
                _TEAMS_SQL.format(projects=", ".join(["%s"] * len(ids))),
                ids,
            )
            for project_id, display_name, email in cursor.fetchall():
                teams[project_id].append(display_name or email.split("@")[0])
    return list(rows.values()), teams


_STATUS_LABELS = dict(StageStatus.choices)
_OUTCOME_LABELS = dict(Outcome.choices)
_HEAD = (
    '<div class="table-responsive">\n'
    '  <table class="table table-hover align-middle mb-0 project-table">\n'
    "    <thead>\n      <tr>\n"
    '        <th scope="col">Project</th>\n'
    "{team_head}"
    '        <th scope="col">Current stage</th>\n'
    '        <th scope="col">Status</th>\n'
    '        <th scope="col" class="text-end">Cycle</th>\n'
    "      </tr>\n    </thead>\n    <tbody>\n"
)
_ROW = (
    '        <tr data-project="{pk}">\n'
    '          <th scope="row" class="fw-normal"><a href="{url}" class="fw-semibold">{title}</a>'
    "</th>\n{team}"
    "          <td>{stage}</td>\n"
    "          <td>\n{status}          </td>\n"
    '          <td class="text-end">{cycle}</td>\n'
    "        </tr>\n"
)
_TAIL = "    </tbody>\n  </table>\n</div>"


def _url_pattern(name: str, args: list[Any]) -> str:
    """A URL with {} where the arguments go: reverse() once per page, not per row."""
    url = reverse(name, args=args)
    for arg in args:
        url = url.replace(str(arg), "{}", 1)
    return url


def project_table(
    rows: list[ProjectRow], teams: dict[int, list[str]], *, show_team: bool
) -> SafeString:
    """lifecycle/project_table.html's table, printed in one pass. Every value from the
    database goes through escape(); the rest is this module's own markup."""
    project_url = _url_pattern("lifecycle:project_detail", [_PLACEHOLDER])
    stage_url = _url_pattern(
        "lifecycle:stage_detail", [_PLACEHOLDER, _PLACEHOLDER + 1, "placeholder-key"]
    )
    parts = [_HEAD.format(team_head='        <th scope="col">Team</th>\n' if show_team else "")]
    for r in rows:
        if r.stage_pk is not None:
            stage = (
                f'<a href="{stage_url.format(r.pk, r.stage_cycle, escape(r.stage_key))}" '
                f'class="link-body-emphasis">{r.stage_order}. {escape(r.stage_title)}</a>'
            )
        else:
            stage = "—"
        if r.status == ProjectStatus.ACTIVE:
            status = (
                f'            <span class="badge {status_badge(r.stage_status)}">'
                f"{_STATUS_LABELS.get(r.stage_status, r.stage_status)}</span>\n"
                if r.stage_pk is not None
                else ""
            )
        else:
            status = (
                '            <span class="badge text-bg-dark">Concluded</span>\n'
                '            <span class="small d-block text-body-secondary">'
                f"{escape(_OUTCOME_LABELS.get(r.outcome, r.outcome))}</span>\n"
            )
        team = (
            f'          <td class="small">{escape(", ".join(teams.get(r.pk, ())))}</td>\n'
            if show_team
            else ""
        )
        parts.append(
            _ROW.format(
                pk=r.pk,
                url=project_url.format(r.pk),
                title=escape(r.title),
                team=team,
                stage=stage,
                status=status,
                cycle=r.cycle,
            )
        )
    parts.append(_TAIL)
    return mark_safe("".join(parts))
