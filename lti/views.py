"""LTI endpoints (JWKS, OIDC login, launch, deep linking) and the course staff's LTI page.

Launches are cross-site form posts from the platform, so login and launch are exempt from
CSRF: their protection is the OIDC state (a cookie set at login, SameSite=None on HTTPS), the
nonce and the platform's signature.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlsplit

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from pylti1p3.deep_link import DeepLink
from pylti1p3.deep_link_resource import DeepLinkResource
from pylti1p3.exception import LtiException, OIDCException

from accounts.models import User
from lifecycle.errors import DomainError
from lifecycle.models import Role

from . import selectors, services
from .forms import NEW, DeepLinkForm, LinkContextForm
from .keys import tool_jwks
from .models import LtiContext, LtiPlatform, LtiUsedNonce
from .tool_conf import (
    BoardMessageLaunch,
    BoardRegistration,
    LaunchRefused,
    find_platform,
    oidc_login,
)

SESSION_LINK = "lti_contexts_to_link"
SESSION_DEEP_LINK = "lti_deep_link"
DEEP_LINKING = "LtiDeepLinkingRequest"
RESOURCE_LINK = "LtiResourceLinkRequest"
DEEP_LINKING_SETTINGS = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"
HANDOFF_SALT = "lti.handoff"
HANDOFF_MAX_AGE = 120


def _refused(request: HttpRequest, refusal: LaunchRefused, **record: Any) -> HttpResponse:
    services.problem_record(refusal=refusal, remote_addr=request.META.get("REMOTE_ADDR"), **record)
    return render(
        request,
        "lti/refused.html",
        {"refusal": refusal},
        status=refusal.status,
    )


def _launch_url(request: HttpRequest) -> str:
    return request.build_absolute_uri(reverse("lti:launch"))


@require_GET
def jwks(request: HttpRequest) -> HttpResponse:
    response = JsonResponse(tool_jwks())
    response["Cache-Control"] = "public, max-age=300"
    return response


@csrf_exempt
@require_http_methods(["GET", "POST"])
def oidc_login_initiation(request: HttpRequest) -> HttpResponse:
    """Third-party initiated login: answer the platform with a redirect to its authorisation
    endpoint carrying a fresh state (also set as a cookie) and nonce."""
    params = request.POST if request.method == "POST" else request.GET
    iss = params.get("iss", "")
    if not iss or not params.get("login_hint"):
        return _refused(
            request, LaunchRefused("bad_login", "The login request lacks its issuer or hint.")
        )
    if find_platform(iss, params.get("client_id") or None) is None:
        return _refused(
            request,
            LaunchRefused(
                "unknown_issuer",
                "The board is not registered with this platform.",
                issuer=iss,
                client_id=params.get("client_id", ""),
            ),
        )
    try:
        return oidc_login(request).redirect(_launch_url(request))
    except (OIDCException, LtiException) as error:
        return _refused(request, LaunchRefused("bad_login", str(error)[:400], issuer=iss))


@csrf_exempt
@require_POST
def launch(request: HttpRequest) -> HttpResponse:
    try:
        # On HTTPS pylti1p3 reads its session cookie here (SameSite=None, set at login).
        message_launch = BoardMessageLaunch(request)
    except LtiException:
        return _refused(
            request,
            LaunchRefused(
                "bad_state",
                "This launch does not match a sign-in the board started: your browser did not "
                "send the board's sign-in cookie. Open the board in a new window from the "
                "learning platform.",
            ),
        )
    try:
        message_launch.validate()
    except LaunchRefused as refusal:
        return _refused(request, refusal, claims=message_launch._claims())
    except LtiException as error:
        return _refused(
            request,
            LaunchRefused("bad_message", str(error)[:400]),
            claims=message_launch._claims(),
        )
    claims = dict(message_launch.get_launch_data())
    platform = message_launch.platform
    assert platform is not None
    try:
        outcome = services.launch_accept(platform=platform, claims=claims)
    except LaunchRefused as refusal:  # recorded by the service
        return render(request, "lti/refused.html", {"refusal": refusal}, status=refusal.status)
    if outcome.message_type == DEEP_LINKING and outcome.role != Role.INSTRUCTOR:
        return _refused(
            request,
            LaunchRefused(
                "deep_link_not_instructor",
                "Only an instructor adds the board to a course.",
                status=403,
            ),
            claims=claims,
            course=outcome.course,
        )
    session: dict[str, Any] = {}
    if outcome.message_type == DEEP_LINKING:
        # What the response needs, kept in our session (and carried by the new-window link),
        # so that answering does not depend on pylti1p3's cookie-keyed launch cache.
        session[SESSION_DEEP_LINK] = {
            "platform": platform.pk,
            "deployment_id": str(claims.get(services.DEPLOYMENT) or ""),
            "settings": claims.get(DEEP_LINKING_SETTINGS) or {},
            "context": outcome.context.pk if outcome.context else None,
        }
        destination = reverse("lti:deep_link")
    elif outcome.course is not None:
        destination = reverse("lifecycle:course_detail", kwargs={"course_pk": outcome.course.pk})
    elif outcome.context is not None and outcome.role == Role.INSTRUCTOR:
        session[SESSION_LINK] = [outcome.context.pk]
        destination = reverse("lti:link_context", kwargs={"context_pk": outcome.context.pk})
    else:
        login(request, outcome.user)
        return render(request, "lti/not_linked.html", {"context": outcome.context}, status=200)
    if request.headers.get("Sec-Fetch-Dest") == "iframe":
        return _open_in_window(request, platform, outcome.user, destination, session)
    _sign_in(request, outcome.user, session)
    return redirect(destination)


def _sign_in(request: HttpRequest, user: Any, session: dict[str, Any]) -> None:
    login(request, user)
    for key, value in session.items():
        if key == SESSION_LINK:
            value = sorted(set(request.session.get(SESSION_LINK, [])) | set(value))
        request.session[key] = value


def _open_in_window(
    request: HttpRequest, platform: Any, user: Any, destination: str, session: dict[str, Any]
) -> HttpResponse:
    """A launch inside the platform's iframe: the board's session cookie is SameSite=Lax (a
    third-party cookie there) and its pages refuse to be framed, so this one page, framable by
    the platform alone, offers the board in a new window through a signed, single-use link
    that expires in two minutes."""
    token = signing.dumps(
        {
            "u": user.pk,
            "p": platform.pk,
            "to": destination,
            "s": session,
            "n": secrets.token_hex(12),
        },
        salt=HANDOFF_SALT,
        compress=True,
    )
    response = render(
        request,
        "lti/open_window.html",
        {"enter_url": reverse("lti:enter", kwargs={"token": token})},
    )
    response.xframe_options_exempt = True  # type: ignore[attr-defined]
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(platform.issuer))
    response._csp_replace = {"frame-ancestors": [origin]}  # type: ignore[attr-defined]
    return response


@require_GET
def enter(request: HttpRequest, token: str) -> HttpResponse:
    """The new window opened from a framed launch: sign in and go where the launch led."""
    try:
        data = signing.loads(token, salt=HANDOFF_SALT, max_age=HANDOFF_MAX_AGE)
        platform = LtiPlatform.objects.get(pk=data["p"], is_active=True)
    except (signing.BadSignature, LtiPlatform.DoesNotExist, KeyError, TypeError):
        return _refused(
            request,
            LaunchRefused("bad_handoff", "This link has expired: open the board again."),
        )
    try:
        with transaction.atomic():
            LtiUsedNonce.objects.create(platform=platform, nonce=f"handoff:{data['n']}")
    except IntegrityError:
        return _refused(
            request,
            LaunchRefused("bad_handoff", "This link was used already: open the board again."),
        )
    user = User.objects.filter(pk=data["u"], is_active=True).first()
    if user is None:
        return _refused(request, LaunchRefused("bad_handoff", "This account is closed."))
    _sign_in(request, user, data.get("s") or {})
    destination = str(data.get("to") or "/")
    return redirect(destination if destination.startswith("/") else "/")


def _get_context_to_link(request: HttpRequest, context_pk: int) -> LtiContext:
    """Only the instructor whose launch brought this context here may link it."""
    if context_pk not in request.session.get(SESSION_LINK, []):
        raise Http404("No such platform course.")
    context = LtiContext.objects.select_related("platform").filter(pk=context_pk).first()
    if context is None:
        raise Http404("No such platform course.")
    return context


@login_required
@require_http_methods(["GET", "POST"])
def link_context(request: HttpRequest, context_pk: int) -> HttpResponse:
    context = _get_context_to_link(request, context_pk)
    if context.course_id is not None:
        return redirect("lifecycle:course_detail", course_pk=context.course_id)
    courses = selectors.instructor_courses(request.user)
    form = LinkContextForm(
        request.POST or None, courses=courses, default_title=context.title or context.label
    )
    if request.method == "POST" and form.is_valid():
        try:
            if form.cleaned_data["course"] == NEW:
                course = services.context_create_course(
                    context=context, actor=request.user, title=form.cleaned_data["title"]
                )
            else:
                course = form.courses[form.cleaned_data["course"]]
                services.context_link(context=context, course=course, actor=request.user)
        except DomainError as error:
            form.add_error(None, error.message)
        else:
            request.session[SESSION_LINK] = [
                pk for pk in request.session.get(SESSION_LINK, []) if pk != context.pk
            ]
            messages.success(request, f"{course.title} is now linked to {context}.")
            return redirect("lifecycle:course_detail", course_pk=course.pk)
    return render(request, "lti/link_context.html", {"context": context, "form": form})


@login_required
@require_http_methods(["GET", "POST"])
def deep_link(request: HttpRequest) -> HttpResponse:
    """The instructor picks a board; the tool answers the platform with a signed deep-linking
    response (a form posted to the platform's return URL by static/js/lti-autosubmit.js, with a
    button for browsers without script)."""
    pending = request.session.get(SESSION_DEEP_LINK)
    if not pending:
        raise Http404("No deep-linking request is waiting.")
    courses = selectors.instructor_courses(request.user)
    form = DeepLinkForm(request.POST or None, courses=courses)
    if request.method == "POST" and form.is_valid():
        course = form.courses[form.cleaned_data["course"]]
        platform = LtiPlatform.objects.filter(pk=pending.get("platform"), is_active=True).first()
        return_url = str((pending.get("settings") or {}).get("deep_link_return_url") or "")
        if platform is None or not return_url.startswith(("https://", "http://")):
            request.session.pop(SESSION_DEEP_LINK, None)
            raise Http404("The deep-linking request has expired: start again from the platform.")
        deep_link_obj = DeepLink(
            BoardRegistration(platform), pending["deployment_id"], pending["settings"]
        )
        context = LtiContext.objects.filter(pk=pending.get("context")).first()
        if context is not None and context.course_id is None:
            try:
                services.context_link(context=context, course=course, actor=request.user)
            except DomainError as error:
                form.add_error(None, error.message)
                return render(request, "lti/deep_link.html", {"form": form})
        resource = (
            DeepLinkResource()
            .set_url(_launch_url(request))
            .set_title(course.title)
            .set_custom_params({"lrb_course": str(course.pk)})
        )
        token = deep_link_obj.get_response_jwt([resource])
        request.session.pop(SESSION_DEEP_LINK, None)
        response = render(
            request,
            "lti/deep_link_return.html",
            {"return_url": return_url, "jwt": token, "course": course},
        )
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(return_url))
        response._csp_update = {"form-action": [origin]}  # type: ignore[attr-defined]
        return response
    return render(request, "lti/deep_link.html", {"form": form, "courses": courses})


@login_required
@require_GET
def course_lti(request: HttpRequest, course_pk: int) -> HttpResponse:
    course = selectors.get_course_for_staff(request.user, course_pk)
    return render(
        request,
        "lti/course_lti.html",
        {"course": course, **selectors.passback_status(course)},
    )


@login_required
@require_POST
def course_sync_roster(request: HttpRequest, course_pk: int) -> HttpResponse:
    course = selectors.get_course_for_staff(request.user, course_pk)
    try:
        services.roster_sync_request(course=course, actor=request.user)
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "The roster is being synced with the learning platform.")
    return redirect("lti:course", course_pk=course.pk)


@login_required
@require_POST
def score_retry(request: HttpRequest, course_pk: int, score_pk: int) -> HttpResponse:
    course = selectors.get_course_for_staff(request.user, course_pk)
    score = selectors.get_failed_score_for_staff(request.user, course, score_pk)
    try:
        services.score_retry(score=score, actor=request.user)
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"The grade of {score.user} is being sent again.")
    return redirect("lti:course", course_pk=course.pk)
