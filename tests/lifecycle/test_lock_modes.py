"""The row locks the services take are FOR NO KEY UPDATE: while a service holds them, another
transaction can still insert rows that reference the locked rows (PostgreSQL's foreign-key check
takes a KEY SHARE lock, which FOR UPDATE would block; see the commit that made every service
lock NO KEY). Each test holds a service's locks at the moment it records its audit event and,
from another connection, inserts a referencing row with a lock timeout: a wait is a failure.

PostgreSQL only: SQLite has no row locks, so these mutants are invisible there."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.db import connection, transaction
from factories import UserFactory, fill_and_submit

from lifecycle import services
from lifecycle.models import Membership, Role, StageRevision, Stakeholder


def uses_postgres() -> bool:
    return settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not uses_postgres(), reason="SQLite has no row locks"),
]


class _RolledBack(Exception):
    pass


def insert_elsewhere(insert: Callable[[], Any]) -> list[Exception]:
    """Run ``insert`` in another connection, its foreign keys checked at once, under a lock
    timeout, and roll it back. Returns what went wrong (a lock timeout if it had to wait)."""
    errors: list[Exception] = []

    def run() -> None:
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL lock_timeout = '5s'")
                    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                insert()
                raise _RolledBack
        except _RolledBack:
            pass
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the referencing insert hung"
    return errors


@pytest.fixture
def while_locked(monkeypatch):
    """Insert from another connection at the moment the service records its audit event,
    with every row lock of the service held."""
    errors: list[Exception] = []
    inserts: list[Callable[[], Any]] = []
    real = services.audit_record

    def audit_record(**kwargs: Any) -> Any:
        for insert in inserts:
            errors.extend(insert_elsewhere(insert))
        return real(**kwargs)

    monkeypatch.setattr(services, "audit_record", audit_record)
    return inserts, errors


def a_revision_of(stage, user) -> Callable[[], Any]:
    return lambda: StageRevision.objects.create(
        stage_id=stage.pk, number=99, content_sha256="0" * 64, created_by=user
    )


def test_submitting_does_not_block_references_to_the_project_and_the_stage(personas, while_locked):
    p = personas
    stage = p.project.stages.get(definition__order=1, cycle=1)
    inserts, errors = while_locked
    inserts.append(
        lambda: Stakeholder.objects.create(project_id=p.project.pk, name="N", kind="other")
    )
    inserts.append(a_revision_of(stage, p.alice))
    fill_and_submit(stage, p.alice)
    assert errors == []


def test_approving_does_not_block_references_to_the_stage_it_opens(personas, while_locked):
    p = personas
    stage = p.project.stages.get(definition__order=1, cycle=1)
    revision = fill_and_submit(stage, p.alice)
    following = p.project.stages.get(definition__order=2, cycle=1)
    inserts, errors = while_locked
    inserts.append(a_revision_of(following, p.alice))
    services.stage_mark_approved(stage=stage, revision=revision, actor=p.tina)
    assert errors == []


def test_changing_course_settings_does_not_block_enrolments(personas, while_locked):
    p = personas
    newcomer = UserFactory(email="newcomer@example.test")
    inserts, errors = while_locked
    inserts.append(
        lambda: Membership.objects.create(course_id=p.course.pk, user=newcomer, role=Role.STUDENT)
    )
    services.course_update_settings(course=p.course, actor=p.ian, term="Spring")
    assert errors == []
