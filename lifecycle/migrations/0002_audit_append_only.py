"""The audit table refuses UPDATE and DELETE in the database itself, on both backends."""

from django.db import migrations

TABLE = "lifecycle_auditevent"

SQLITE_FORWARD = [
    f"""CREATE TRIGGER lifecycle_auditevent_no_update BEFORE UPDATE ON {TABLE}
        BEGIN SELECT RAISE(ABORT, 'audit events are append-only: UPDATE refused'); END;""",
    # lrb_audit_purge_allowed() is registered by the app on Django's connections and answers 1
    # only in the test settings (the test runner empties tables between tests). Anywhere else
    # the function is missing or answers 0, so DELETE fails.
    f"""CREATE TRIGGER lifecycle_auditevent_no_delete BEFORE DELETE ON {TABLE}
        WHEN lrb_audit_purge_allowed() = 0
        BEGIN SELECT RAISE(ABORT, 'audit events are append-only: DELETE refused'); END;""",
]
SQLITE_BACKWARD = [
    "DROP TRIGGER IF EXISTS lifecycle_auditevent_no_update;",
    "DROP TRIGGER IF EXISTS lifecycle_auditevent_no_delete;",
]

POSTGRES_FORWARD = [
    """CREATE OR REPLACE FUNCTION lifecycle_auditevent_refuse() RETURNS trigger AS $$
       BEGIN
         RAISE EXCEPTION 'audit events are append-only: % refused', TG_OP
           USING ERRCODE = 'insufficient_privilege';
       END;
       $$ LANGUAGE plpgsql;""",
    f"""CREATE TRIGGER lifecycle_auditevent_append_only BEFORE UPDATE OR DELETE ON {TABLE}
        FOR EACH ROW EXECUTE FUNCTION lifecycle_auditevent_refuse();""",
]
POSTGRES_BACKWARD = [
    f"DROP TRIGGER IF EXISTS lifecycle_auditevent_append_only ON {TABLE};",
    "DROP FUNCTION IF EXISTS lifecycle_auditevent_refuse();",
]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        # A cursor without parameters, so that PL/pgSQL's own % placeholders pass untouched.
        with schema_editor.connection.cursor() as cursor:
            for statement in statements_by_vendor.get(schema_editor.connection.vendor, []):
                cursor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("lifecycle", "0001_initial")]

    operations = [
        migrations.RunPython(
            _run({"sqlite": SQLITE_FORWARD, "postgresql": POSTGRES_FORWARD}),
            _run({"sqlite": SQLITE_BACKWARD, "postgresql": POSTGRES_BACKWARD}),
        ),
    ]
