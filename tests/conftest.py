"""Personas shared by every test.

Alice and Bob are one team; Carol is a student on another team of the same course; Tina is a
TA and Ian the instructor; Erin is a domain expert from outside the university; Oscar has an
account and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.conf import settings
from factories import CourseFactory, UserFactory, enrol

from accounts.models import User
from lifecycle import services
from lifecycle.models import Course, Project, Role


def uses_postgres() -> bool:
    return settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


@pytest.fixture(autouse=True)
def _an_empty_cache():
    """Sign-in and sign-up limits count in Django's cache, which outlives a test in its
    process: every test starts with no counts."""
    from django.core.cache import cache

    cache.clear()
    yield


@dataclass
class Personas:
    course: Course
    alice: User  # team member
    bob: User  # teammate
    carol: User  # other team's student
    tina: User  # TA
    ian: User  # instructor
    erin: User  # outside domain expert
    oscar: User  # outsider
    project: Project
    other_project: Project


@pytest.fixture
def personas(db) -> Personas:
    course = CourseFactory()
    alice = UserFactory(email="alice@example.test", display_name="Alice")
    bob = UserFactory(email="bob@example.test", display_name="Bob")
    carol = UserFactory(email="carol@example.test", display_name="Carol")
    tina = UserFactory(email="tina@example.test", display_name="Tina")
    ian = UserFactory(email="ian@example.test", display_name="Ian")
    erin = UserFactory(email="erin@example.test", display_name="Dr Erin Chen")
    oscar = UserFactory(email="oscar@example.test", display_name="Oscar")
    for student in (alice, bob, carol):
        enrol(course, student, Role.STUDENT)
    enrol(course, tina, Role.TA)
    enrol(course, ian, Role.INSTRUCTOR)
    project = services.project_create(
        course=course,
        actor=alice,
        title="Triage assistant",
        summary="Sorting referrals.",
        members=[bob],
    )
    other = services.project_create(course=course, actor=carol, title="Crop yield forecaster")
    return Personas(course, alice, bob, carol, tina, ian, erin, oscar, project, other)
