"""LTI context roles → course roles. A teaching assistant is a sub-role of Instructor in the
LIS vocabulary, so it is looked for first."""

from __future__ import annotations

from collections.abc import Iterable

from lifecycle.models import Role

_MEMBERSHIP = "http://purl.imsglobal.org/vocab/lis/v2/membership"
TEACHING_ASSISTANT = {
    f"{_MEMBERSHIP}/Instructor#TeachingAssistant",
    "TeachingAssistant",
    "Instructor#TeachingAssistant",
}
INSTRUCTOR = {f"{_MEMBERSHIP}#Instructor", "Instructor"}
LEARNER = {f"{_MEMBERSHIP}#Learner", "Learner", f"{_MEMBERSHIP}/Learner#Learner"}


def course_role(lti_roles: Iterable[str]) -> str | None:
    """The course role of a person with these LTI roles, or None when the course has no such
    role (a mentor, an observer, a content developer, an administrator only)."""
    roles = {str(r).strip() for r in lti_roles}
    if roles & TEACHING_ASSISTANT:
        return Role.TA
    if roles & INSTRUCTOR:
        return Role.INSTRUCTOR
    if roles & LEARNER:
        return Role.STUDENT
    return None
