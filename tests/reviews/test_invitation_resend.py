"""An invitation whose e-mail failed is not lost: it can be resent with a fresh token."""

from __future__ import annotations

import pytest
from django.core import mail

from reviews import services
from reviews.models import Invitation

pytestmark = pytest.mark.django_db


def test_a_failed_invitation_e_mail_leaves_it_unsent_and_a_resend_works(
    personas, monkeypatch, django_capture_on_commit_callbacks
):
    from django.core.mail.backends.locmem import EmailBackend

    def broken(self, messages):
        raise ConnectionRefusedError("SMTP server down")

    with monkeypatch.context() as patch:
        patch.setattr(EmailBackend, "send_messages", broken)
        with django_capture_on_commit_callbacks(execute=True):
            invitation, old_token = services.invitation_create(
                actor=personas.tina,
                course=personas.course,
                email="dr.who@example.org",
                project=personas.project,
            )
    invitation.refresh_from_db()
    assert invitation.sent_at is None
    assert len(mail.outbox) == 0

    with django_capture_on_commit_callbacks(execute=True):
        _, token = services.invitation_resend(invitation=invitation, actor=personas.tina)
    invitation.refresh_from_db()
    assert invitation.sent_at is not None
    assert token != old_token
    assert token in mail.outbox[0].body
    assert services.invitation_for_token(old_token) is None
    assert Invitation.objects.filter(
        pk=invitation.pk, token_hash=services.hash_token(token)
    ).exists()


def test_only_the_inviter_or_staff_resend(personas):
    invitation, _ = services.invitation_create(
        actor=personas.tina, course=personas.course, email="x@example.org", project=personas.project
    )
    with pytest.raises(services.NotAllowed):
        services.invitation_resend(invitation=invitation, actor=personas.carol)
