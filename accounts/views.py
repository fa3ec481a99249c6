"""Signing up, signing in and out, passwords, and a person's own profile.

The password views are Django's, pointed at crispy templates; the sign-in throttle is
django-axes (accounts/throttle.py), which every ``authenticate`` call with a request passes.
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import parse_qs, urlencode, urlsplit

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm, SetPasswordForm
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

# The one place accounts reaches up into lifecycle: signing up from an invitation link joins
# the course in the same transaction, so a wrong code creates no half-finished account.
from lifecycle.errors import DomainError
from lifecycle.services import course_for_join_code, course_join

from . import services
from .forms import (
    ConfirmPasswordForm,
    PasswordChangeLayoutForm,
    PasswordResetLayoutForm,
    ProfileForm,
    SetPasswordLayoutForm,
    SignInForm,
    SignUpForm,
)
from .models import User
from .reauth import password_confirmed_now, password_confirmed_recently
from .throttle import client_ip, forget_failures_of


def _safe_next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return ""


def sign_up_url(next_url: str) -> str:
    """The sign-up link for someone sent to sign in on the way to ``next_url``: a join link's
    code travels along, so a newcomer from an invitation e-mail lands in the course."""
    if not next_url:
        return reverse("accounts:signup")
    parts = urlsplit(next_url)
    code = parse_qs(parts.query).get("code", [""])[0]
    if parts.path == reverse("lifecycle:course_join") and code:
        return f"{reverse('accounts:signup')}?{urlencode({'code': code})}"
    return f"{reverse('accounts:signup')}?{urlencode({'next': next_url})}"


class SignInView(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = SignInForm
    redirect_authenticated_user = True

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        response = super().form_valid(form)
        password_confirmed_now(self.request)
        return response

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["signup_url"] = sign_up_url(context.get(self.redirect_field_name) or "")
        return context


@require_http_methods(["GET", "POST"])
def sign_up(request: HttpRequest) -> HttpResponse:
    """Create an account and sign in. The account joins no course until its address is
    verified: the e-mailed link does that, and carries a join code typed here along."""
    next_url = _safe_next(request)
    if request.user.is_authenticated:
        code = request.GET.get("code", "")
        if code:
            return redirect(f"{reverse('lifecycle:course_join')}?{urlencode({'code': code})}")
        return redirect(next_url or "home")
    if request.method == "POST":
        form = SignUpForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                if data["code"]:
                    course_for_join_code(data["code"])  # a clear error before any account
                services.sign_up_take_place(ip=client_ip(request), join_code=data["code"])
                with transaction.atomic():
                    user = services.user_sign_up(
                        email=data["email"],
                        password=data["password1"],
                        display_name=data["display_name"],
                    )
                    services.email_verification_send(user=user, join_code=data["code"])
            except services.EmailTaken:
                form.add_email_taken_error()
            except services.SignUpLimited as limited:
                form.add_error(
                    None if limited.field == "__all__" else limited.field, limited.message
                )
            except DomainError as error:
                form.add_error("code", error.message)
            else:
                login(request, user)
                messages.success(
                    request,
                    f"Welcome, {user.name}. We sent a link to {user.email}: follow it to verify "
                    "your address" + (" and join the course." if data["code"] else "."),
                )
                return redirect(next_url or "accounts:verify_email_pending")
    else:
        form = SignUpForm(initial={"code": request.GET.get("code", "").strip().upper()})
    code = (form["code"].value() or "").strip()
    after_sign_in = next_url or (
        f"{reverse('lifecycle:course_join')}?{urlencode({'code': code})}" if code else ""
    )
    sign_in_url = reverse("accounts:login")
    if after_sign_in:
        sign_in_url += "?" + urlencode({"next": after_sign_in})
    return render(
        request,
        "accounts/signup.html",
        {"form": form, "next": next_url, "sign_in_url": sign_in_url},
        status=400 if form.is_bound else 200,
    )


@never_cache
@require_GET
def verify_email(request: HttpRequest, token: str) -> HttpResponse:
    """The link from the verification e-mail. It works signed in or not (the token names the
    account); a join code given at sign-up is used now."""
    try:
        verified = services.email_verify(token=token)
    except services.VerificationFailed as failed:
        return render(
            request, "accounts/verify_email_failed.html", {"message": failed.message}, status=400
        )
    user = verified.user
    if verified.join_code:
        try:
            membership = course_join(user=user, join_code=verified.join_code)
        except DomainError as error:
            messages.warning(request, f"Your address is verified. {error.message}")
        else:
            messages.success(
                request, f"Your address is verified and you have joined {membership.course.title}."
            )
            if request.user.is_authenticated and request.user.pk == user.pk:
                return redirect("lifecycle:course_detail", course_pk=membership.course_id)
            return redirect("accounts:login")
    else:
        messages.success(request, "Your e-mail address is verified. Thank you.")
    if request.user.is_authenticated and request.user.pk == user.pk:
        return redirect("home")
    return redirect("accounts:login")


@login_required
@require_http_methods(["GET", "POST"])
def verify_email_pending(request: HttpRequest) -> HttpResponse:
    """What an unverified account sees, with a button for another link."""
    user = cast(User, request.user)
    if user.email_verified_at is not None:
        return redirect("home")
    if request.method == "POST":
        with transaction.atomic():
            sent = services.email_verification_send(user=user)
        if sent:
            messages.success(request, f"A new link is on its way to {user.email}.")
        else:
            messages.info(request, "A link was sent a moment ago: wait a minute before the next.")
        return redirect("accounts:verify_email_pending")
    return render(request, "accounts/verify_email_pending.html", {})


class SignOutView(auth_views.LogoutView):
    """POST only (Django's LogoutView answers GET with 405): a link or an <img> elsewhere
    cannot sign anyone out."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = super().post(request, *args, **kwargs)
        messages.info(request, "You have signed out.")
        return response


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "accounts/password_change_form.html"
    form_class = PasswordChangeLayoutForm
    success_url = reverse_lazy("accounts:password_change_done")

    def get_form_kwargs(self) -> dict[str, Any]:
        return {**super().get_form_kwargs(), "request": self.request}

    def form_valid(self, form: PasswordChangeLayoutForm) -> HttpResponse:  # type: ignore[override]
        response = super().form_valid(form)
        password_confirmed_now(self.request)  # the session survives the change; it typed both
        return response


class PasswordChangeDoneView(auth_views.PasswordChangeDoneView):
    template_name = "accounts/password_change_done.html"


class PasswordResetView(auth_views.PasswordResetView):
    template_name = "accounts/password_reset_form.html"
    form_class = PasswordResetLayoutForm
    email_template_name = "registration/password_reset_email.txt"
    subject_template_name = "registration/password_reset_subject.txt"
    success_url = reverse_lazy("accounts:password_reset_done")


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "accounts/password_reset_done.html"


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "accounts/password_reset_confirm.html"
    form_class = SetPasswordLayoutForm
    success_url = reverse_lazy("accounts:password_reset_complete")

    def form_valid(self, form: SetPasswordForm[User]) -> HttpResponse:
        response = super().form_valid(form)
        # Following the e-mailed link proves the mailbox, so a lock from someone guessing at
        # this address must not keep its owner out for another quarter of an hour.
        forget_failures_of(form.user.email)
        return response


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "accounts/password_reset_complete.html"


@login_required
@require_http_methods(["GET", "POST"])
def profile(request: HttpRequest) -> HttpResponse:
    user = cast(User, request.user)  # login_required
    if request.method == "POST":
        form = ProfileForm(request.POST)
        if form.is_valid():
            services.user_update_profile(user=user, **form.cleaned_data)
            messages.success(request, "Your profile has been saved.")
            return redirect("accounts:profile")
    else:
        form = ProfileForm(
            initial={
                "display_name": user.display_name,
                "affiliation": user.affiliation,
                "expertise": user.expertise,
                "email_frequency": user.email_frequency,
            }
        )
    return render(request, "accounts/profile.html", {"form": form})


@login_required
@require_http_methods(["GET", "POST"])
def reauth(request: HttpRequest) -> HttpResponse:
    """Type the password again before a sensitive action (accounts/reauth.py), then go on to
    ``next``."""
    user = cast(User, request.user)  # login_required
    next_url = _safe_next(request) or reverse("home")
    form = ConfirmPasswordForm(request.POST or None, request=request, user=user)
    if request.method == "POST" and form.is_valid():
        password_confirmed_now(request)
        return redirect(next_url)
    return render(
        request,
        "accounts/reauth.html",
        {"form": form, "next": next_url, "recently": password_confirmed_recently(request)},
        status=400 if form.is_bound else 200,
    )
