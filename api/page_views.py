"""The pages of the API app: a person's access tokens (from the profile page), the tokens of a
course's members for its staff, and the webhooks of a course or a project with their delivery
log and redelivery."""

from __future__ import annotations

from typing import Any, cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from accounts.models import User
from accounts.reauth import recent_auth_required
from lifecycle import permissions as lifecycle_permissions
from lifecycle import selectors as lifecycle_selectors
from lifecycle.errors import DomainError, InvalidAnswers
from lifecycle.forms import add_service_errors
from lifecycle.models import Course, Membership

from . import services, webhooks
from .forms import TokenForm, WebhookForm
from .models import PersonalAccessToken, Webhook, WebhookDelivery


def _form_errors(form: Any, error: DomainError) -> None:
    if isinstance(error, InvalidAnswers):
        add_service_errors(form, error.errors)
    else:
        form.add_error(None, error.message)


@login_required
@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest) -> HttpResponse:
    user = cast(User, request.user)  # login_required
    form = TokenForm(request.POST or None)
    secret = ""
    if request.method == "POST" and form.is_valid():
        try:
            token, secret = services.token_create(user=user, **form.cleaned_data)
        except DomainError as error:
            _form_errors(form, error)
        else:
            messages.success(request, f"Token “{token.name}” created. Copy it now.")
            form = TokenForm()
    rows = PersonalAccessToken.objects.filter(user=user).order_by("-created_at")[:100]
    response = render(
        request,
        "api/tokens.html",
        {"form": form, "tokens": rows, "secret": secret},
        status=400 if form.is_bound and form.errors else 200,
    )
    response["Cache-Control"] = "no-store"  # the page may show a secret once
    return response


def _own_or_members_token(user: Any, pk: int) -> PersonalAccessToken:
    token = PersonalAccessToken.objects.filter(pk=pk).first()
    if token is None or not services.can_revoke_token(user, token):
        raise Http404("No such token.")
    return token


@login_required
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = _own_or_members_token(request.user, pk)
    services.token_revoke(token=token, actor=request.user)
    messages.success(request, f"Token “{token.name}” revoked.")
    course = request.POST.get("course")
    if course and course.isdigit():
        return redirect("api_pages:course_tokens", int(course))
    return redirect("api_pages:tokens")


def _course_for_staff(user: Any, pk: int) -> Course:
    course = lifecycle_selectors.courses_for_user(user).filter(pk=pk).first()
    if course is None or not lifecycle_permissions.is_course_staff(user, course):
        raise Http404("No such course.")
    return course


@login_required
def course_tokens(request: HttpRequest, course_pk: int) -> HttpResponse:
    course = _course_for_staff(request.user, course_pk)
    members = Membership.objects.filter(course=course).values("user_id")
    rows = (
        PersonalAccessToken.objects.filter(user_id__in=members, revoked_at__isnull=True)
        .select_related("user")
        .order_by("user__email", "-created_at")[:200]
    )
    return render(request, "api/course_tokens.html", {"course": course, "tokens": rows})


# --- webhooks ------------------------------------------------------------------------------


def _hook_owner(user: Any, *, course_pk: int | None, project_pk: int | None) -> dict[str, Any]:
    if course_pk is not None:
        return {"course": _course_for_staff(user, course_pk), "project": None}
    project = lifecycle_selectors.get_project_for_user(user, project_pk)  # type: ignore[arg-type]
    if not services.can_manage_hooks(user, course=None, project=project):
        raise Http404("No such project.")
    return {"course": None, "project": project}


def _hooks_url(owner: dict[str, Any]) -> str:
    if owner["course"] is not None:
        return reverse("api_pages:course_webhooks", args=[owner["course"].pk])
    return reverse("api_pages:project_webhooks", args=[owner["project"].pk])


@login_required
@require_http_methods(["GET", "POST"])
def webhooks_page(
    request: HttpRequest, course_pk: int | None = None, project_pk: int | None = None
) -> HttpResponse:
    owner = _hook_owner(request.user, course_pk=course_pk, project_pk=project_pk)
    form = WebhookForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            hook = services.webhook_create(actor=request.user, **owner, **form.cleaned_data)
        except DomainError as error:
            _form_errors(form, error)
        else:
            messages.success(request, "Webhook added. Copy its secret to verify signatures.")
            return redirect("api_pages:webhook", hook.pk)
    hooks = Webhook.objects.filter(active=True, **owner).order_by("-created_at")[:50]
    return render(
        request,
        "api/webhooks.html",
        {**owner, "form": form, "hooks": hooks},
        status=400 if form.is_bound and form.errors else 200,
    )


def _hook_for_user(user: Any, pk: int) -> Webhook:
    hook = Webhook.objects.select_related("course", "project__course").filter(pk=pk).first()
    if hook is None:
        raise Http404("No such webhook.")
    if hook.course is not None:
        _course_for_staff(user, hook.course_id)  # type: ignore[arg-type]
    else:
        _hook_owner(user, course_pk=None, project_pk=hook.project_id)
    return hook


@login_required
def webhook_detail(request: HttpRequest, pk: int) -> HttpResponse:
    hook = _hook_for_user(request.user, pk)
    owner = {"course": hook.course, "project": hook.project}
    response = render(
        request,
        "api/webhook_detail.html",
        {
            "hook": hook,
            "deliveries": webhooks.deliveries_of(hook),
            "back_url": _hooks_url(owner),
            "signature_header": webhooks.SIGNATURE_HEADER,
        },
    )
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def webhook_delete(request: HttpRequest, pk: int) -> HttpResponse:
    hook = _hook_for_user(request.user, pk)
    services.webhook_delete(hook=hook, actor=request.user)
    messages.success(request, "Webhook removed; nothing more is sent to it.")
    return redirect(_hooks_url({"course": hook.course, "project": hook.project}))


@login_required
@require_POST
def webhook_redeliver(request: HttpRequest, pk: int, delivery_pk: int) -> HttpResponse:
    hook = _hook_for_user(request.user, pk)
    delivery = WebhookDelivery.objects.filter(pk=delivery_pk, webhook=hook).first()
    if delivery is None:
        raise Http404("No such delivery.")
    webhooks.redeliver(delivery)
    messages.success(request, "Queued for redelivery.")
    return redirect("api_pages:webhook", hook.pk)


# Course staff re-enter their password before they see or revoke their members' tokens.
course_tokens = recent_auth_required(course_tokens)
