"""The review page of a "we should not build this" proposal: its frozen reasoning, its
revisions, the decisions on it and the gate, and the decision form for its reviewers."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from lifecycle import permissions as lifecycle_permissions
from lifecycle.errors import DomainError, InvalidAnswers
from lifecycle.forms import add_service_errors
from lifecycle.models import NotPursuedProposal, ProposalStatus
from lifecycle.proposals import REASON_LABELS

from .. import proposals, services
from ..forms import ProposalDecisionForm
from ..models import ProposalDecision
from .common import domain_error_page, signed_in


def get_proposal_for_user(user: Any, pk: int) -> NotPursuedProposal:
    """The proposal, for its team, course staff and whoever may decide on it; 404 for others."""
    proposal = (
        NotPursuedProposal.objects.select_related(
            "project__course", "project__template", "stage__definition", "current_revision"
        )
        .filter(pk=pk)
        .first()
    )
    if proposal is None or not getattr(user, "is_authenticated", False):
        raise Http404("No such proposal.")
    project = proposal.project
    if lifecycle_permissions.can_view_project(user, project):
        return proposal
    if proposals.proposal_reviewer_role(user, proposal, project)[0] is not None:
        return proposal
    raise Http404("No such proposal.")


def _url(proposal: NotPursuedProposal) -> str:
    return reverse("reviews:review_proposal", args=[proposal.pk])


def _page(
    request: HttpRequest,
    proposal: NotPursuedProposal,
    *,
    form: ProposalDecisionForm | None = None,
    status: int = 200,
) -> HttpResponse:
    project = proposal.project
    revisions = list(proposal.revisions.select_related("created_by").order_by("-number"))
    decisions = list(
        ProposalDecision.objects.filter(revision__proposal=proposal)
        .select_related("reviewer", "assignment", "revision")
        .order_by("-created_at", "-pk")[:100]
    )
    current = [
        d
        for d in decisions
        if d.revision_id == proposal.current_revision_id and d.replaced_at is None
    ]
    gate = proposals.gate_for_proposal(proposal, project, decisions=current)
    role, assignment = proposals.proposal_reviewer_role(request.user, proposal, project)
    mine = next((d for d in current if d.reviewer_id == request.user.pk), None)
    refusal = ""
    can_decide = (
        role is not None
        and project.is_active
        and proposal.status == ProposalStatus.IN_REVIEW
        and proposal.current_revision is not None
    )
    if can_decide:
        refusal = services.decision_refusal(request.user, project, role, assignment)
        if form is None:
            form = ProposalDecisionForm(
                initial={"revision": proposal.current_revision_id, "change": mine is not None},
                action=reverse("reviews:proposal_decide", args=[proposal.pk]),
            )
    answers = proposal.current_revision.answers if proposal.current_revision else {}
    policy = proposals.proposal_policy(proposal, project)
    return render(
        request,
        "reviews/review_proposal.html",
        {
            "proposal": proposal,
            "project": project,
            "course": project.course,
            "answers": answers,
            "reasons": [REASON_LABELS.get(k, k) for k in answers.get("reasons", [])],
            "revisions": revisions,
            "decisions": decisions,
            "gate": gate,
            "policy": policy,
            "staff_only": policy.min_expert == 0 and project.course.not_pursued_gate == "staff",
            "can_decide": can_decide and not refusal,
            "refusal": refusal if can_decide else "",
            "form": form if can_decide and not refusal else None,
            "mine": mine,
        },
        status=status,
    )


@login_required
@require_GET
def review_proposal(request: HttpRequest, pk: int) -> HttpResponse:
    return _page(request, get_proposal_for_user(request.user, pk))


@login_required
@require_POST
def proposal_decide(request: HttpRequest, pk: int) -> HttpResponse:
    proposal = get_proposal_for_user(request.user, pk)
    if proposals.proposal_reviewer_role(request.user, proposal, proposal.project)[0] is None:
        raise Http404("Only this proposal's reviewers decide on it.")
    form = ProposalDecisionForm(
        request.POST, action=reverse("reviews:proposal_decide", args=[proposal.pk])
    )
    if not form.is_valid():
        messages.error(request, "Your decision was not recorded: correct the fields below.")
        return _page(request, proposal, form=form, status=400)
    data = form.cleaned_data
    revision = proposal.revisions.filter(pk=data["revision"]).first()
    if revision is None:
        raise Http404("No such revision.")
    try:
        decision = proposals.proposal_decision_record(
            revision=revision,
            reviewer=signed_in(request),
            outcome=data["outcome"],
            comment=data["comment"],
            change=data["change"],
        )
    except InvalidAnswers as invalid:
        add_service_errors(form, invalid.errors)
        messages.error(request, "Your decision was not recorded: correct the fields below.")
        return _page(request, proposal, form=form, status=400)
    except DomainError as error:
        return domain_error_page(
            request, error, title="Your decision was not recorded", back_url=_url(proposal)
        )
    proposal.refresh_from_db(fields=["status"])
    notes = {
        ProposalStatus.APPROVED: " The gate is satisfied: the project is concluded as not pursued.",
        ProposalStatus.CHANGES_REQUESTED: " The proposal went back to the team.",
    }
    note = notes.get(ProposalStatus(proposal.status), "")
    messages.success(
        request,
        f"Recorded: {decision.get_outcome_display().lower()} on revision {revision.number}.{note}",
    )
    return redirect(_url(proposal))
