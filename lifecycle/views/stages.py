"""The stage page: guidance, the form, autosave, conflicts, submission and revision history."""

from __future__ import annotations

import hashlib
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.db.models import prefetch_related_objects
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods, require_POST

from lifecycle import limits, permissions, services
from lifecycle.answers import clean_answers
from lifecycle.diffs import answer_text, diff_answers, stakeholders_text, word_diff
from lifecycle.errors import DomainError, DraftConflict, InvalidAnswers
from lifecycle.forms import StageAnswersForm
from lifecycle.markdown import render_markdown
from lifecycle.models import ProjectStage, Question, StageStatus

from .common import domain_error_page, get_stage_for_user, require_member

RESOLVE_PREFIX = "resolve__"
FORM_CACHE_SECONDS = 24 * 3600


def _form_html(stage: ProjectStage, questions: list[Question], editable: bool) -> str:
    """The unbound form's fields as HTML, cached by what they show: the stage and its draft's
    version (every saved change bumps it), the questions as they are, and whether the fields
    are disabled. A form with posted data or errors is never cached (see _page)."""
    shape = repr(
        [(q.pk, q.key, q.kind, q.prompt, q.help_text, q.required, q.choices) for q in questions]
    )
    digest = hashlib.sha256(shape.encode()).hexdigest()[:24]
    saved = stage.draft_updated_at.timestamp() if stage.draft_updated_at else 0
    key = f"stage-form:{stage.pk}:{stage.draft_version}:{saved}:{int(editable)}:{digest}"
    html = cache.get(key)
    if html is None:
        form = _form_for(stage, questions, editable=editable)
        html = render_to_string("lifecycle/partials/stage_form.html", {"form": form})
        cache.set(key, html, FORM_CACHE_SECONDS)
    return mark_safe(html)  # our own template's output, escaped when rendered


def _questions(stage: ProjectStage) -> list[Question]:
    # Prefetched onto the definition, so the gate panel's labels reuse them.
    prefetch_related_objects([stage.definition], "questions")
    return list(stage.definition.questions.all())


def _form_for(
    stage: ProjectStage, questions: list[Question], *, editable: bool, data: Any = None
) -> StageAnswersForm:
    initial = StageAnswersForm.initial_from_answers(
        stage.draft_answers, questions, stage.draft_version
    )
    return StageAnswersForm(data, initial=initial, questions=questions, disabled=not editable)


def _page(
    request: HttpRequest,
    stage: ProjectStage,
    questions: list[Question],
    *,
    form: StageAnswersForm | None = None,
    conflict: DraftConflict | None = None,
    status: int = 200,
    **extra: Any,
) -> HttpResponse:
    project = stage.project
    # The team, read once for the member check and the gate panel.
    prefetch_related_objects([project], "members")
    is_member = permissions.is_project_member(request.user, project)
    editable = is_member and project.is_active and stage.is_editable
    form_html = None
    if form is None:
        form_html = _form_html(stage, questions, editable)
    previous = None
    if stage.status == StageStatus.LOCKED:
        previous = (
            ProjectStage.objects.filter(
                project=project, cycle=stage.cycle, definition__order__lt=stage.definition.order
            )
            .select_related("definition")
            .order_by("-definition__order")
            .first()
        )
    context = {
        "project": project,
        "stage": stage,
        "definition": stage.definition,
        "form": form,
        "form_html": form_html,
        "questions": questions,
        "is_member": is_member,
        "editable": editable,
        "previous_stage": previous,
        "conflict": conflict,
        "stakeholders": list(project.stakeholders.all()),
        "revisions": list(stage.revisions.select_related("created_by").order_by("-number")),
        **extra,
    }
    return render(request, "lifecycle/stage_detail.html", context, status=status)


def _conflict_context(
    conflict: DraftConflict, questions: list[Question], mine: dict[str, Any]
) -> list[dict[str, Any]]:
    rows = []
    for q in questions:
        if q.key not in conflict.changed_questions:
            continue
        theirs_text = answer_text(q, conflict.current_answers.get(q.key))
        mine_text = answer_text(q, mine.get(q.key))
        rows.append(
            {
                "question": q,
                "theirs": theirs_text,
                "mine": mine_text,
                "same": theirs_text == mine_text,
                "chunks": word_diff(theirs_text, mine_text),
                "field": RESOLVE_PREFIX + q.key,
            }
        )
    return rows


