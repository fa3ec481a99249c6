"""lifecycle.permissions for every persona, asserted one answer at a time: the course role,
staff and instructor, team membership, and who may view a project."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser

from lifecycle import permissions
from lifecycle.models import Role

pytestmark = pytest.mark.django_db

# persona: (course role, staff, instructor, member of Alice's project, member of Carol's)
EXPECTED = {
    "alice": (Role.STUDENT, False, False, True, False),
    "bob": (Role.STUDENT, False, False, True, False),
    "carol": (Role.STUDENT, False, False, False, True),
    "tina": (Role.TA, True, False, False, False),
    "ian": (Role.INSTRUCTOR, True, True, False, False),
    "erin": (None, False, False, False, False),
    "oscar": (None, False, False, False, False),
    "anonymous": (None, False, False, False, False),
    "none": (None, False, False, False, False),
}


def user_of(personas, who):
    if who == "anonymous":
        return AnonymousUser()
    if who == "none":
        return None
    return getattr(personas, who)


@pytest.mark.parametrize("who", list(EXPECTED))
def test_course_roles_team_membership_and_project_visibility(personas, who):
    p = personas
    user = user_of(p, who)
    role, staff, instructor, member, other_member = EXPECTED[who]
    assert permissions.course_role(user, p.course) == role
    assert permissions.is_course_member(user, p.course) is (role is not None)
    assert permissions.is_course_staff(user, p.course) is staff
    assert permissions.is_instructor(user, p.course) is instructor
    assert permissions.is_project_member(user, p.project) is member
    assert permissions.is_project_member(user, p.other_project) is other_member
    assert permissions.can_view_project(user, p.project) is (member or staff)
    assert permissions.can_view_project(user, p.other_project) is (other_member or staff)


def test_a_role_in_one_course_gives_nothing_in_another(personas):
    from factories import CourseFactory

    other_course = CourseFactory()
    for user in (personas.alice, personas.tina, personas.ian):
        assert permissions.course_role(user, other_course) is None
        assert not permissions.is_course_staff(user, other_course)
        assert not permissions.is_instructor(user, other_course)
