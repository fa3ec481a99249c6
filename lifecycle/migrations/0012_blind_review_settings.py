"""Blind review as course and stage settings (issue 11, item 7).

Independent review was a yes/no flag on a template's stage, meaning "every reviewer decides
blind"; it becomes a choice (off / domain experts / everyone) there, and the course may set it
for all its stages or stage by stage. The default template's stages take the value its data now
gives them (blind for the expert part of the gate). A course may also show its reviewers to the
team anonymously.
"""

from django.db import migrations, models


def convert_flag(apps, schema_editor):
    from lifecycle.default_template import DEFAULT_TEMPLATE

    stage_model = apps.get_model("lifecycle", "StageDefinition")
    stages = stage_model._default_manager.using(schema_editor.connection.alias)
    stages.filter(independent_review_flag=True).update(independent_review="everyone")
    for data in DEFAULT_TEMPLATE["stages"]:
        stages.filter(
            template__slug=DEFAULT_TEMPLATE["slug"],
            template__version=DEFAULT_TEMPLATE["version"],
            key=data["key"],
            independent_review_flag=False,
        ).update(independent_review=data["independent_review"])


def restore_flag(apps, schema_editor):
    stage_model = apps.get_model("lifecycle", "StageDefinition")
    stages = stage_model._default_manager.using(schema_editor.connection.alias)
    stages.filter(independent_review="everyone").update(independent_review_flag=True)


class Migration(migrations.Migration):
    dependencies = [("lifecycle", "0011_not_pursued_proposals")]

    operations = [
        migrations.RenameField(
            model_name="stagedefinition",
            old_name="independent_review",
            new_name="independent_review_flag",
        ),
        migrations.AddField(
            model_name="stagedefinition",
            name="independent_review",
            field=models.CharField(
                choices=[
                    ("off", "Off: reviewers see each other's decisions and comments at once"),
                    (
                        "experts",
                        "Domain experts decide before they see the others' decisions and comments",
                    ),
                    (
                        "everyone",
                        "Every reviewer decides before seeing the others' decisions and comments",
                    ),
                ],
                default="off",
                help_text="Who decides before seeing the other reviewers' decisions and comments.",
                max_length=10,
            ),
        ),
        migrations.RunPython(convert_flag, restore_flag),
        migrations.RemoveField(model_name="stagedefinition", name="independent_review_flag"),
        migrations.AddField(
            model_name="course",
            name="independent_review",
            field=models.CharField(
                blank=True,
                choices=[
                    ("off", "Off: reviewers see each other's decisions and comments at once"),
                    (
                        "experts",
                        "Domain experts decide before they see the others' decisions and comments",
                    ),
                    (
                        "everyone",
                        "Every reviewer decides before seeing the others' decisions and comments",
                    ),
                ],
                default="",
                help_text=(
                    "Independent review for every stage; empty: as the template sets each stage."
                ),
                max_length=10,
            ),
        ),
        migrations.AddField(
            model_name="course",
            name="independent_review_stages",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name="course",
            name="anonymous_reviewers",
            field=models.BooleanField(
                default=False,
                help_text=(
                    "The team sees 'Reviewer A, domain expert' instead of reviewers' names; "
                    "course staff and the audit trail keep the names."
                ),
            ),
        ),
    ]
