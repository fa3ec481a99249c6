from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        from . import proposal_subscribers, roster_subscribers, subscribers, unread

        unread.connect()
        subscribers.connect()
        proposal_subscribers.connect()
        roster_subscribers.connect()
