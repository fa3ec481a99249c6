"""Accepting an invitation. The token in the URL proves the link, and the link is bound to the
address it was sent to: whoever is signed in as another account is refused and offered a
sign-out back to the link, and a new account gets the invited address. A link that cannot be
used says why on a clear page and never makes an account."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from accounts.models import User
from lifecycle import permissions as lifecycle_permissions
from lifecycle.errors import DomainError, InvalidAnswers, NotAllowed
from lifecycle.forms import add_service_errors

from .. import services
from ..forms import AcceptInvitationForm
from ..models import Invitation
from .common import domain_error_page, signed_in, stage_landing_url

# Gone for good (410) when expired, used or revoked; 404 when the token matches nothing.
UNUSABLE_STATUS = {
    "unknown": 404,
    "expired": 410,
    "accepted": 410,
    "revoked": 410,
    "awaiting_confirmation": 409,
}


def _landing_url(invitation: Invitation) -> str:
    if invitation.project_id and invitation.stage_definition_id:
        url = stage_landing_url(invitation.project, invitation.stage_definition)
        if url:
            return url
    return reverse("reviews:inbox")


def _unusable(request: HttpRequest, state: str) -> HttpResponse:
    error = services.InvitationUnusable(state)
    return render(
        request,
        "reviews/invitation_unusable.html",
        {"state": state, "message": error.message},
        status=UNUSABLE_STATUS.get(state, 410),
    )


def _wrong_account(request: HttpRequest, invitation: Invitation, token: str) -> HttpResponse:
    """Signed in as someone else: say so, and offer to sign out and come back to the link."""
    return render(
        request,
        "reviews/invitation_wrong_account.html",
        {
            "invitation": invitation,
            "here": reverse("reviews:invitation_accept", args=[token]),
        },
        status=403,
    )


def _page(
    request: HttpRequest,
    invitation: Invitation,
    token: str,
    *,
    form: AcceptInvitationForm | None = None,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    user = request.user
    context: dict[str, Any] = {
        "invitation": invitation,
        "form": form,
        "error": error,
        "on_team": invitation.project is not None
        and lifecycle_permissions.is_project_member(user, invitation.project),
        "in_course": lifecycle_permissions.is_course_member(user, invitation.course),
    }
    if not user.is_authenticated:
        context["account_exists"] = User.objects.filter(email__iexact=invitation.email).exists()
        here = reverse("reviews:invitation_accept", args=[token])
        context["login_url"] = f"{reverse('accounts:login')}?{urlencode({'next': here})}"
        if form is None and not context["account_exists"]:
            # The name the inviter typed, for the expert to keep or correct.
            context["form"] = AcceptInvitationForm(
                email=invitation.email, initial={"display_name": invitation.name}
            )
    return render(request, "reviews/invitation_accept.html", context, status=status)


@never_cache
@require_http_methods(["GET", "POST"])
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    invitation = services.invitation_for_token(token)
    state = invitation.state() if invitation is not None else "unknown"
    if invitation is None or state != "pending":
        return _unusable(request, state)
    if request.user.is_authenticated and not services.invitation_addressed_to(
        invitation, request.user
    ):
        return _wrong_account(request, invitation, token)
    if request.method == "GET":
        return _page(request, invitation, token)

    if request.user.is_authenticated:
        try:
            invitation, _ = services.invitation_accept(token=token, user=signed_in(request))
        except services.InvitationUnusable as unusable:
            return _unusable(request, unusable.state)
        except services.WrongInvitee:
            return _wrong_account(request, invitation, token)
        except NotAllowed as refused:
            return _page(request, invitation, token, error=refused.message, status=403)
        except DomainError as error:
            return domain_error_page(request, error)
        messages.success(request, _welcome(invitation))
        return redirect(_landing_url(invitation))

    if User.objects.filter(email__iexact=invitation.email).exists():
        return _page(request, invitation, token, status=400)
    form = AcceptInvitationForm(request.POST, email=invitation.email)
    if not form.is_valid():
        return _page(request, invitation, token, form=form, status=400)
    try:
        user, invitation, _ = services.invitation_accept_new_user(
            token=token,
            display_name=form.cleaned_data["display_name"],
            password=form.cleaned_data["password1"],
        )
    except services.InvitationUnusable as unusable:
        return _unusable(request, unusable.state)
    except InvalidAnswers as invalid:
        add_service_errors(form, invalid.errors)
        return _page(request, invitation, token, form=form, status=400)
    except DomainError as error:
        return domain_error_page(request, error)
    login(request, user, backend=settings.AUTHENTICATION_BACKENDS[0])
    messages.success(request, f"Welcome, {user.name}. " + _welcome(invitation))
    return redirect(_landing_url(invitation))


def _welcome(invitation: Invitation) -> str:
    if invitation.stage_definition is not None:
        return (
            f"You review “{invitation.stage_definition.title}” of “{invitation.project}”. "
            "Thank you for helping the team see what it cannot."
        )
    if invitation.project_id:
        return f"You review “{invitation.project}”: its stages wait in your inbox."
    return f"You joined {invitation.course.title} as a domain expert: staff will assign you."
