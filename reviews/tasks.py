"""Celery tasks of the review layer: thin wrappers that load ids and call a service. (The
outbox, reminder and audit-checkpoint tasks are in notifications/tasks.py.)"""

from __future__ import annotations

from celery import shared_task

from . import dossier_pdf


# The lease (DOSSIER_RENDER_LEASE_SECONDS, 300 s) outlasts the hard limit, so a render still
# running is never taken for abandoned.
@shared_task(name="reviews.render_dossier_pdf", acks_late=True, soft_time_limit=120, time_limit=150)
def render_dossier_pdf(render_id: int) -> str:
    return dossier_pdf.dossier_pdf_render(render_id)
