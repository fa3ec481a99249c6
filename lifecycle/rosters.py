"""Rosters by upload: course staff upload a CSV of students (or, for an instructor, of TAs)
with the columns ``email``, ``name`` and optionally ``team``. ``preview_roster`` reads it
without writing: who is new, who has an account, who is on the course already, which lines
are wrong, and which teams are created or joined; ``roster_apply`` writes it, all or nothing,
and only what is not there yet.

Teams: rows with the same team name (case aside) are one team. Its project is the course's
active project of that title, or one created with that title, owned by the team's first member
who can be placed now. A student without an account yet is placed when they accept the
invitation and join the course (the roster entry keeps the team until then). Nobody on another
team of the course is moved: staff move people on the team page. A person is placed once; a
re-upload leaves alone a student staff have since moved."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from . import events, permissions
from .audit import audit_record
from .errors import InvalidAnswers, NotAllowed
from .models import Course, Membership, Project, ProjectStatus, Role, RosterEntry

MAX_ROWS = 2000
MAX_BYTES = 400_000

NEW = "new"  # no account: invited by e-mail
ENROL = "enrol"  # a verified account: enrolled now
UNCHANGED = "unchanged"  # on the roster or in the course already
UPDATE = "update"  # on the roster with another name or team
RECORD = "record"  # in the course already, not yet on the roster: recorded there
ERROR = "error"


# What the roster does with a row's team (``RosterRow.placement``).
PLACE = "place"  # a student of the course (or enrolled now): put on the team now
ON_TEAM = "on_team"  # on that team already
PENDING = "pending"  # no account yet: put on the team when they accept the invitation
ELSEWHERE = "elsewhere"  # on another team of the course: not moved (staff move people)
PLACED = "placed"  # placed by an earlier upload: left as it is

# What happens to a team (``TeamPlan.action``).
CREATE = "create"  # its project is created now, owned by its first member placed now
CREATE_ON_JOIN = "create_on_join"  # nobody can be placed yet: created when the first joins
JOIN = "join"  # an active project of the course has that title: members are added to it
KEEP = "unchanged"  # nothing to do


@dataclass
class RosterRow:
    line: int
    email: str
    name: str
    team: str
    status: str
    message: str = ""
    placement: str = ""  # one of PLACE… when the row names a team
    elsewhere: str = ""  # the title of the team a student is on already


@dataclass
class TeamPlan:
    name: str
    action: str
    project: Any = None  # the active project of that title, if there is one
    rows: list[RosterRow] = field(default_factory=list)

    def count(self, placement: str) -> int:
        return sum(1 for r in self.rows if r.placement == placement)


@dataclass
class RosterPreview:
    role: str
    rows: list[RosterRow] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # about the file as a whole
    teams: list[TeamPlan] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and not any(r.status == ERROR for r in self.rows)

    def count(self, status: str) -> int:
        return sum(1 for r in self.rows if r.status == status)

    def team_count(self, action: str) -> int:
        return sum(1 for t in self.teams if t.action == action)


def decode_upload(raw: bytes) -> str:
    if len(raw) > MAX_BYTES:
        raise InvalidAnswers({"file": [f"The file is larger than {MAX_BYTES // 1000} kB."]})
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidAnswers(
            {"file": ["The file is not UTF-8 text; save it as CSV UTF-8."]}
        ) from None


def preview_roster(course: Course, text: str, *, role: str = Role.STUDENT) -> RosterPreview:
    """Read the CSV and say what applying it would do, row by row, naming bad lines."""
    from accounts.models import User

    preview = RosterPreview(role=role)
    if role not in (Role.STUDENT, Role.TA):
        preview.errors.append("A roster lists students or teaching assistants.")
        return preview
    if "\x00" in text:
        preview.errors.append("The file is not a text CSV.")
        return preview
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        preview.errors.append("The file is empty.")
        return preview
    except csv.Error as error:
        preview.errors.append(f"line 1: {error}")
        return preview
    missing = [c for c in ("email", "name") if c not in header]
    unknown = [c for c in header if c not in ("email", "name", "team")]
    if missing or unknown:
        preview.errors.append(
            "line 1: the header must name the columns email, name and optionally team"
            + (f" (missing: {', '.join(missing)})" if missing else "")
            + (f" (unknown: {', '.join(unknown)})" if unknown else "")
        )
        return preview
    parsed: list[tuple[int, str, str, str]] = []
    try:
        for number, cells in enumerate(reader, start=2):
            if not any(c.strip() for c in cells):
                continue
            if len(parsed) >= MAX_ROWS:
                preview.errors.append(f"More than {MAX_ROWS} rows: split the file.")
                return preview
            if len(cells) != len(header):
                preview.rows.append(
                    RosterRow(
                        number, "", "", "", ERROR, f"{len(cells)} columns, expected {len(header)}"
                    )
                )
                continue
            record = dict(zip(header, (c.strip() for c in cells), strict=True))
            parsed.append((number, record["email"].lower(), record["name"], record.get("team", "")))
    except csv.Error as error:
        preview.errors.append(f"line {reader.line_num}: {error}")
        return preview
    emails = {email for _n, email, _na, _t in parsed}
    users = {u.email.lower(): u for u in User.objects.filter(email__in=emails)}
    roles = dict(
        Membership.objects.filter(course=course, user__email__in=emails).values_list(
            "user__email", "role"
        )
    )
    entries = {e.email: e for e in RosterEntry.objects.filter(course=course, email__in=emails)}
    seen: dict[str, int] = {}
    for number, email, name, team in parsed:
        row = RosterRow(number, email, name, team, NEW)
        try:
            validate_email(email)
        except ValidationError:
            row.status, row.message = ERROR, "not an e-mail address"
        else:
            if email in seen:
                row.status, row.message = ERROR, f"the address is repeated from line {seen[email]}"
            elif not name:
                row.status, row.message = ERROR, "the name is empty"
            elif len(name) > 150 or len(team) > 100:
                row.status, row.message = ERROR, "the name or team is too long"
            elif team and role != Role.STUDENT:
                row.status, row.message = (
                    ERROR,
                    "teaching assistants are on no team: leave the team column empty",
                )
            elif email in roles and roles[email] != role:
                row.status, row.message = (
                    ERROR,
                    f"already in the course as {Role(roles[email]).label.lower()}",
                )
            elif email in entries:
                entry = entries[email]
                same = (entry.name, entry.team) == (name, team) and (
                    email in roles or email not in users or not users[email].is_email_verified
                )
                row.status = UNCHANGED if same else UPDATE
            elif email in roles:
                row.status = RECORD
            elif email in users and users[email].is_email_verified:
                row.status = ENROL
        seen.setdefault(email, number)
        preview.rows.append(row)
    preview.rows.sort(key=lambda r: r.line)
    _plan_teams(course, preview, users=users, roles=roles, entries=entries)
    return preview


def _plan_teams(
    course: Course,
    preview: RosterPreview,
    *,
    users: dict[str, Any],
    roles: dict[str, str],
    entries: dict[str, RosterEntry],
) -> None:
    """Group the rows by team (names compared without case) and say for each person whether
    they join it now, later or not at all. Two queries whatever the file's size."""
    rows = [r for r in preview.rows if r.status != ERROR and r.team]
    if not rows:
        return
    # Titles are matched in Python: SQLite's lower() knows only ASCII, and a course has few
    # active projects.
    projects: dict[str, list[Project]] = defaultdict(list)
    for project in Project.objects.filter(course=course, status=ProjectStatus.ACTIVE).only(
        "pk", "title"
    ):
        projects[project.title.strip().casefold()].append(project)
    titles = {p.pk: p.title for group in projects.values() for p in group}
    teams_of: dict[int, list[int]] = defaultdict(list)
    for user_id, project_id in (
        Project.members.through.objects.filter(
            project__course=course,
            project__status=ProjectStatus.ACTIVE,
            user_id__in=[u.pk for u in users.values()],
        )
        .order_by("project_id")
        .values_list("user_id", "project_id")
    ):
        teams_of[user_id].append(project_id)
    plans: dict[str, TeamPlan] = {}
    for row in rows:
        key = row.team.casefold()
        matches = projects.get(key, [])
        if len(matches) > 1:
            row.status = ERROR
            row.message = f"{len(matches)} active projects of this course are called “{row.team}”"
            continue
        plan = plans.setdefault(
            key, TeamPlan(name=row.team, action=KEEP, project=matches[0] if matches else None)
        )
        plan.rows.append(row)
        user = users.get(row.email)
        entry = entries.get(row.email)
        student_now = row.email in roles or (user is not None and user.is_email_verified)
        if entry is not None and entry.project_id and entry.team.casefold() == key:
            row.placement = PLACED
        elif not student_now:
            row.placement = PENDING
        else:
            # A member of the course has an account, and both were read by the same address.
            assert user is not None
            teams = teams_of.get(user.pk, [])
            if plan.project is not None and plan.project.pk in teams:
                row.placement = ON_TEAM
            elif teams:
                row.placement = ELSEWHERE
                row.elsewhere = titles.get(teams[0], "another team")
            else:
                row.placement = PLACE
    for plan in plans.values():
        if plan.count(PLACE):
            plan.action = JOIN if plan.project is not None else CREATE
        elif plan.project is None and plan.count(PENDING):
            plan.action = CREATE_ON_JOIN
    preview.teams = list(plans.values())


