"""The notifications app takes over Notification and Reminder from reviews with their tables as
they are: the models are created in Django's state only (reviews 0007 dropped them from its
own), so migrating a database that already holds notifications keeps every row. The content
types move with them, so admin permissions granted on them (e.g. "change notification" for the
outbox's retry action) and the admin history stay attached."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


def move_content_types(apps, schema_editor):
    _relabel(apps, "reviews", "notifications")


def restore_content_types(apps, schema_editor):
    _relabel(apps, "notifications", "reviews")


def _relabel(apps, old, new):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in ("notification", "reminder"):
        if not ContentType.objects.filter(app_label=new, model=model).exists():
            ContentType.objects.filter(app_label=old, model=model).update(app_label=new)


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("lifecycle", "0008_invites_join_codes_and_expert_confirmation"),
        ("reviews", "0007_move_notifications_out"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Reminder",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "kind",
                            models.CharField(
                                choices=[
                                    ("review_requested", "Review requested"),
                                    ("changes_requested", "Changes requested"),
                                    ("resubmitted", "Revision resubmitted"),
                                    ("stage_approved", "Stage approved"),
                                    ("looped_back", "Project looped back"),
                                    ("invitation", "Invitation"),
                                    ("override", "Instructor override"),
                                    ("due_soon", "Due date approaching"),
                                    ("changes_unanswered", "Change request unanswered"),
                                    ("review_reminder", "Review reminder"),
                                    ("review_escalation", "Overdue review escalated"),
                                    ("nudge", "Nudge from course staff"),
                                    ("audit_checkpoint", "Audit checkpoint"),
                                ],
                                max_length=24,
                            ),
                        ),
                        ("sequence", models.PositiveSmallIntegerField(default=1)),
                        ("identity", models.CharField(max_length=120, unique=True)),
                        ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                        (
                            "assignment",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="reminders",
                                to="reviews.reviewassignment",
                            ),
                        ),
                        (
                            "revision",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="+",
                                to="lifecycle.stagerevision",
                            ),
                        ),
                        (
                            "stage",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="+",
                                to="lifecycle.projectstage",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "reviews_reminder",
                        "ordering": ["created_at"],
                    },
                ),
                migrations.CreateModel(
                    name="Notification",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "email",
                            models.EmailField(
                                help_text="Where the e-mail goes (the recipient's at the time).",
                                max_length=254,
                            ),
                        ),
                        (
                            "kind",
                            models.CharField(
                                choices=[
                                    ("review_requested", "Review requested"),
                                    ("changes_requested", "Changes requested"),
                                    ("resubmitted", "Revision resubmitted"),
                                    ("stage_approved", "Stage approved"),
                                    ("looped_back", "Project looped back"),
                                    ("invitation", "Invitation"),
                                    ("override", "Instructor override"),
                                    ("due_soon", "Due date approaching"),
                                    ("changes_unanswered", "Change request unanswered"),
                                    ("review_reminder", "Review reminder"),
                                    ("review_escalation", "Overdue review escalated"),
                                    ("nudge", "Nudge from course staff"),
                                    ("audit_checkpoint", "Audit checkpoint"),
                                ],
                                max_length=24,
                            ),
                        ),
                        ("subject", models.CharField(max_length=250)),
                        ("body", models.TextField(blank=True)),
                        ("link", models.CharField(blank=True, max_length=500)),
                        ("payload", models.JSONField(blank=True, default=dict)),
                        ("dedupe_key", models.CharField(max_length=200, unique=True)),
                        (
                            "created_at",
                            models.DateTimeField(db_index=True, default=django.utils.timezone.now),
                        ),
                        ("read_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "email_status",
                            models.CharField(
                                choices=[
                                    ("pending", "Pending"),
                                    ("sending", "Sending"),
                                    ("sent", "Sent"),
                                    ("failed", "Failed"),
                                    ("digest", "Waiting for the daily digest"),
                                    ("digested", "Sent in a digest"),
                                ],
                                default="pending",
                                max_length=10,
                            ),
                        ),
                        ("email_attempts", models.PositiveSmallIntegerField(default=0)),
                        (
                            "email_next_attempt_at",
                            models.DateTimeField(default=django.utils.timezone.now),
                        ),
                        ("email_claimed_at", models.DateTimeField(blank=True, null=True)),
                        ("email_sent_at", models.DateTimeField(blank=True, null=True)),
                        ("email_error", models.TextField(blank=True)),
                        (
                            "project",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="+",
                                to="lifecycle.project",
                            ),
                        ),
                        (
                            "recipient",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="notifications",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "stage",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="+",
                                to="lifecycle.projectstage",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "reviews_notification",
                        "ordering": ["-created_at", "-pk"],
                        "indexes": [
                            models.Index(
                                fields=["recipient", "read_at"], name="notification_unread"
                            ),
                            models.Index(
                                fields=["email_status", "email_next_attempt_at"],
                                name="notification_outbox",
                            ),
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_types, restore_content_types),
    ]
