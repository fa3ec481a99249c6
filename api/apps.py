from django.apps import AppConfig


class ApiConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "api"
    verbose_name = "API and webhooks"

    def ready(self) -> None:
        from . import schema, webhooks  # noqa: F401  (schema registers its extension)

        webhooks.connect()
