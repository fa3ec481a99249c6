from django.apps import AppConfig


class LifecycleConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "lifecycle"
    verbose_name = "Lifecycle"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from . import audit, freshness

        connection_created.connect(audit.register_sqlite_functions)
        freshness.connect()
