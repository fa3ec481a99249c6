"""The append-only trail is as strong as the role the app connects as (PostgreSQL only):
connected as the role `db_app_role` creates, nothing that could rewrite history is allowed."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg2
import pytest
from django.core.management import call_command
from django.db import connection
from factories import fill_and_submit

from lifecycle.models import AuditEvent

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="roles and grants are PostgreSQL's"
    ),
]

TABLE = AuditEvent._meta.db_table


@pytest.fixture
def app_role() -> Iterator[str]:
    role = f"{connection.settings_dict['NAME']}_app"[:60]
    call_command("db_app_role", "--role", role, verbosity=0)
    yield role
    with connection.cursor() as cursor:
        cursor.execute(f'DROP OWNED BY "{role}"')
        cursor.execute(f'DROP ROLE IF EXISTS "{role}"')


@pytest.fixture
def as_app(app_role: str) -> Iterator[psycopg2.extensions.connection]:
    params = connection.get_connection_params()
    params.pop("password", None)
    params["user"] = app_role
    params.pop("cursor_factory", None)
    conn = psycopg2.connect(**params)
    conn.autocommit = True
    yield conn
    conn.close()


def refused(conn: psycopg2.extensions.connection, statement: str) -> str:
    with pytest.raises(psycopg2.Error) as caught, conn.cursor() as cursor:
        cursor.execute(statement)
    return str(caught.value)


@pytest.mark.parametrize(
    "statement",
    [
        f"TRUNCATE {TABLE}",
        f"DELETE FROM {TABLE}",
        f"UPDATE {TABLE} SET verb = 'forged'",
        f"ALTER TABLE {TABLE} DISABLE TRIGGER USER",
        f"ALTER TABLE {TABLE} DISABLE TRIGGER lifecycle_auditevent_append_only",
        f"DROP TRIGGER lifecycle_auditevent_append_only ON {TABLE}",
        f"DROP TABLE {TABLE}",
        "SET session_replication_role = replica",
        "CREATE TABLE lrb_audit_scratch (id int)",
    ],
)
def test_the_app_role_cannot_rewrite_or_unprotect_the_audit_trail(personas, as_app, statement):
    fill_and_submit(personas.project.stages.get(definition__order=1), personas.alice)
    before = list(AuditEvent.objects.order_by("seq").values_list("seq", "hash"))
    message = refused(as_app, statement)
    assert "permission denied" in message or "must be owner" in message, message
    assert list(AuditEvent.objects.order_by("seq").values_list("seq", "hash")) == before


def test_the_app_role_reads_and_appends_to_the_trail_and_writes_other_tables(personas, as_app):
    fill_and_submit(personas.project.stages.get(definition__order=1), personas.alice)
    with as_app.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {TABLE}")
        assert cursor.fetchone()[0] == AuditEvent.objects.count()
        cursor.execute(
            "UPDATE lifecycle_project SET title = title || '!' WHERE id = %s", [personas.project.pk]
        )
        assert cursor.rowcount == 1
        cursor.execute("SELECT has_table_privilege(current_user, %s, 'INSERT')", [TABLE])
        assert cursor.fetchone()[0] is True
        cursor.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user"
        )
        assert cursor.fetchone() == (False, False, False)


def test_the_app_role_gets_data_rights_on_tables_created_later(personas, app_role, as_app):
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE lrb_audit_later (id int)")
    try:
        with as_app.cursor() as cursor:
            cursor.execute("INSERT INTO lrb_audit_later VALUES (1)")
            cursor.execute("DELETE FROM lrb_audit_later")
        assert "permission denied" in refused(as_app, "TRUNCATE lrb_audit_later")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE lrb_audit_later")
