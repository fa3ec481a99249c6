from django.apps import AppConfig


class GradingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "grading"
    verbose_name = "Grading"

    def ready(self) -> None:
        from lifecycle.panels import register_stage_panel
        from reviews import decision_parts

        from .panels import due_panel, grade_panel
        from .rubric_part import rubric_part

        # The team sees its due date and the late rule on the project overview and stage page.
        register_stage_panel(due_panel)
        # A reviewer's rubric scores are part of their decision, written in its transaction.
        decision_parts.register(rubric_part)
        register_stage_panel(grade_panel)
