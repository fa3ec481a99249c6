"""A project's reviewers: assignments (course staff) and domain-expert invitations (staff, and
the team when the course lets it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Case, IntegerField, Value, When
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from lifecycle import permissions as lifecycle_permissions
from lifecycle.errors import DomainError, InvalidAnswers, NotAllowed
from lifecycle.forms import add_service_errors
from lifecycle.models import ExpertInvitationPolicy, Project
from lifecycle.selectors import get_project_for_user

from .. import selectors, services
from ..anonymity import names_for
from ..forms import AssignmentForm, InvitationForm, ReaddressInvitationForm, ReassignForm
from ..models import AssignmentState, ConflictDeclaration, Invitation
from .common import domain_error_page

REVOCABLE = ("pending", "awaiting_confirmation", "expired")


@dataclass(frozen=True)
class InvitationRow:
    invitation: Invitation
    state: str
    may_revoke: bool


def _reviewers_url(project: Project) -> str:
    return reverse("reviews:project_reviewers", args=[project.pk])


def _team_may_invite(project: Project) -> bool:
    course = project.course
    return course.allows_experts and course.expert_invitations != (
        ExpertInvitationPolicy.NOT_ALLOWED
    )


def _assignment_form(project: Project, data: Any = None) -> AssignmentForm:
    return AssignmentForm(
        data,
        candidates=selectors.candidate_reviewers(project),
        stages=project.template.stages.order_by("order"),
        action=reverse("reviews:assignment_create", args=[project.pk]),
    )


def _invitation_form(project: Project, *, is_staff: bool, data: Any = None) -> InvitationForm:
    return InvitationForm(
        data,
        stages=project.template.stages.order_by("order"),
        action=reverse("reviews:invitation_create", args=[project.pk]),
        needs_confirmation=not is_staff
        and project.course.expert_invitations == ExpertInvitationPolicy.AFTER_CONFIRMATION,
    )


def _page(
    request: HttpRequest,
    project: Project,
    *,
    assign_form: AssignmentForm | None = None,
    invite_form: InvitationForm | None = None,
    status: int = 200,
) -> HttpResponse:
    user = request.user
    is_staff = lifecycle_permissions.is_course_staff(user, project.course)
    is_member = lifecycle_permissions.is_project_member(user, project)
    can_invite = (
        project.is_active
        and project.course.allows_experts
        and (is_staff or (is_member and _team_may_invite(project)))
    )
    assignments = list(
        project.assignments.select_related(
            "reviewer",
            "stage_definition",
            "assigned_by",
            "invitation__invited_by",
            "confirmed_by",
            "revoked_by",
        )
        .annotate(
            withdrawn=Case(
                When(state=AssignmentState.ACTIVE, then=Value(0)),
                default=Value(1),
                output_field=IntegerField(),
            )
        )
        .order_by("withdrawn", "stage_definition__order", "created_at")
    )
    # Who invited whom and what each expert declared: staff judge independence from this.
    declarations = {d.reviewer_id: d for d in ConflictDeclaration.objects.filter(project=project)}
    for a in assignments:
        a.declaration = declarations.get(a.reviewer_id)  # type: ignore[attr-defined]
    # Anonymous reviewers: the team reads "Reviewer A, domain expert", no address, and only
    # the invitations it sent itself (it typed those addresses; staff's would name experts).
    names = names_for(user, project, is_member=is_member)
    names.mask(assignments, "reviewer")
    team_ids = {m.pk for m in project.members.all()} if names.anonymous else set()
    now = timezone.now()
    invitations = []
    for invitation in project.invitations.select_related(
        "stage_definition", "invited_by", "accepted_by", "confirmed_by"
    ).order_by("-created_at"):
        if names.anonymous and invitation.invited_by_id not in team_ids:
            continue
        state = invitation.state(now)
        may_revoke = state in REVOCABLE and (is_staff or invitation.invited_by_id == user.pk)
        invitations.append(InvitationRow(invitation, state, may_revoke))
    context: dict[str, Any] = {
        "project": project,
        "course": project.course,
        "is_staff": is_staff,
        "is_member": is_member,
        "is_instructor": lifecycle_permissions.is_instructor(user, project.course),
        "assignments": assignments,
        "invitations": invitations,
        "anonymous_reviewers": names.anonymous,
        "can_invite": can_invite,
        "invitation_policy": project.course.get_expert_invitations_display(),
        "team_may_invite": _team_may_invite(project),
        "needs_confirmation": not is_staff
        and project.course.expert_invitations == ExpertInvitationPolicy.AFTER_CONFIRMATION,
    }
    if is_staff and project.is_active:
        context["assign_form"] = assign_form or _assignment_form(project)
        context["candidates"] = list(context["assign_form"].fields["reviewer"].queryset)
    if can_invite:
        context["invite_form"] = invite_form or _invitation_form(project, is_staff=is_staff)
    return render(request, "reviews/project_reviewers.html", context, status=status)


@login_required
@require_GET
def project_reviewers(request: HttpRequest, pk: int) -> HttpResponse:
    return _page(request, get_project_for_user(request.user, pk))


@login_required
@require_POST
def assignment_create(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_project_for_user(request.user, pk)
    if not lifecycle_permissions.is_course_staff(request.user, project.course):
        raise Http404("Only course staff assign reviewers.")
    form = _assignment_form(project, request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            assignment = services.assignment_create(
                project=project,
                actor=request.user,
                reviewer=data["person"],
                role=data["role"],
                stage_definition=data["stage_definition"],
                due_date=data["due_date"],
                expertise_tags=data["expertise_tags"].split(","),
            )
        except InvalidAnswers as invalid:
            add_service_errors(form, invalid.errors)
        except DomainError as error:
            return domain_error_page(request, error, back_url=_reviewers_url(project))
        else:
            scope = (
                assignment.stage_definition.title
                if assignment.stage_definition
                else ("the whole project")
            )
            messages.success(
                request,
                f"{assignment.reviewer.name} now reviews {scope} as "
                f"{assignment.get_role_display().lower()}.",
            )
            return redirect(_reviewers_url(project))
    messages.error(request, "Nobody was assigned: correct the fields marked below.")
    return _page(request, project, assign_form=form, status=400)


@login_required
@require_POST
def assignment_withdraw(request: HttpRequest, assignment_pk: int) -> HttpResponse:
    assignment = selectors.get_assignment_for_user(request.user, assignment_pk)
    back = _reviewers_url(assignment.project)
    try:
        services.assignment_withdraw(assignment=assignment, actor=request.user)
    except DomainError as error:
        return domain_error_page(request, error, back_url=back)
    messages.success(request, f"{assignment.reviewer.name} no longer reviews this.")
    return redirect(back)


@login_required
@require_POST
def assignment_reassign(request: HttpRequest, assignment_pk: int) -> HttpResponse:
    assignment = selectors.get_assignment_for_user(request.user, assignment_pk)
    project = assignment.project
    back = _reviewers_url(project)
    if not lifecycle_permissions.is_course_staff(request.user, project.course):
        raise Http404("Only course staff reassign reviews.")
    form = ReassignForm(request.POST, candidates=selectors.candidate_reviewers(project))
    if not form.is_valid():
        errors = "; ".join(str(e) for errs in form.errors.values() for e in errs)
        messages.error(request, f"Not reassigned: {errors}")
        return redirect(back)
    try:
        new = services.assignment_reassign(
            assignment=assignment, actor=request.user, reviewer=form.cleaned_data["person"]
        )
    except InvalidAnswers as invalid:
        errors = "; ".join(e for errs in invalid.errors.values() for e in errs)
        messages.error(request, f"Not reassigned: {errors}")
        return redirect(back)
    except DomainError as error:
        return domain_error_page(request, error, back_url=back)
    messages.success(request, f"Reassigned from {assignment.reviewer.name} to {new.reviewer.name}.")
    return redirect(back)


@login_required
@require_POST
def invitation_create(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_project_for_user(request.user, pk)
    is_staff = lifecycle_permissions.is_course_staff(request.user, project.course)
    if not is_staff and not _team_may_invite(project):
        messages.error(
            request,
            f"{project.course.title} does not let teams invite domain experts; ask your course "
            "staff to assign one.",
        )
        return redirect(_reviewers_url(project))
    form = _invitation_form(project, is_staff=is_staff, data=request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            invitation, _token = services.invitation_create(
                actor=request.user,
                course=project.course,
                project=project,
                email=data["email"],
                name=data["name"],
                stage_definition=data["stage_definition"],
                message=data["message"],
                due_date=data["due_date"],
                expertise_tags=data["expertise_tags"].split(","),
            )
        except InvalidAnswers as invalid:
            add_service_errors(form, invalid.errors)
        except NotAllowed as error:
            messages.error(request, error.message)
            return redirect(_reviewers_url(project))
        except DomainError as error:
            return domain_error_page(request, error, back_url=_reviewers_url(project))
        else:
            if invitation.needs_confirmation:
                messages.success(
                    request,
                    f"Invitation for {invitation.email} saved: course staff confirm it before "
                    "it is sent.",
                )
            else:
                messages.success(request, f"Invitation sent to {invitation.email}.")
            return redirect(_reviewers_url(project))
    messages.error(request, "No invitation sent: correct the fields marked below.")
    return _page(request, project, invite_form=form, status=400)


def _invitation_back(invitation: Any, request: HttpRequest) -> str:
    inbox = reverse("reviews:inbox")
    if request.POST.get("next") == inbox or not invitation.project_id:
        return inbox
    return reverse("reviews:project_reviewers", args=[invitation.project_id])


def _invitation_action(
    request: HttpRequest, invitation_pk: int, act: Any, done: str
) -> HttpResponse:
    """Confirm, revoke or resend: find the invitation the user may see, call the service, say
    what happened (``done`` may name {email}) and go back where the user came from."""
    invitation = selectors.get_invitation_for_user(request.user, invitation_pk)
    back = _invitation_back(invitation, request)
    try:
        act(invitation=invitation, actor=request.user)
    except DomainError as error:
        return domain_error_page(request, error, back_url=back)
    messages.success(request, done.format(email=invitation.email))
    return redirect(back)


@login_required
@require_POST
def invitation_confirm(request: HttpRequest, invitation_pk: int) -> HttpResponse:
    return _invitation_action(
        request,
        invitation_pk,
        services.invitation_confirm,
        "Confirmed: the invitation was sent to {email}.",
    )


@login_required
@require_POST
def invitation_revoke(request: HttpRequest, invitation_pk: int) -> HttpResponse:
    return _invitation_action(
        request,
        invitation_pk,
        services.invitation_revoke,
        "The invitation for {email} was revoked.",
    )


@login_required
@require_POST
def invitation_resend(request: HttpRequest, invitation_pk: int) -> HttpResponse:
    """A fresh link for an invitation whose e-mail was lost, failed or expired."""
    return _invitation_action(
        request,
        invitation_pk,
        services.invitation_resend,
        "A new link was sent to {email}; the old one no longer works.",
    )


@login_required
@require_POST
def invitation_readdress(request: HttpRequest, invitation_pk: int) -> HttpResponse:
    """Course staff send an invitation to a corrected address; the old link dies."""
    invitation = selectors.get_invitation_for_user(request.user, invitation_pk)
    back = _invitation_back(invitation, request)
    form = ReaddressInvitationForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Not re-addressed: enter a valid e-mail address.")
        return redirect(back)
    old = invitation.email
    try:
        invitation, _token = services.invitation_readdress(
            invitation=invitation, actor=request.user, email=form.cleaned_data["email"]
        )
    except InvalidAnswers as invalid:
        errors = "; ".join(e for errs in invalid.errors.values() for e in errs)
        messages.error(request, f"Not re-addressed: {errors}")
        return redirect(back)
    except DomainError as error:
        return domain_error_page(request, error, back_url=back)
    messages.success(
        request,
        f"The invitation now goes to {invitation.email}; the link sent to {old} no longer works.",
    )
    return redirect(back)


def _expert_action(request: HttpRequest, assignment_pk: int, act: Any, done: str) -> HttpResponse:
    assignment = selectors.get_assignment_for_user(request.user, assignment_pk)
    back = _reviewers_url(assignment.project)
    if not lifecycle_permissions.is_course_staff(request.user, assignment.project.course):
        raise Http404("Only course staff confirm or revoke experts.")
    try:
        act(assignment=assignment, actor=request.user)
    except DomainError as error:
        return domain_error_page(request, error, back_url=back)
    messages.success(request, done.format(name=assignment.reviewer.name))
    return redirect(back)


@login_required
@require_POST
def expert_confirm(request: HttpRequest, assignment_pk: int) -> HttpResponse:
    return _expert_action(
        request,
        assignment_pk,
        services.expert_confirm,
        "{name} is confirmed as an independent expert: their decisions count.",
    )


@login_required
@require_POST
def expert_revoke(request: HttpRequest, assignment_pk: int) -> HttpResponse:
    return _expert_action(
        request,
        assignment_pk,
        services.expert_revoke,
        "{name} no longer reviews this project; their decisions stop counting on every stage "
        "still in review.",
    )
