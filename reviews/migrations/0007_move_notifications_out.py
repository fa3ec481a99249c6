"""Notification and Reminder moved to the notifications app. Only Django's idea of where the
models live changes: their tables (reviews_notification, reviews_reminder) and every row in them
stay exactly as they are; notifications/migrations/0001_initial.py takes them over."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("reviews", "0006_offload_dossier_render"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="Reminder"),
                migrations.DeleteModel(name="Notification"),
            ],
            database_operations=[],
        ),
    ]
