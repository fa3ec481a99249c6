"""The default template's stages get the lecture's rubrics (issue 15). Other templates keep
an empty rubric: their stages are not graded until a course's editor gives them one."""

from django.db import migrations


def add_rubrics(apps, schema_editor):
    from lifecycle.default_template import DEFAULT_TEMPLATE

    stage_model = apps.get_model("lifecycle", "StageDefinition")
    stages = stage_model._default_manager.using(schema_editor.connection.alias)
    for data in DEFAULT_TEMPLATE["stages"]:
        if data.get("rubric"):
            stages.filter(
                template__slug=DEFAULT_TEMPLATE["slug"],
                template__version=DEFAULT_TEMPLATE["version"],
                key=data["key"],
                rubric={},
            ).update(rubric=data["rubric"])


def remove_rubrics(apps, schema_editor):
    from lifecycle.default_template import DEFAULT_TEMPLATE

    stage_model = apps.get_model("lifecycle", "StageDefinition")
    stage_model._default_manager.using(schema_editor.connection.alias).filter(
        template__slug=DEFAULT_TEMPLATE["slug"], template__version=DEFAULT_TEMPLATE["version"]
    ).update(rubric={})


class Migration(migrations.Migration):
    dependencies = [("lifecycle", "0015_editor_roster_teams")]

    operations = [migrations.RunPython(add_rubrics, remove_rubrics)]