@transaction.atomic
def roster_apply(
    *, course: Course, actor: Any, text: str, role: str = Role.STUDENT
) -> RosterPreview:
    """Write the roster: nothing at all if any line is wrong. Verified accounts are enrolled and
    put on their team; other addresses are invited through the notifications outbox (once: the
    roster entry remembers it) and join their team when they accept."""
    from accounts.models import User

    from . import teams

    course = Course.objects.select_for_update(of=("self",), no_key=True).get(pk=course.pk)
    if not permissions.is_course_staff(actor, course):
        raise NotAllowed("Only course staff upload rosters.")
    if role == Role.TA and not permissions.is_instructor(actor, course):
        raise NotAllowed("Only an instructor adds teaching assistants.")
    preview = preview_roster(course, text, role=role)
    if not preview.ok:
        problems = preview.errors + [
            f"line {r.line}: {r.message}" for r in preview.rows if r.status == ERROR
        ]
        raise InvalidAnswers({"file": problems})
    now = timezone.now()
    changes = [r for r in preview.rows if r.status in (NEW, ENROL, UPDATE, RECORD)]
    placing = [r for r in preview.rows if r.placement in (PLACE, ON_TEAM)]
    if not changes and not placing:
        return preview
    # The teams' projects are locked before anything is written: course, then projects, as
    # every lifecycle service takes them.
    existing = sorted(t.project.pk for t in preview.teams if t.project is not None)
    list(Project.objects.select_for_update(no_key=True).filter(pk__in=existing).order_by("pk"))
    emails = [r.email for r in (*changes, *placing)]
    users = {u.email.lower(): u for u in User.objects.filter(email__in=emails)}
    invited: list[RosterRow] = []
    enrolled: list[RosterRow] = []
    for row in changes:
        entry, created = RosterEntry.objects.get_or_create(
            course=course,
            email=row.email,
            defaults={"name": row.name, "team": row.team, "role": role},
        )
        if not created and (entry.name, entry.team) != (row.name, row.team):
            if entry.team.casefold() != row.team.casefold():
                entry.project = None  # another team: placed again (or not) below
            entry.name, entry.team = row.name, row.team
            entry.save(update_fields=["name", "team", "project"])
        user = users.get(row.email)
        if row.status == RECORD:
            continue
        if user is not None and user.is_email_verified:
            _membership, joined = Membership.objects.get_or_create(
                course=course, user=user, defaults={"role": role}
            )
            if joined:
                enrolled.append(row)
        elif entry.invited_at is None:
            entry.invited_at = now
            entry.save(update_fields=["invited_at"])
            invited.append(row)
    created_teams: list[str] = []
    joined_teams: list[str] = []
    for plan in preview.teams:
        place = [users[r.email] for r in plan.rows if r.placement == PLACE]
        project = plan.project
        if place and project is None:
            project = teams.project_create_for_team(
                course=course, actor=actor, title=plan.name, members=place
            )
            created_teams.append(plan.name)
        elif place:
            for person in place:
                teams.project_member_add(project=project, actor=actor, user=person)
            joined_teams.append(plan.name)
        done = [r.email for r in plan.rows if r.placement in (PLACE, ON_TEAM)]
        if done:
            RosterEntry.objects.filter(course=course, email__in=done).update(project=project)
    audit_record(
        actor=actor,
        verb="course.roster_upload",
        obj=course,
        course=course,
        new={
            "role": role,
            "enrolled": sorted(r.email for r in enrolled),
            "invited": sorted(r.email for r in invited),
            "updated": sorted(r.email for r in changes if r.status == UPDATE),
            "teams_created": created_teams,
            "teams_joined": joined_teams,
        },
    )
    events.publish(
        events.ROSTER_APPLIED,
        course=course,
        actor=actor,
        role=role,
        invited=[(r.email, r.name, r.team) for r in invited],
        enrolled=[
            (users[r.email], r.team if r.placement in (PLACE, ON_TEAM) else "") for r in enrolled
        ],
    )
    return preview


