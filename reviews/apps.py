from django.apps import AppConfig


class ReviewsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "reviews"
    verbose_name = "Reviews"

    def ready(self) -> None:
        from evidence.permissions import register_stage_viewer
        from lifecycle import events, rule_hooks
        from lifecycle.panels import (
            register_home_panel,
            register_home_scope,
            register_stage_feedback,
            register_stage_panel,
        )

        from . import gate, navigation, template_rules
        from .feedback import post_thread_responses, stage_feedback
        from .home import waiting_panel
        from .panels import gate_panel
        from .permissions import can_see_stage

        register_stage_panel(gate_panel)
        register_home_panel(waiting_panel)
        # A reviewer's or staff member's panel lists stages of projects they are not on.
        register_home_scope(lambda request: not navigation.reviews_anything(request.user))
        # A revision's evidence files are seen by exactly those who see the revision.
        register_stage_viewer(can_see_stage)
        # lifecycle validates templates' gate rules by the kinds this layer evaluates.
        rule_hooks.register(
            validate=gate.rule_errors,
            demand=gate.rule_demand,
            kinds=lambda: sorted(gate.RULE_KINDS),
        )
        template_rules.connect()
        navigation.connect()
        register_stage_feedback(stage_feedback)
        # The team's per-thread answers on resubmission go into their threads, in the
        # submission's transaction.
        events.subscribe(events.STAGE_SUBMITTED, post_thread_responses)
