"""Celery tasks of the API app: thin wrappers, each safe to run twice (deliveries are claimed)."""

from __future__ import annotations

from celery import shared_task

from . import webhooks


@shared_task(name="api.deliver_webhook", acks_late=True, soft_time_limit=30, time_limit=45)
def deliver_webhook(delivery_id: int) -> str:
    return webhooks.deliver(delivery_id)


@shared_task(name="api.sweep_webhooks", acks_late=True, soft_time_limit=60, time_limit=90)
def sweep_webhooks() -> dict[str, int]:
    return webhooks.sweep()
