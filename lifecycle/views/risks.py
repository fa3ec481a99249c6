"""The risk register beside the stakeholder register, and the traceability view."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from lifecycle import permissions, risks, selectors
from lifecycle.errors import DomainError, InvalidAnswers
from lifecycle.forms import add_service_errors
from lifecycle.models import Project, Risk
from lifecycle.risk_forms import RiskForm
from lifecycle.traceability import project_traceability

from .common import require_member


def _register_url(project: Project) -> str:
    return reverse("lifecycle:risks", args=[project.pk])


def _get_risk(project: Project, rid: int) -> Risk:
    risk = Risk.objects.filter(project=project, pk=rid).first()
    if risk is None:
        raise Http404("No such risk.")
    return risk


@login_required
@require_http_methods(["GET", "POST"])
def risk_register(request: HttpRequest, pk: int) -> HttpResponse:
    """The register: the team reads, adds and re-scores; course staff read."""
    project = selectors.get_project_for_user(request.user, pk)
    is_member = permissions.is_project_member(request.user, project)
    status = 200
    form: RiskForm | None = None
    if request.method == "POST":
        require_member(request.user, project)
        form = RiskForm(request.POST, project=project)
        if form.is_valid():
            try:
                risk = risks.risk_add(project=project, actor=request.user, **form.service_fields())
            except InvalidAnswers as invalid:
                add_service_errors(form, invalid.errors)
            except DomainError as error:
                messages.error(request, error.message)
                return redirect(_register_url(project))
            else:
                messages.success(request, f"Risk “{risk.title}” added to the register.")
                return redirect(f"{_register_url(project)}#risk-{risk.pk}")
        status = 400
    elif is_member and project.is_active:
        form = RiskForm(project=project)
    trace = project_traceability(project)
    return render(
        request,
        "lifecycle/risk_list.html",
        {
            "project": project,
            "trace": trace,
            "is_member": is_member,
            "can_edit": is_member and project.is_active,
            "form": form,
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def risk_edit(request: HttpRequest, pk: int, rid: int) -> HttpResponse:
    project = selectors.get_project_for_user(request.user, pk)
    require_member(request.user, project)
    risk = _get_risk(project, rid)
    if request.method == "POST":
        form = RiskForm(request.POST, project=project, submit_label="Save and re-score")
        if form.is_valid():
            try:
                risks.risk_update(risk=risk, actor=request.user, **form.service_fields())
            except InvalidAnswers as invalid:
                add_service_errors(form, invalid.errors)
            except DomainError as error:
                messages.error(request, error.message)
                return redirect(_register_url(project))
            else:
                messages.success(request, f"Risk “{risk.title}” saved.")
                return redirect(f"{_register_url(project)}#risk-{risk.pk}")
        status = 400
    else:
        form = RiskForm(
            initial=RiskForm.initial_for(risk), project=project, submit_label="Save and re-score"
        )
        status = 200
    return render(
        request,
        "lifecycle/risk_form.html",
        {"project": project, "risk": risk, "form": form},
        status=status,
    )


@login_required
@require_POST
def risk_remove(request: HttpRequest, pk: int, rid: int) -> HttpResponse:
    project = selectors.get_project_for_user(request.user, pk)
    require_member(request.user, project)
    risk = _get_risk(project, rid)
    try:
        risks.risk_remove(risk=risk, actor=request.user)
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Risk “{risk.title}” removed.")
    return redirect(_register_url(project))


@login_required
@require_GET
def traceability(request: HttpRequest, pk: int) -> HttpResponse:
    project = selectors.get_project_for_user(request.user, pk)
    return render(
        request,
        "lifecycle/traceability.html",
        {"project": project, "trace": project_traceability(project)},
    )
