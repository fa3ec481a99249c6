from django.apps import AppConfig


class LtiConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "lti"
    verbose_name = "LTI 1.3 (learning platforms)"

    def ready(self) -> None:
        from grading import events as grading_events
        from grading.export import register_lms_id_source
        from lifecycle import events

        from . import grading_hooks

        events.subscribe(grading_events.STAGE_GRADE_SET, grading_hooks.stage_grade_set)
        events.subscribe(grading_events.PROJECT_GRADE_SET, grading_hooks.project_grade_set)
        register_lms_id_source(grading_hooks.lms_user_ids)
