"""Create (or bring up to date) the least-privilege PostgreSQL role the app runs as.

Run it as the role that owns the tables, after ``migrate`` (docker-compose's ``migrate``
service does both). The app role owns nothing and may not change the schema, so it cannot
TRUNCATE, ALTER or DROP a table, disable or drop a trigger, or switch
``session_replication_role``; on the audit table it may only SELECT and INSERT, so the
append-only rule no longer rests on the trigger alone. Default privileges give it the same
data rights on tables later migrations create.
"""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from psycopg2 import sql

from lifecycle.models import AuditEvent


def app_role_statements(role: str, password: str | None) -> list[Any]:
    name = sql.Identifier(role)
    audit = sql.Identifier(AuditEvent._meta.db_table)
    attributes = sql.SQL(
        "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT LOGIN"
    )
    statements: list[Any] = [
        sql.SQL(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {literal}) THEN "
            "CREATE ROLE {name}; END IF; END $$"
        ).format(literal=sql.Literal(role), name=name),
        sql.SQL("ALTER ROLE {name} {attributes}").format(name=name, attributes=attributes),
    ]
    if password:
        statements.append(
            sql.SQL("ALTER ROLE {name} PASSWORD {password}").format(
                name=name, password=sql.Literal(password)
            )
        )
    statements += [
        sql.SQL("GRANT CONNECT ON DATABASE {db} TO {name}").format(
            db=sql.Identifier(connection.settings_dict["NAME"]), name=name
        ),
        sql.SQL("GRANT USAGE ON SCHEMA public TO {name}").format(name=name),
        # PostgreSQL before 15 lets PUBLIC create in the public schema.
        sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC, {name}").format(name=name),
        sql.SQL(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {name}"
        ).format(name=name),
        sql.SQL(
            "REVOKE TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA public FROM {name}"
        ).format(name=name),
        sql.SQL("REVOKE UPDATE, DELETE ON {audit} FROM {name}").format(audit=audit, name=name),
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {name}").format(
            name=name
        ),
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
            "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {name}"
        ).format(name=name),
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {name}"
        ).format(name=name),
    ]
    return statements


class Command(BaseCommand):
    help = (
        "PostgreSQL: create or update the app's least-privilege role (no ownership, no DDL, "
        "no TRUNCATE; SELECT and INSERT only on the audit table). Run as the owner after migrate."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--role", default=os.environ.get("APP_DB_ROLE", "lrb_app"))
        parser.add_argument(
            "--password-env",
            default="APP_DB_PASSWORD",
            help="Environment variable holding the role's password (left unchanged if unset).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("The app role is a PostgreSQL matter; SQLite has no roles.")
        role = options["role"]
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_user")
            owner = cursor.fetchone()[0]
        if role == owner:
            raise CommandError(f"Run this as the owner role, not as {role!r} itself.")
        password = os.environ.get(options["password_env"]) or None
        with transaction.atomic(), connection.cursor() as cursor:
            for statement in app_role_statements(role, password):
                cursor.execute(statement.as_string(cursor.cursor))
        self.stdout.write(
            f"Role {role}: SELECT/INSERT/UPDATE/DELETE on the app's tables, SELECT/INSERT only "
            f"on {AuditEvent._meta.db_table}; no ownership, no DDL, no TRUNCATE (owner: {owner})."
        )
