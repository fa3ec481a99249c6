"""Services of team membership: who is on a project's team.

The rule:
- course staff add any student of the course to a team, and remove anyone from a team (never
  its last member: a project always has a team);
- a team member adds a classmate: a student of the same course who is not on another active
  project of that course (one active team per student; staff may knowingly make an exception);
- nobody who is not a student of the course joins a team (staff review; experts come from
  outside).
A removed student loses access at once: every page asks the team table on each request.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from . import permissions
from .audit import audit_record
from .errors import IllegalTransition, InvalidAnswers, NotAllowed
from .models import Course, Membership, Project, ProjectStatus, Role
from .services import _lock_project, _project_start, _require_active


def _team_emails(project: Project) -> list[str]:
    return sorted(project.members.values_list("email", flat=True))


def other_active_teams(project: Project, user: Any) -> list[Project]:
    return list(
        Project.objects.filter(
            course_id=project.course_id, members=user, status=ProjectStatus.ACTIVE
        ).exclude(pk=project.pk)
    )


@transaction.atomic
def project_member_add(*, project: Project, actor: Any, user: Any) -> Project:
    """Course staff add a student to a team, or a team member adds a classmate."""
    project = _lock_project(project.pk)
    _require_active(project)
    staff = permissions.is_course_staff(actor, project.course)
    if not staff and not permissions.is_project_member(actor, project):
        raise NotAllowed("Only the team and course staff change a team.")
    if user is None:
        raise InvalidAnswers({"email": ["Nobody in this course has that e-mail address."]})
    if not Membership.objects.filter(
        course_id=project.course_id, user=user, role=Role.STUDENT
    ).exists():
        raise InvalidAnswers({"email": [f"{user.email} is not a student of this course."]})
    if permissions.is_project_member(user, project):
        raise IllegalTransition(f"{user.name} is on this team already.")
    elsewhere = other_active_teams(project, user)
    if elsewhere and not staff:
        raise InvalidAnswers(
            {
                "email": [
                    f"{user.name} is on another team of this course ({elsewhere[0].title}); "
                    "course staff can move them."
                ]
            }
        )
    _add(project, actor, user, by="staff" if staff else "team", elsewhere=elsewhere)
    return project


def _add(project: Project, actor: Any, user: Any, *, by: str, elsewhere: list[Project]) -> None:
    old = _team_emails(project)
    project.members.add(user)
    audit_record(
        actor=actor,
        verb="project.member_add",
        obj=project,
        project=project,
        old={"members": old},
        new={
            "user": user.email,
            "members": sorted([*old, user.email]),
            "by": by,
            **({"also_in": [p.pk for p in elsewhere]} if elsewhere else {}),
        },
    )


@transaction.atomic
def project_create_for_team(
    *, course: Course, actor: Any, title: str, members: list[Any]
) -> Project:
    """Course staff form a team from a roster: its project, titled with the team's name, owned
    by its first member, with the others on it. Each member must be a student of the course."""
    if not permissions.is_course_staff(actor, course):
        raise NotAllowed("Only course staff form teams.")
    if not members:
        raise InvalidAnswers({"members": ["A team has at least one member."]})
    return _project_start(
        course=course,
        actor=actor,
        owner=members[0],
        title=title,
        members=members[1:],
        audit_extra={"by": "roster"},
    )


@transaction.atomic
def roster_member_join(*, project: Project, user: Any) -> Project:
    """A student the roster put on this team joins it as they accept the course's invitation:
    the roster (course staff's upload) is their permission. Nobody is moved off another team."""
    project = _lock_project(project.pk)
    _require_active(project)
    if not Membership.objects.filter(
        course_id=project.course_id, user=user, role=Role.STUDENT
    ).exists():
        raise NotAllowed(f"{user.email} is not a student of this course.")
    if permissions.is_project_member(user, project):
        return project
    if other_active_teams(project, user):
        raise IllegalTransition(f"{user.name} is on another team of this course.")
    _add(project, user, user, by="roster", elsewhere=[])
    return project


@transaction.atomic
def project_member_remove(*, project: Project, actor: Any, user: Any) -> Project:
    """Course staff take a student off a team; they lose access to the project at once."""
    project = _lock_project(project.pk)
    if not permissions.is_course_staff(actor, project.course):
        raise NotAllowed("Only course staff remove someone from a team.")
    old = _team_emails(project)
    if user is None or user.email not in old:
        raise InvalidAnswers({"email": ["That person is not on this team."]})
    if len(old) == 1:
        raise IllegalTransition(
            f"{user.name} is the team's last member: a project keeps at least one."
        )
    project.members.remove(user)
    audit_record(
        actor=actor,
        verb="project.member_remove",
        obj=project,
        project=project,
        old={"members": old},
        new={"user": user.email, "members": [e for e in old if e != user.email]},
    )
    return project
