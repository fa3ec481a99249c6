"""Rosters by upload: course staff upload a CSV of students (or, for an instructor, of TAs)
with the columns ``email``, ``name`` and optionally ``team``. ``preview_roster`` reads it
without writing: who is new, who has an account, who is on the course already, and which lines
are wrong; ``roster_apply`` writes it, all or nothing, and only what is not there yet."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from . import permissions
from .audit import audit_record
from .errors import InvalidAnswers, NotAllowed
from .models import Course, Membership, Role, RosterEntry

MAX_ROWS = 2000
MAX_BYTES = 400_000

NEW = "new"  # no account: invited by e-mail
ENROL = "enrol"  # a verified account: enrolled now
UNCHANGED = "unchanged"  # on the roster or in the course already
UPDATE = "update"  # on the roster with another name or team
RECORD = "record"  # in the course already, not yet on the roster: recorded there
ERROR = "error"


@dataclass
class RosterRow:
    line: int
    email: str
    name: str
    team: str
    status: str
    message: str = ""


@dataclass
class RosterPreview:
    role: str
    rows: list[RosterRow] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # about the file as a whole

    @property
    def ok(self) -> bool:
        return not self.errors and not any(r.status == ERROR for r in self.rows)

    def count(self, status: str) -> int:
        return sum(1 for r in self.rows if r.status == status)


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
            row = dict(zip(header, (c.strip() for c in cells), strict=True))
            parsed.append((number, row["email"].lower(), row["name"], row.get("team", "")))
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
    return preview


@transaction.atomic
def roster_apply(
    *, course: Course, actor: Any, text: str, role: str = Role.STUDENT
) -> RosterPreview:
    """Write the roster: nothing at all if any line is wrong. Verified accounts are enrolled;
    other addresses get the course's join link by e-mail, once (on commit)."""
    from accounts.models import User

    from .services import _course_invitation_messages, _send_course_invitations

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
    if not changes:
        return preview
    users = {u.email.lower(): u for u in User.objects.filter(email__in=[r.email for r in changes])}
    invite: list[str] = []
    for row in changes:
        entry, created = RosterEntry.objects.get_or_create(
            course=course,
            email=row.email,
            defaults={"name": row.name, "team": row.team, "role": role},
        )
        if not created and (entry.name, entry.team) != (row.name, row.team):
            entry.name, entry.team = row.name, row.team
            entry.save(update_fields=["name", "team"])
        user = users.get(row.email)
        if row.status == RECORD:
            continue
        if user is not None and user.is_email_verified:
            Membership.objects.get_or_create(course=course, user=user, defaults={"role": role})
        elif entry.invited_at is None:
            entry.invited_at = now
            entry.save(update_fields=["invited_at"])
            invite.append(row.email)
    audit_record(
        actor=actor,
        verb="course.roster_upload",
        obj=course,
        course=course,
        new={
            "role": role,
            "enrolled": sorted(r.email for r in changes if r.status == ENROL),
            "invited": sorted(invite),
            "updated": sorted(r.email for r in changes if r.status == UPDATE),
        },
    )
    if invite:
        outgoing = _course_invitation_messages(course=course, inviter=actor, emails=invite)
        transaction.on_commit(lambda: _send_course_invitations(outgoing))
    return preview