def _apply_resolutions(
    request: HttpRequest, answers: dict[str, Any], saved: dict[str, Any]
) -> dict[str, Any]:
    """On the conflict page the user chose, per question, their text or the teammate's."""
    merged = dict(answers)
    for name, choice in request.POST.items():
        if name.startswith(RESOLVE_PREFIX) and choice == "theirs":
            key = name[len(RESOLVE_PREFIX) :]
            if key in merged:
                merged[key] = saved.get(key)
    return merged


def _unresolved(request: HttpRequest, conflict_keys: list[str]) -> list[str]:
    return [
        k for k in conflict_keys if request.POST.get(RESOLVE_PREFIX + k) not in ("mine", "theirs")
    ]


@login_required
@require_http_methods(["GET", "POST"])
def stage_detail(request: HttpRequest, pk: int, cycle: int, key: str) -> HttpResponse:
    project, stage = get_stage_for_user(request.user, pk, cycle, key)
    questions = _questions(stage)
    if request.method == "GET":
        return _page(request, stage, questions)

    require_member(request.user, project)
    form = _form_for(stage, questions, editable=True, data=request.POST)
    if not form.is_valid():
        messages.error(request, "Not saved: correct the fields marked below.")
        return _page(request, stage, questions, form=form, status=400)
    answers = form.answers()
    base_version = form.cleaned_data["draft_version"]
    merging = request.POST.get("merge") == "1"
    if merging:
        conflict_keys = request.POST.getlist("conflict_keys")
        missing = _unresolved(request, conflict_keys)
        if missing:
            messages.error(request, "Choose, for every question in conflict, which text to keep.")
            conflict = DraftConflict(
                changed_questions=conflict_keys,
                current_version=stage.draft_version,
                current_answers=stage.draft_answers,
                updated_by=stage.draft_updated_by.name if stage.draft_updated_by else "Someone",
            )
            return _conflict_page(request, stage, questions, form, conflict, answers)
        answers = _apply_resolutions(request, answers, stage.draft_answers)
    try:
        services.stage_save_draft(
            stage=stage, actor=request.user, answers=answers, base_version=base_version
        )
    except DraftConflict as conflict:
        return _conflict_page(request, stage, questions, form, conflict, answers)
    except InvalidAnswers as invalid:
        form.add_answer_errors(invalid.errors)
        messages.error(request, "Not saved: correct the fields marked below.")
        return _page(request, stage, questions, form=form, status=400)
    except DomainError as error:
        return domain_error_page(request, error, back_url=stage.get_absolute_url())
    stamp = timezone.localtime().strftime("%H:%M")
    if "submit" in request.POST:
        return redirect(reverse("lifecycle:stage_submit", args=[pk, cycle, key]))
    messages.success(request, f"Draft saved at {stamp}.")
    return redirect(stage.get_absolute_url())


def _conflict_page(
    request: HttpRequest,
    stage: ProjectStage,
    questions: list[Question],
    form: StageAnswersForm,
    conflict: DraftConflict,
    mine: dict[str, Any],
) -> HttpResponse:
    """Show their version and the user's side by side; the user's text stays in the form, and
    the form now builds on the teammate's version, so saving it is a deliberate merge."""
    stage.refresh_from_db()
    data = request.POST.copy()
    data["draft_version"] = str(conflict.current_version)
    merged_form = StageAnswersForm(data, questions=questions)
    merged_form.is_valid()
    return _page(
        request,
        stage,
        questions,
        form=merged_form,
        conflict=conflict,
        conflict_rows=_conflict_context(conflict, questions, mine),
        status=409,
    )


