"""A person's unread-notification count (the navbar's badge), cached per person."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.cache import cache
from django.db import transaction

from .models import Notification

# The count, kept per person in Django's cache for UNREAD_SECONDS. Every way a notification is
# written or read goes through services.store() and the mark-read services, which forget the
# people's counts (now, and again after the commit); a row saved or deleted any other way (the
# admin) forgets its recipient's too.
UNREAD_SECONDS = 300


def _key(user_id: int) -> str:
    return f"lrbunread:{user_id}"


def unread_count(user: Any) -> int:
    """One COUNT on the (recipient, read_at) index, or none while the cache remembers it;
    nothing at all for anonymous visitors."""
    if not getattr(user, "is_authenticated", False):
        return 0
    count = cache.get(_key(user.pk))
    if count is None:
        count = Notification.objects.filter(recipient_id=user.pk, read_at__isnull=True).count()
        cache.set(_key(user.pk), count, UNREAD_SECONDS)
    return int(count)


def forget_unread(user_ids: Iterable[int | None]) -> None:
    keys = [_key(pk) for pk in set(user_ids) if pk is not None]
    if not keys:
        return
    cache.delete_many(keys)
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(lambda: cache.delete_many(keys))


def forget_on_change(sender: Any, instance: Notification, **kwargs: Any) -> None:
    forget_unread([instance.recipient_id])


def connect() -> None:
    from django.db.models.signals import post_delete, post_save

    post_save.connect(forget_on_change, sender=Notification, dispatch_uid="notifications.unread")
    post_delete.connect(
        forget_on_change, sender=Notification, dispatch_uid="notifications.unread.deleted"
    )
