from django.apps import AppConfig


class ReviewsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "reviews"
    verbose_name = "Reviews"

    def ready(self) -> None:
        from lifecycle.panels import register_stage_panel

        from .panels import gate_panel

        register_stage_panel(gate_panel)
