from django.apps import AppConfig


class EvidenceConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "evidence"
    verbose_name = "Evidence"

    def ready(self) -> None:
        from lifecycle import events
        from lifecycle.attachments import register_revision_source
        from lifecycle.panels import register_stage_panel

        from . import services
        from .panels import evidence_panel

        register_revision_source(services.draft_files_for_revision)
        events.subscribe(events.STAGE_SUBMITTED, services.freeze_revision_files)
        register_stage_panel(evidence_panel)
