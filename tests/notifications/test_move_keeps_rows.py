"""Moving Notification and Reminder from reviews to notifications changed Django's state only:
a database migrated from before the move keeps every notification and reminder, in the same
tables, and the permissions granted on them."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from factories import UserFactory

from notifications.models import EmailStatus, Notification, Reminder

BEFORE_THE_MOVE = [("reviews", "0006_offload_dossier_render"), ("notifications", None)]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state([t for t in targets if t[1] is not None]).apps


def _latest():
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True)
def test_migrating_from_the_schema_before_the_move_keeps_notification_rows():
    alice = UserFactory(email="alice@example.test")
    old_apps = _migrate(BEFORE_THE_MOVE)
    OldNotification = old_apps.get_model("reviews", "Notification")
    OldReminder = old_apps.get_model("reviews", "Reminder")
    row = OldNotification.objects.create(
        recipient_id=alice.pk,
        email=alice.email,
        kind="nudge",
        subject="A nudge from before the move",
        dedupe_key="nudge:before-the-move:u1",
        email_status="digest",
    )
    OldReminder.objects.create(kind="due_soon", identity="due_soon:s1:2026-12-01")
    # A permission granted while the model lived in reviews.
    old_type = ContentType.objects.get(app_label="reviews", model="notification")
    alice.user_permissions.add(
        Permission.objects.get(content_type=old_type, codename="change_notification")
    )

    _migrate(_latest())

    kept = Notification.objects.get(pk=row.pk)
    assert (kept.subject, kept.recipient_id, kept.email_status) == (
        "A nudge from before the move",
        alice.pk,
        EmailStatus.DIGEST,
    )
    assert Reminder.objects.filter(identity="due_soon:s1:2026-12-01").exists()
    assert Notification._meta.db_table == "reviews_notification"
    alice = type(alice).objects.get(pk=alice.pk)  # a fresh permission cache
    assert alice.has_perm("notifications.change_notification")
    assert not ContentType.objects.filter(app_label="reviews", model="notification").exists()
