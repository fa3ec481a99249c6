"""Hash version 2 binds the actor's display name into each event's hash (lifecycle.audit).

Existing events keep hash_version 1 and are never rewritten: they verify with the rule they were
written with. On SQLite, adding a NOT NULL column rebuilds the table, which drops its triggers,
so the append-only triggers of migration 0002 are created again afterwards (on PostgreSQL the
column is added in place and the trigger stays).
"""

import importlib

from django.db import migrations, models

append_only = importlib.import_module("lifecycle.migrations.0002_audit_append_only")


def recreate_sqlite_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    with schema_editor.connection.cursor() as cursor:
        for statement in append_only.SQLITE_BACKWARD + append_only.SQLITE_FORWARD:
            cursor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("lifecycle", "0006_perf_indexes")]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="actor_name",
            field=models.CharField(blank=True, default="", max_length=150),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="hash_version",
            field=models.PositiveSmallIntegerField(default=1),
        ),
        migrations.RunPython(recreate_sqlite_triggers, migrations.RunPython.noop),
    ]
