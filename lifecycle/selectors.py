"""Reads used by more than one view: always scoped to what the user may see."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import BooleanField, Exists, OuterRef, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.http import Http404

from .models import STAFF_ROLES, Course, Membership, Project, ProjectStage

# Every scope below is a membership subquery driven by the user's own rows (indexed by user),
# never an OR of two many-row joins with DISTINCT: that plan reads every course's rows to
# return one person's, and grows with everything the board has ever stored.


def taught_course_ids(user: Any) -> QuerySet[Membership, Any]:
    """The ids of the courses the user teaches (instructor or TA), as a subquery."""
    return (
        Membership.objects.filter(user_id=user.pk, role__in=STAFF_ROLES)
        .order_by()
        .values("course_id")
    )


def member_project_ids(user: Any) -> QuerySet[Any]:
    """The ids of the projects the user is on, as a subquery."""
    return Project.members.through.objects.filter(user_id=user.pk).order_by().values("project_id")


def courses_for_user(user: Any) -> QuerySet[Course]:
    if not getattr(user, "is_authenticated", False):
        return Course.objects.none()
    return Course.objects.filter(
        pk__in=Membership.objects.filter(user_id=user.pk).order_by().values("course_id")
    )


def projects_for_user(user: Any) -> QuerySet[Project]:
    """Projects the user is on, and every project of the courses they teach.

    One id list, the UNION of two index-driven subqueries: an OR of the two (even of two
    EXISTS) cannot use either index on PostgreSQL and scans every project."""
    if not getattr(user, "is_authenticated", False):
        return Project.objects.none()
    taught = Project.objects.filter(course_id__in=taught_course_ids(user)).order_by().values("pk")
    return Project.objects.filter(pk__in=member_project_ids(user).union(taught, all=True))


def visible_to(user: Any) -> Q:
    """A filter for rows already narrowed to a few projects (by pk): the user is on the project
    or teaches its course. Checked per row, so only where the outer query is small."""
    on_team = Project.members.through.objects.filter(project_id=OuterRef("pk"), user_id=user.pk)
    teaches = Membership.objects.filter(
        course_id=OuterRef("course_id"), user_id=user.pk, role__in=STAFF_ROLES
    )
    return Q(Exists(on_team)) | Q(Exists(teaches))


def _visible_by_pk(user_id: int) -> RawSQL:
    """visible_to() for a query of one project by pk, as SQL: the same two index-driven EXISTS,
    without the ORM resolving two subqueries on every page of a project (it costs more than
    the query itself)."""
    project = Project._meta.db_table
    team = Project.members.through._meta.db_table
    memberships = Membership._meta.db_table
    roles = sorted(STAFF_ROLES)
    sql = (
        f'EXISTS (SELECT 1 FROM "{team}" t WHERE t."project_id" = "{project}"."id" '
        f'AND t."user_id" = %s) OR EXISTS (SELECT 1 FROM "{memberships}" m '
        f'WHERE m."course_id" = "{project}"."course_id" AND m."user_id" = %s '
        f'AND m."role" IN ({", ".join(["%s"] * len(roles))}))'
    )
    return RawSQL(sql, (user_id, user_id, *roles), output_field=BooleanField())


PROJECT_RELATED = ("course", "template", "current_stage__definition")


def get_project_for_user(
    user: Any, pk: int, *, related: tuple[str, ...] = PROJECT_RELATED
) -> Project:
    """The project, or 404 for anyone who may not see it (never 403: its existence is private).
    ``related``: what to read with it (a page whose content is cached needs less)."""
    if not getattr(user, "is_authenticated", False):
        raise Http404("No such project.")
    rows = list(
        Project.objects.filter(_visible_by_pk(user.pk), pk=pk)
        .select_related(*related)
        .order_by()[:1]
    )
    if not rows:
        raise Http404("No such project.")
    return rows[0]


def cycle_timeline(project: Project, cycle: int | None = None) -> list[ProjectStage]:
    """One row per stage definition for ``cycle`` (the current one by default): the stage's row
    in that cycle, or, for stages before its loop-back point, the latest row of an earlier
    cycle."""
    rows = (
        ProjectStage.objects.filter(project=project, cycle__lte=cycle or project.cycle)
        .select_related("definition", "current_revision")
        .order_by("definition__order", "-cycle")
    )
    latest: dict[int, ProjectStage] = {}
    for row in rows:
        latest.setdefault(row.definition_id, row)
    return sorted(latest.values(), key=lambda s: s.definition.order)


def current_cycle_timeline(project: Project) -> list[ProjectStage]:
    return cycle_timeline(project)


# A concluded project has no work in progress: a stage left drafting, in review or with changes
# requested when it concluded shows as closed (the stored status stays as history), one never
# opened as not reached.
CLOSED = ("closed", "Closed")
NOT_REACHED = ("not_reached", "Not reached")


def shown_status(stage: ProjectStage, project: Project) -> tuple[str, str]:
    """(key, label) of the status a page shows for ``stage`` of ``project``."""
    if project.is_active or stage.status == "approved":
        return stage.status, stage.get_status_display()
    if stage.status == "locked":
        return NOT_REACHED
    return CLOSED


def roster_team_of(membership: Membership) -> Project | None:
    """The team an uploaded roster put this member on, if any (shown as they join)."""
    from .models import RosterEntry

    entry = (
        RosterEntry.objects.filter(
            course_id=membership.course_id,
            email=membership.user.email.lower(),
            project__isnull=False,
        )
        .select_related("project")
        .first()
    )
    return entry.project if entry is not None else None


@dataclass(frozen=True, slots=True)
class CourseHeading:
    """What the home page's card shows of a course."""

    pk: int
    title: str
    term: str


_COURSE_ROLES_SQL = """
SELECT c.id, c.title, c.term, m.role
  FROM lifecycle_membership m JOIN lifecycle_course c ON c.id = m.course_id
 WHERE m.user_id = %s
 ORDER BY c.created_at DESC, c.title
"""


def course_roles(user: Any) -> list[tuple[CourseHeading, str]]:
    """The user's courses, newest first, each with their role in it: the home page's cards.
    Plain SQL (one join on the user's memberships): the equivalent queryset took more CPU to
    build than the page's own rows."""
    if not getattr(user, "is_authenticated", False):
        return []
    with connection.cursor() as cursor:
        cursor.execute(_COURSE_ROLES_SQL, [user.pk])
        return [
            (CourseHeading(pk, title, term), role) for pk, title, term, role in cursor.fetchall()
        ]
