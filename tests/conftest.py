"""Personas shared by every test.

Alice and Bob are one team; Carol is a student on another team of the same course; Tina is a
TA and Ian the instructor; Erin is a domain expert from outside the university; Oscar has an
account and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.conf import settings
from django.db import transaction
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


def make_personas() -> Personas:
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


@pytest.fixture
def personas(db) -> Personas:
    return make_personas()


def _shared_transaction(django_db_blocker) -> Iterator[None]:
    with django_db_blocker.unblock(), transaction.atomic():
        yield
        transaction.set_rollback(True)


@pytest.fixture(scope="module")
def module_db(django_db_setup, django_db_blocker) -> Iterator[None]:
    """One transaction around a whole module, rolled back after its last test, for sample data
    that a long parametrized matrix builds once instead of once per case. Each test still runs
    in a savepoint of its own (pytest-django's db fixture, nested in this transaction), so
    whatever one case writes is gone before the next starts: every case starts from the same
    rows, as it did when the data was built per case.

    Only for modules whose tests all take their data from fixtures built on this one
    (function-scoped personas next to shared ones would meet the same e-mail addresses), and
    with no transactional tests (they would commit or flush under it). On-commit callbacks
    queued while the data is built never run, as in a test. class_db: the same for a class."""
    yield from _shared_transaction(django_db_blocker)


@pytest.fixture(scope="class")
def class_db(django_db_setup, django_db_blocker) -> Iterator[None]:
    """module_db for the tests of one class (a matrix in a module with other tests)."""
    yield from _shared_transaction(django_db_blocker)


@pytest.fixture(scope="module")
def module_personas(module_db) -> Personas:
    """The personas, built once per module (see module_db): for the access matrices."""
    return make_personas()


@pytest.fixture(scope="class")
def class_personas(class_db) -> Personas:
    """The personas, built once per class (see module_db): for the access matrices."""
    return make_personas()