@login_required
@require_POST
def stage_autosave(request: HttpRequest, pk: int, cycle: int, key: str) -> HttpResponse:
    """htmx: save the whole form, answer with the save indicator and the new version."""
    project, stage = get_stage_for_user(request.user, pk, cycle, key)
    require_member(request.user, project)
    questions = _questions(stage)
    form = _form_for(stage, questions, editable=True, data=request.POST)
    context: dict[str, Any] = {"stage": stage}
    if not form.is_valid():
        context["errors"] = form.errors
        return render(request, "lifecycle/partials/save_status.html", context)
    try:
        saved = services.stage_save_draft(
            stage=stage,
            actor=request.user,
            answers=form.answers(),
            base_version=form.cleaned_data["draft_version"],
        )
    except DraftConflict as conflict:
        context["conflict"] = conflict
    except InvalidAnswers as invalid:
        context["errors"] = invalid.errors
    except DomainError as error:
        context["error"] = error.message
    else:
        context["saved_at"] = timezone.localtime(saved.draft_updated_at or timezone.now())
        context["version"] = saved.draft_version
    return render(request, "lifecycle/partials/save_status.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def stage_submit(request: HttpRequest, pk: int, cycle: int, key: str) -> HttpResponse:
    project, stage = get_stage_for_user(request.user, pk, cycle, key)
    require_member(request.user, project)
    questions = _questions(stage)
    if request.method == "POST":
        try:
            base = int(request.POST.get("draft_version", ""))
        except ValueError:
            base = None
        try:
            revision = services.stage_submit(stage=stage, actor=request.user, base_version=base)
        except DraftConflict as conflict:
            messages.warning(request, conflict.message + " Read their changes before submitting.")
            return redirect(stage.get_absolute_url())
        except InvalidAnswers as invalid:
            bound = _form_for(stage, questions, editable=True, data=_as_post(stage, questions))
            bound.is_valid()
            bound.add_answer_errors(invalid.errors)
            messages.error(request, "Not submitted: answer the questions marked below.")
            return _page(request, stage, questions, form=bound, status=400)
        except DomainError as error:
            return domain_error_page(request, error, back_url=stage.get_absolute_url())
        messages.success(
            request,
            f"Revision {revision.number} of “{stage.definition.title}” submitted for "
            "review. The stage is read-only while reviewers decide.",
        )
        return redirect(stage.get_absolute_url())

    _, errors = clean_answers(questions, stage.draft_answers, complete=True)
    missing = [q for q in questions if q.key in errors]
    needs_stakeholders = (
        stage.definition.requires_stakeholders and not project.stakeholders.exists()
    )
    return render(
        request,
        "lifecycle/stage_submit.html",
        {
            "project": project,
            "stage": stage,
            "definition": stage.definition,
            "missing": missing,
            "errors": errors,
            "needs_stakeholders": needs_stakeholders,
            "can_submit": stage.is_editable and project.is_active,
        },
    )


def _as_post(stage: ProjectStage, questions: list[Question]) -> dict[str, Any]:
    """The saved draft as form data, to bind a form that shows the service's errors."""
    initial = StageAnswersForm.initial_from_answers(
        stage.draft_answers, questions, stage.draft_version
    )
    return {k: v for k, v in initial.items() if v is not None}


@login_required
@require_http_methods(["GET"])
def stage_revisions(request: HttpRequest, pk: int, cycle: int, key: str) -> HttpResponse:
    project, stage = get_stage_for_user(request.user, pk, cycle, key)
    questions = _questions(stage)
    revisions = list(stage.revisions.select_related("created_by").order_by("number"))
    by_number = {r.number: r for r in revisions}
    context: dict[str, Any] = {"project": project, "stage": stage, "revisions": revisions}
    if len(revisions) >= 1:
        try:
            b = int(request.GET.get("b", revisions[-1].number))
            a = int(request.GET.get("a", b - 1))
        except ValueError:
            a, b = revisions[-1].number - 1, revisions[-1].number
        new = by_number.get(b)
        old = by_number.get(a)
        if new is not None:
            old_answers = old.answers if old else {}
            context.update(
                {
                    "a": old.number if old else None,
                    "b": new.number,
                    "diffs": diff_answers(questions, old_answers, new.answers),
                    "stakeholder_chunks": word_diff(
                        stakeholders_text(old.stakeholders if old else []),
                        stakeholders_text(new.stakeholders),
                    )
                    if stage.definition.requires_stakeholders
                    else None,
                }
            )
    return render(request, "lifecycle/stage_revisions.html", context)


# A long answer holds at most 50,000 characters (lifecycle.forms); a preview of more is refused
# rather than cut short, so what the author sees is what the reviewers will.
MAX_PREVIEW_CHARS = 50_000
PREVIEWS_PER_MINUTE = 60


@login_required
@require_POST
def markdown_preview(request: HttpRequest) -> HttpResponse:
    field = request.POST.get("field", "")
    text = request.POST.get(field, "") if field else request.POST.get("text", "")
    if len(text) > MAX_PREVIEW_CHARS:
        message = (
            f"Too long to preview: {len(text):,} characters, and an answer holds at most "
            f"{MAX_PREVIEW_CHARS:,}."
        )
        return HttpResponse(
            render_to_string("lifecycle/partials/busy.html", {"message": message}), status=413
        )
    try:
        limits.check_rate(
            "markdown-preview",
            request.user,
            per_minute=PREVIEWS_PER_MINUTE,
            message="Too many previews in a minute; wait a moment and try again.",
        )
        with limits.concurrency_slot(
            "markdown-preview",
            request.user,
            expires=30,
            message="Already preparing a preview for you; wait for it to appear.",
        ):
            html = render_markdown(text)
    except limits.Busy as busy:
        return limits.busy_response(request, busy)
    return HttpResponse(html or "<p class='text-body-secondary'>Nothing to preview.</p>")
