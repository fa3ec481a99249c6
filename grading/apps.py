from django.apps import AppConfig


class GradingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "grading"
    verbose_name = "Grading"

    def ready(self) -> None:
        from lifecycle.panels import register_stage_panel

        from .panels import due_panel

        # The team sees its due date and the late rule on the project overview and stage page.
        register_stage_panel(due_panel)
