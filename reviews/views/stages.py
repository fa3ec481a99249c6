"""The review page of a stage: the revision's answers with the lecture's guidance, what changed
since the reviewer last decided, comment threads, the decision, and the instructor override."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q, Subquery
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.reauth import password_confirmed_recently, reauth_redirect
from evidence.selectors import evidence_changes, revision_files_by_question
from lifecycle import permissions as lifecycle_permissions
from lifecycle.diffs import answer_text, diff_answers, stakeholder_changes
from lifecycle.errors import DomainError, InvalidAnswers, NotAllowed
from lifecycle.forms import add_service_errors
from lifecycle.models import (
    ProjectStage,
    Question,
    QuestionKind,
    StageRevision,
    StageStatus,
    StakeholderKind,
)

from .. import decision_parts, permissions, quality, selectors, services
from ..anonymity import names_for
from ..forms import CommentForm, ConflictDeclarationForm, DecisionForm, OverrideForm
from ..models import Comment, ConflictDeclaration, Decision, ReviewerRole
from ..selectors import Thread
from .common import domain_error_page, signed_in

DECIDABLE_STATUSES = (StageStatus.IN_REVIEW, StageStatus.CHANGES_REQUESTED)


def _next_or(request: HttpRequest, default: str) -> str:
    """Where the form asked to go back to (the team's stage page), if it is a path here."""
    wanted = request.POST.get("next", "")
    if wanted.startswith("/") and url_has_allowed_host_and_scheme(
        wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return wanted
    return default


def review_url(stage: ProjectStage, revision: StageRevision | None = None) -> str:
    url = reverse("reviews:review_stage", args=[stage.pk])
    if revision is not None and revision.pk != stage.current_revision_id:
        url += f"?revision={revision.number}"
    return url


def _shown_revision(
    request: HttpRequest, stage: ProjectStage, revisions: Sequence[StageRevision]
) -> StageRevision | None:
    wanted = request.GET.get("revision")
    if wanted:
        try:
            number = int(wanted)
        except ValueError:
            raise Http404("No such revision.") from None
        for revision in revisions:
            if revision.number == number:
                return revision
        raise Http404("No such revision.")
    for revision in revisions:
        if revision.pk == stage.current_revision_id:
            return revision
    return revisions[-1] if revisions else None


def _answer_rows(
    questions: list[Any],
    answers: Mapping[str, Any],
    threads: Mapping[str, list[Thread]],
    files: Mapping[str, list[Any]] | None = None,
) -> list[dict[str, Any]]:
    files = files or {}
    rows = []
    for number, question in enumerate(questions, start=1):
        value = answers.get(question.key)
        row: dict[str, Any] = {
            "number": number,
            "question": question,
            "empty": value in (None, "", [], {}),
            "text": answer_text(question, value),
            "threads": threads.get(question.key, []),
            "files": files.get(question.key, []),
            "comment_label": f"Your comment on question {number}",
        }
        if question.kind == QuestionKind.YES_NO_UNSURE and isinstance(value, Mapping):
            row["choice"] = str(value.get("choice") or "")
            row["justification"] = str(value.get("justification") or "")
        elif question.kind == QuestionKind.MULTIPLE_CHOICE and isinstance(value, list):
            row["chosen"] = [str(v) for v in value]
        elif question.kind == QuestionKind.LONG_TEXT:
            row["markdown"] = str(value or "")
        elif (
            question.kind == QuestionKind.URL
            and isinstance(value, str)
            and value.lower().startswith(("https://", "http://"))
        ):
            row["href"] = value
        rows.append(row)
    return rows


def _team_response(revision: StageRevision, questions: list[Any]) -> dict[str, Any] | None:
    """What the team wrote to the reviewers when submitting this revision, overall and per
    thread (each thread named by its question's text)."""
    replies = revision.thread_responses or {}
    if not revision.response_to_reviewers and not replies:
        return None
    labels = {q.key: q.prompt for q in questions}
    roots = {
        c.pk: c
        for c in Comment.objects.filter(
            pk__in=[int(k) for k in replies if str(k).isdigit()], revision__stage=revision.stage_id
        ).select_related("author")
    }
    threads = [
        {
            "comment": roots[int(k)],
            "label": labels.get(roots[int(k)].question_key, "The stage as a whole"),
            "text": text,
        }
        for k, text in replies.items()
        if str(k).isdigit() and int(k) in roots
    ]
    return {"revision": revision, "text": revision.response_to_reviewers, "threads": threads}


def _stakeholder_rows(revision: StageRevision | None) -> list[dict[str, Any]]:
    labels = dict(StakeholderKind.choices)
    return [
        {**entry, "kind_label": labels.get(entry.get("kind", ""), entry.get("kind", ""))}
        for entry in (revision.stakeholders if revision else [])
    ]


def _review_page(
    request: HttpRequest,
    stage: ProjectStage,
    *,
    decision_form: DecisionForm | None = None,
    conflict_form: ConflictDeclarationForm | None = None,
    part_values: Mapping[str, Any] | None = None,
    part_errors: Mapping[str, list[str]] | None = None,
    status: int = 200,
) -> HttpResponse:
    user = signed_in(request)
    project, definition = stage.project, stage.definition
    questions = list(definition.questions.all())
    open_threads = Count(
        "comments", filter=Q(comments__parent__isnull=True, comments__resolved_at__isnull=True)
    )
    revisions = list(
        stage.revisions.select_related("created_by")
        .annotate(open_threads=open_threads)
        .order_by("number")
    )
    shown = _shown_revision(request, stage, revisions)
    is_member = lifecycle_permissions.is_project_member(user, project)
    role, assignment = permissions.reviewer_role(user, project, definition)
    hide_others = selectors.hides_other_reviews(user, stage)
    is_current = shown is not None and shown.pk == stage.current_revision_id

    decisions: list[Decision] = []
    threads: dict[str, list[Thread]] = {}
    if shown is not None:
        decisions = list(
            Decision.objects.filter(revision=shown)
            .select_related("reviewer")
            .order_by("created_at", "pk")
        )
        threads = selectors.comment_threads(shown, only_author=user if hide_others else None)
    if hide_others:
        decisions = [d for d in decisions if d.reviewer_id == user.pk]
    my_decision = next(
        (d for d in decisions if d.reviewer_id == user.pk and d.replaced_at is None), None
    )

    diff: dict[str, Any] | None = None
    if role is not None and shown is not None:
        last = (
            Decision.objects.filter(
                reviewer=user, revision__stage=stage, revision__number__lt=shown.number
            )
            .select_related("revision")
            .order_by("-revision__number", "-created_at")
            .first()
        )
        if last is not None:
            rows = diff_answers(questions, last.revision.answers, shown.answers)
            diff = {
                "since": last.revision,
                "decision": last,
                "rows": rows,
                "changed": sum(1 for r in rows if r.changed),
                "stakeholders": stakeholder_changes(last.revision.stakeholders, shown.stakeholders)
                if definition.requires_stakeholders
                else [],
                "files": evidence_changes(last.revision.evidence, shown.evidence),
                "old_label": f"Revision {last.revision.number} (you decided)",
                "new_label": f"Revision {shown.number}",
            }

    response = _team_response(shown, questions) if shown is not None else None

    # An expert declares conflicts first, and one a team proposed waits for staff to confirm.
    refusal = services.decision_refusal(user, project, role, assignment) if role else ""
    needs_declaration = (
        role == ReviewerRole.EXPERT
        and project.is_active
        and not ConflictDeclaration.objects.filter(project=project, reviewer=user).exists()
    )
    if needs_declaration and conflict_form is None:
        conflict_form = ConflictDeclarationForm(
            action=reverse("reviews:conflict_declare", args=[stage.pk])
        )
    can_decide = (
        role is not None
        and not refusal
        and project.is_active
        and is_current
        and stage.status in DECIDABLE_STATUSES
    )
    if can_decide and shown is not None and decision_form is None:
        decision_form = DecisionForm(
            initial={"revision": shown.pk, "change": my_decision is not None},
            questions=questions,
            action=reverse("reviews:stage_decide", args=[stage.pk]),
        )
    if can_decide and decision_form is not None:
        decision_form.parts_html = decision_parts.render_all(
            request,
            stage,
            role,
            values=part_values,
            errors=part_errors,
            previous=my_decision,
        )
    # Anonymous reviewers towards the team: every person the page shows, masked at the rows.
    names = names_for(user, project, is_member=is_member)
    names.mask(decisions, "reviewer")
    names.mask_threads(t for ts in threads.values() for t in ts)
    is_staff = lifecycle_permissions.is_course_staff(user, project.course)
    if not is_member:  # the team rates on its stage page; here reviewers and staff read
        quality.attach_reviewer_view(
            [d for d in decisions if d.replaced_at is None], user, is_staff=is_staff
        )
    panel = selectors.gate_panel_context(stage, names)
    panel.update({"hide_votes": hide_others, "on_review_page": True})
    context = {
        "stage": stage,
        "project": project,
        "definition": definition,
        "revisions": revisions,
        "revision": shown,
        "is_current": is_current,
        "is_member": is_member,
        "role": role,
        "assignment": assignment,
        "is_staff": is_staff,
        "is_instructor": lifecycle_permissions.is_instructor(user, project.course),
        "hide_others": hide_others,
        "anonymous_reviewers": names.anonymous,
        "question_labels": {q.key: f"question {n}" for n, q in enumerate(questions, start=1)},
        "rows": _answer_rows(
            questions,
            shown.answers if shown else {},
            threads,
            revision_files_by_question(shown),
        ),
        "general_threads": threads.get("", []),
        "stakeholders": _stakeholder_rows(shown),
        "decisions": [d for d in decisions if d.replaced_at is None],
        "replaced_decisions": [d for d in decisions if d.replaced_at is not None],
        "my_decision": my_decision,
        "diff": diff,
        "response": response,
        "can_decide": can_decide,
        "decision_refusal": refusal,
        "conflict_form": conflict_form if needs_declaration else None,
        "decision_form": decision_form if can_decide else None,
        "can_comment": project.is_active and shown is not None and (is_member or role),
        "gate_panel": render_to_string("reviews/partials/gate_panel.html", panel, request=request),
    }
    return render(request, "reviews/review_stage.html", context, status=status)


@login_required
@require_GET
def review_stage(request: HttpRequest, stage_pk: int) -> HttpResponse:
    return _review_page(request, selectors.get_reviewable_stage(request.user, stage_pk))


@login_required
@require_POST
def conflict_declare(request: HttpRequest, stage_pk: int) -> HttpResponse:
    """A domain expert's declaration of conflicts of interest, from the review page."""
    stage = selectors.get_reviewable_stage(request.user, stage_pk)
    form = ConflictDeclarationForm(
        request.POST, action=reverse("reviews:conflict_declare", args=[stage.pk])
    )
    if not form.is_valid():
        messages.error(request, "Your declaration was not recorded: correct the fields below.")
        return _review_page(request, stage, conflict_form=form, status=400)
    try:
        services.conflict_declare(
            project=stage.project,
            reviewer=signed_in(request),
            has_conflict=form.cleaned_data["has_conflict"],
            details=form.cleaned_data["details"],
        )
    except InvalidAnswers as invalid:
        add_service_errors(form, invalid.errors)
        return _review_page(request, stage, conflict_form=form, status=400)
    except DomainError as error:
        return domain_error_page(request, error, back_url=review_url(stage))
    messages.success(request, "Your declaration is recorded; course staff can read it.")
    return redirect(review_url(stage))


@login_required
@require_POST
def stage_decide(request: HttpRequest, stage_pk: int) -> HttpResponse:
    # One check of the reviewer, the service's, made under the project's lock, where the stage
    # is read once: this view only reads the form. Anything it shows of the stage without the
    # service (a form error) waits for the same check, made here.
    def stage_or_404() -> tuple[ProjectStage, str]:
        stage = selectors.stage_for_decision(stage_pk)
        role, _ = permissions.reviewer_role(request.user, stage.project, stage.definition)
        if role is None:
            raise Http404("Only this stage's reviewers decide on it.")
        return stage, role

    form = DecisionForm(
        request.POST,
        # Read only if needed (see the form): a decision on a question, or a form shown again.
        questions=Question.objects.filter(
            stage_id=Subquery(ProjectStage.objects.filter(pk=stage_pk).values("definition_id"))
        ).order_by("order"),
        action=reverse("reviews:stage_decide", args=[stage_pk]),
    )
    if not form.is_valid():
        stage, _ = stage_or_404()
        messages.error(request, "Your decision was not recorded: correct the fields below.")
        return _review_page(
            request,
            stage,
            decision_form=form,
            part_values=decision_parts.from_post_any_role(stage, request.POST),
            status=400,
        )
    data = form.cleaned_data
    try:
        decision = services.decision_record_posted(
            stage_id=stage_pk,
            revision_id=data["revision"],
            reviewer=signed_in(request),
            outcome=data["outcome"],
            comment=data["comment"],
            question_key=data["question_key"],
            change=data["change"],
            post=request.POST,
        )
    except NotAllowed:
        raise Http404("Only this stage's reviewers decide on it.") from None
    except InvalidAnswers as invalid:
        stage, role = stage_or_404()
        part_keys = {part.key for part in decision_parts.parts_for(stage, role)}
        part_errors = {k: v for k, v in invalid.errors.items() if k.split(".", 1)[0] in part_keys}
        add_service_errors(form, {k: v for k, v in invalid.errors.items() if k not in part_errors})
        messages.error(request, "Your decision was not recorded: correct the fields below.")
        return _review_page(
            request,
            stage,
            decision_form=form,
            part_values=decision_parts.from_post_any_role(stage, request.POST),
            part_errors=part_errors,
            status=400,
        )
    except DomainError as error:
        return domain_error_page(
            request,
            error,
            title="Your decision was not recorded",
            back_url=reverse("reviews:review_stage", args=[stage_pk]),
        )
    outcome = decision.get_outcome_display().lower()
    notes = {
        StageStatus.APPROVED: " The gate is satisfied: the stage is approved.",
        StageStatus.CHANGES_REQUESTED: " The stage went back to the team.",
    }
    # The service leaves the stage it read under its lock, as it left it, on the revision.
    stage = decision.revision.stage
    note = notes.get(StageStatus(stage.status), "")
    messages.success(request, f"Recorded: {outcome} on revision {decision.revision.number}.{note}")
    return redirect(review_url(stage))


@login_required
@require_POST
def comment_add(request: HttpRequest, stage_pk: int) -> HttpResponse:
    stage = selectors.get_reviewable_stage(request.user, stage_pk)
    form = CommentForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Not posted: write a comment first.")
        return redirect(_next_or(request, review_url(stage)))
    data = form.cleaned_data
    revision = stage.revisions.filter(pk=data["revision"]).first()
    if revision is None:
        raise Http404("No such revision.")
    parent = None
    if data["parent"]:
        parent = Comment.objects.filter(pk=data["parent"], revision=revision).first()
        hidden = parent is not None and (
            parent.author_id != request.user.pk
            and selectors.hides_other_reviews(request.user, stage)
        )
        if parent is None or hidden:
            raise Http404("No such comment.")
    back = review_url(stage, revision)
    going = _next_or(request, "")
    try:
        comment = services.comment_add(
            revision=revision,
            author=signed_in(request),
            body=data["body"],
            question_key=data["question_key"] or "",
            parent=parent,
        )
    except InvalidAnswers as invalid:
        errors = " ".join(m for msgs in invalid.errors.values() for m in msgs)
        messages.error(request, f"Not posted: {errors}")
        return redirect(going or back)
    except DomainError as error:
        return domain_error_page(request, error, back_url=going or back)
    messages.success(request, "Your reply was posted." if parent else "Your comment was posted.")
    return redirect(going or f"{back}#comment-{comment.pk}")


@login_required
@require_POST
def comment_resolve(request: HttpRequest, comment_pk: int) -> HttpResponse:
    comment = selectors.get_comment_for_user(request.user, comment_pk)
    back = _next_or(
        request, f"{review_url(comment.revision.stage, comment.revision)}#comment-{comment.pk}"
    )
    try:
        services.comment_resolve(comment=comment, actor=signed_in(request))
    except DomainError as error:
        return domain_error_page(request, error, back_url=back)
    messages.success(request, "Thread resolved.")
    return redirect(back)


@login_required
@require_http_methods(["GET", "POST"])
def stage_override(request: HttpRequest, stage_pk: int) -> HttpResponse:
    stage = selectors.get_reviewable_stage(request.user, stage_pk)
    if not lifecycle_permissions.is_instructor(request.user, stage.project.course):
        raise Http404("Only an instructor of this course overrides a gate.")
    if not password_confirmed_recently(request):
        # After the 404s: only an instructor learns that the page exists.
        return reauth_redirect(request)
    form = OverrideForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.stage_override(
                stage=stage,
                actor=signed_in(request),
                justification=form.cleaned_data["justification"],
            )
        except InvalidAnswers as invalid:
            add_service_errors(form, invalid.errors)
        except DomainError as error:
            return domain_error_page(
                request, error, title="The stage was not approved", back_url=review_url(stage)
            )
        else:
            messages.warning(
                request,
                f"“{stage.definition.title}” is approved by instructor override. The "
                "justification is shown on the stage and flagged in the audit trail.",
            )
            return redirect(review_url(stage))
    return render(
        request,
        "reviews/stage_override.html",
        {
            "stage": stage,
            "project": stage.project,
            "definition": stage.definition,
            "gate": services.gate_for_stage(stage),
            "form": form,
            "can_override": stage.status == StageStatus.IN_REVIEW and stage.project.is_active,
        },
        status=400 if request.method == "POST" else 200,
    )