# --- a student the roster invited joins the course ------------------------------------------


def pending_team(*, course: Course, user: Any) -> tuple[RosterEntry, Project | None] | None:
    """The roster entry that puts ``user`` on a team they are not on yet, with the active
    project of that title (None: it is created for them). Locks the course, then that project,
    so two teammates accepting at once make one project. Called inside course_join's
    transaction, before it writes."""
    entry = (
        RosterEntry.objects.filter(
            course=course, email=user.email.lower(), role=Role.STUDENT, project__isnull=True
        )
        .exclude(team="")
        .first()
    )
    if entry is None:
        return None
    Course.objects.select_for_update(of=("self",), no_key=True).filter(pk=course.pk).first()
    key = entry.team.strip().casefold()
    matches = [
        p
        for p in Project.objects.filter(course=course, status=ProjectStatus.ACTIVE).only(
            "pk", "title"
        )
        if p.title.strip().casefold() == key
    ]
    if len(matches) > 1:
        return None
    project = matches[0] if matches else None
    if project is not None:
        project = Project.objects.select_for_update(no_key=True).get(pk=project.pk)
    return entry, project


def place_on_pending_team(
    *, entry: RosterEntry, project: Project | None, user: Any
) -> Project | None:
    """Put a student who just joined on the team the roster named (see ``pending_team``).
    Nobody is moved off another team; a team that cannot be formed leaves them unplaced (the
    course membership stands) and says nothing."""
    from . import teams
    from .errors import DomainError
    from .services import project_create

    if Project.members.through.objects.filter(
        user=user, project__course_id=entry.course_id, project__status=ProjectStatus.ACTIVE
    ).exists():
        return None
    try:
        with transaction.atomic():
            if project is None:
                project = project_create(course=entry.course, actor=user, title=entry.team)
            else:
                project = teams.roster_member_join(project=project, user=user)
    except DomainError:
        return None
    RosterEntry.objects.filter(pk=entry.pk).update(project=project)
    return project
