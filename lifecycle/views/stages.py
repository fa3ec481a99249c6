"""The stage page: guidance, the form, autosave, conflicts, submission and revision history."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.db.models import prefetch_related_objects
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.datastructures import MultiValueDict
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from lifecycle import freshness, limits, permissions, services
from lifecycle.answers import clean_answers
from lifecycle.diffs import answer_text, diff_answers, stakeholder_changes, word_diff
from lifecycle.errors import DomainError, DraftConflict, InvalidAnswers
from lifecycle.forms import StageAnswersForm, SubmitForm, add_service_errors
from lifecycle.markdown import render_markdown
from lifecycle.models import ProjectStage, Question, StageStatus
from lifecycle.panels import stage_feedback

from .common import domain_error_page, get_stage_for_user, require_member

RESOLVE_PREFIX = "resolve__"
FORM_CACHE_SECONDS = 24 * 3600


def _form_html(
    stage: ProjectStage,
    questions: list[Question],
    editable: bool,
    feedback: dict[str, str] | None = None,
) -> str:
    """The unbound form's fields as HTML, cached by what they show: the stage and its draft's
    version (every saved change bumps it), the questions as they are, whether the fields are
    disabled, and the reviewers' feedback under the questions (threads change without a new
    draft version). A form with posted data or errors is never cached (see _page)."""
    shape = repr(
        [(q.pk, q.key, q.kind, q.prompt, q.help_text, q.required, q.choices) for q in questions]
    ) + repr(sorted((feedback or {}).items()))
    digest = hashlib.sha256(shape.encode()).hexdigest()[:24]
    saved = stage.draft_updated_at.timestamp() if stage.draft_updated_at else 0
    key = f"stage-form:{stage.pk}:{stage.draft_version}:{saved}:{int(editable)}:{digest}"
    html = cache.get(key)
    if html is None:
        form = _form_for(stage, questions, editable=editable)
        form.feedback = dict(feedback or {})
        html = render_to_string("lifecycle/partials/stage_form.html", {"form": form})
        cache.set(key, html, FORM_CACHE_SECONDS)
    return mark_safe(html)  # our own template's output, escaped when rendered


def _questions(stage: ProjectStage) -> list[Question]:
    # Prefetched onto the definition, so the gate panel's labels reuse them.
    prefetch_related_objects([stage.definition], "questions")
    return list(stage.definition.questions.all())


def _form_for(
    stage: ProjectStage,
    questions: list[Question],
    *,
    editable: bool,
    data: Any = None,
) -> StageAnswersForm:
    initial = StageAnswersForm.initial_from_answers(
        stage.draft_answers, questions, stage.draft_version
    )
    return StageAnswersForm(data, initial=initial, questions=questions, disabled=not editable)


def _labels(questions: list[Question]) -> dict[str, str]:
    return {q.key: q.prompt for q in questions}


def _named(keys: list[str], questions: list[Question]) -> str:
    labels = _labels(questions)
    return ", ".join(f"“{labels.get(k, k)}”" for k in keys)


def _page(
    request: HttpRequest,
    stage: ProjectStage,
    questions: list[Question] | None,
    *,
    form: StageAnswersForm | None = None,
    conflict: DraftConflict | None = None,
    status: int = 200,
    **extra: Any,
) -> HttpResponse:
    """The stage page. Its content, for a plain GET, is a fragment cached by what it shows
    (lifecycle.freshness): the project's and the course's tokens, the stage's draft version and
    status; a page with posted data, a conflict or errors is always rendered."""
    project = stage.project

    def body(shown: ProjectStage = stage) -> str:
        return render_to_string(
            "lifecycle/partials/stage_body.html",
            _body_context(request, shown, questions, form=form, conflict=conflict, **extra),
            request,
        )

    def fresh_body() -> str:
        # The rows as they are after the tokens were read (freshness: a fragment may be newer
        # than its tokens, never older).
        _, again = get_stage_for_user(request.user, project.pk, stage.cycle, stage.definition.key)
        return body(again)

    if form is None and conflict is None and status == 200 and not extra:
        html = freshness.cached_fragment(
            request,
            "stage",
            fresh_body,
            project_ids=[project.pk],
            course_ids=[project.course_id],
            parts=[stage.pk, stage.draft_version, stage.status, stage.current_revision_id],
        )
    else:
        html = mark_safe(body())  # our template's output, escaped when rendered
    context = {"project": project, "stage": stage, "definition": stage.definition, "body": html}
    return render(request, "lifecycle/stage_detail.html", context, status=status)


def _body_context(
    request: HttpRequest,
    stage: ProjectStage,
    questions: list[Question] | None,
    *,
    form: StageAnswersForm | None,
    conflict: DraftConflict | None,
    **extra: Any,
) -> dict[str, Any]:
    project = stage.project
    if questions is None:
        questions = _questions(stage)
    # The team, read once for the member check and the gate panel.
    prefetch_related_objects([project], "members")
    is_member = permissions.is_project_member(request.user, project)
    editable = is_member and project.is_active and stage.is_editable
    feedback = stage_feedback(request, stage, next_url=stage.get_absolute_url())
    form_html = None
    if form is None:
        form_html = _form_html(stage, questions, editable, feedback.by_question)
    else:
        form.feedback = feedback.by_question
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
    return {
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
        "feedback": feedback,
        "poll_url": reverse(
            "lifecycle:stage_draft_state", args=[project.pk, stage.cycle, stage.definition.key]
        )
        if editable
        else "",
        **extra,
    }


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
    if request.method == "GET":
        # The rows alone: the content is cached, or rendered from the rows read again (_page).
        _, stage = get_stage_for_user(request.user, pk, cycle, key, light=True)
        return _page(request, stage, None)
    project, stage = get_stage_for_user(request.user, pk, cycle, key)
    questions = _questions(stage)

    require_member(request.user, project)
    form = _form_for(stage, questions, editable=True, data=request.POST)
    form.is_valid()
    if "draft_version" in form.errors:
        messages.error(request, "Not saved: reload the page and try again.")
        return _page(request, stage, questions, form=form, status=400)
    # Autosave never loses a valid field: the valid answers are saved, the invalid ones stay
    # in the form with their errors.
    answers, form_errors = form.valid_answers()
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
                labels=_labels(questions),
            )
            return _conflict_page(request, stage, questions, form, conflict, answers)
        answers = _apply_resolutions(request, answers, stage.draft_answers)
    try:
        saved = services.stage_save_draft_merging(
            stage=stage,
            actor=request.user,
            answers=answers,
            base_version=base_version,
            skip_invalid=True,
        )
    except DraftConflict as conflict:
        return _conflict_page(request, stage, questions, form, conflict, answers)
    except DomainError as error:
        return domain_error_page(request, error, back_url=stage.get_absolute_url())
    invalid = {**form_errors, **saved.invalid}
    if saved.merged:
        messages.info(
            request,
            f"Merged: {saved.merged_by}'s changes to {_named(saved.merged, questions)} are kept "
            "beside yours.",
        )
    stamp = timezone.localtime().strftime("%H:%M")
    if invalid:
        stamp = stamp if saved.saved else ""
        return _partly_saved_page(request, saved.stage, questions, form, invalid, stamp)
    if "submit" in request.POST:
        return redirect(reverse("lifecycle:stage_submit", args=[pk, cycle, key]))
    messages.success(request, f"Draft saved at {stamp}.")
    return redirect(stage.get_absolute_url())


def _partly_saved_page(
    request: HttpRequest,
    stage: ProjectStage,
    questions: list[Question],
    form: StageAnswersForm,
    invalid: dict[str, list[str]],
    stamp: str,
) -> HttpResponse:
    """The saved draft, with the user's input for the questions not saved and their errors."""
    stage.refresh_from_db()
    data = StageAnswersForm.initial_from_answers(
        stage.draft_answers, questions, stage.draft_version
    )
    # As posted data: a field that takes one value reads the last of several (a POST that
    # repeats a date field is an error message, not a 500), a multiple choice reads them all.
    data = MultiValueDict(
        {k: v if isinstance(v, list) else [v] for k, v in data.items() if v is not None}
    )
    for q in questions:
        if q.key in invalid:
            for name in form.question_fields(q):
                data.pop(name, None)
                if name in request.POST:
                    data.setlist(name, request.POST.getlist(name))
    bound = StageAnswersForm(data, questions=questions)
    bound.is_valid()
    bound.add_answer_errors(
        {k: v for k, v in invalid.items() if not bound.errors.get(k) and k in _labels(questions)}
    )
    names = _named([q.key for q in questions if q.key in invalid], questions)
    saved_note = f"The other answers were saved at {stamp}. " if stamp else ""
    messages.error(request, f"{saved_note}Not saved: {names}. Correct the fields marked below.")
    return _page(request, stage, questions, form=bound, status=400)


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
    if conflict.merged_answers:
        # What only the teammate changed is theirs already; the form holds that, the user's
        # other changes, and for the questions in conflict the user's text.
        initial = StageAnswersForm.initial_from_answers(
            conflict.merged_answers, questions, conflict.current_version
        )
        data: Any = {k: v for k, v in initial.items() if v is not None}
    else:
        data = request.POST.copy()
        data["draft_version"] = str(conflict.current_version)
    merged_form = StageAnswersForm(data, questions=questions)
    merged_form.is_valid()
    if conflict.merged_questions:
        messages.info(
            request,
            f"Merged without asking: {conflict.updated_by}'s changes to "
            f"{_named(conflict.merged_questions, questions)}.",
        )
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
    """htmx: save every valid answer of the form; answer with the save indicator, which names
    the questions not saved, their inline errors and the new version."""
    project, stage = get_stage_for_user(request.user, pk, cycle, key)
    require_member(request.user, project)
    questions = _questions(stage)
    form = _form_for(stage, questions, editable=True, data=request.POST)
    form.is_valid()
    labels = _labels(questions)
    context: dict[str, Any] = {"stage": stage, "questions": questions}
    if "draft_version" in form.errors:
        context["error"] = "the page is out of date; reload it."
        return render(request, "lifecycle/partials/save_status.html", context)
    answers, invalid = form.valid_answers()
    try:
        saved = services.stage_save_draft_merging(
            stage=stage,
            actor=request.user,
            answers=answers,
            base_version=form.cleaned_data["draft_version"],
            skip_invalid=True,
        )
    except DraftConflict as conflict:
        context["conflict"] = conflict
    except DomainError as error:
        context["error"] = error.message
    else:
        invalid = {**invalid, **{k: v for k, v in saved.invalid.items() if k in labels}}
        context["saved_at"] = timezone.localtime(saved.stage.draft_updated_at or timezone.now())
        context["saved"] = True
        context["changed"] = bool(saved.saved)
        context["version"] = saved.stage.draft_version
        context["merged"] = [labels[k] for k in saved.merged if k in labels]
        context["merged_by"] = saved.merged_by
        if saved.merged:
            # The page holds the teammate's old text for these: give it their new one, so the
            # next autosave does not hand the old text back as a change.
            values = StageAnswersForm.initial_from_answers(
                {k: saved.stage.draft_answers.get(k) for k in saved.merged}, questions, 0
            )
            values.pop("draft_version", None)
            context["merged_values"] = json.dumps(
                {
                    name: "" if value is None else value
                    for q in questions
                    if q.key in saved.merged
                    for name in form.question_fields(q)
                    for value in [values.get(name)]
                }
            )
    context["invalid"] = [
        {"key": q.key, "label": q.prompt, "messages": invalid[q.key]}
        for q in questions
        if q.key in invalid
    ]
    context["flags"] = [{"key": q.key, "messages": invalid.get(q.key, [])} for q in questions]
    return render(request, "lifecycle/partials/save_status.html", context)


@login_required
@require_GET
def stage_draft_state(request: HttpRequest, pk: int, cycle: int, key: str) -> JsonResponse:
    """Polled by the open stage page: the draft's version, and since ``since`` who changed
    which questions, named by their text."""
    project, stage = get_stage_for_user(request.user, pk, cycle, key)
    require_member(request.user, project)
    try:
        since = int(request.GET.get("since", stage.draft_version))
    except ValueError:
        since = stage.draft_version
    questions = _questions(stage)
    changed = [
        q
        for q in questions
        if stage.draft_changed_at.get(q.key, 0) > since
        and stage.draft_changed_by.get(q.key) != request.user.pk
    ]
    return JsonResponse(
        {
            "version": stage.draft_version,
            "status": stage.status,
            "updated_by": stage.draft_updated_by.name if stage.draft_updated_by else "",
            "changed": [{"key": q.key, "label": q.prompt} for q in changed],
        }
    )


@login_required
@require_http_methods(["GET", "POST"])
def stage_submit(request: HttpRequest, pk: int, cycle: int, key: str) -> HttpResponse:
    project, stage = get_stage_for_user(request.user, pk, cycle, key)
    require_member(request.user, project)
    questions = _questions(stage)
    feedback = stage_feedback(request, stage, next_url=stage.get_absolute_url())
    resubmitting = stage.status == StageStatus.CHANGES_REQUESTED
    form = SubmitForm(
        request.POST if request.method == "POST" else None,
        response_required=resubmitting,
        threads=feedback.open_threads,
        initial={"draft_version": stage.draft_version},
    )
    if request.method == "POST" and form.is_valid():
        base = form.cleaned_data["draft_version"]
        try:
            revision = services.stage_submit(
                stage=stage,
                actor=request.user,
                base_version=base,
                editorial=request.POST.get("editorial") == "1",
                response=form.cleaned_data["response"],
                thread_responses=form.thread_responses(),
            )
        except DraftConflict as conflict:
            messages.warning(request, conflict.message + " Read their changes before submitting.")
            return redirect(stage.get_absolute_url())
        except InvalidAnswers as invalid:
            if set(invalid.errors) <= {"response"}:
                add_service_errors(form, invalid.errors)
            else:
                bound = _form_for(stage, questions, editable=True, data=_as_post(stage, questions))
                bound.is_valid()
                bound.add_answer_errors(invalid.errors)
                messages.error(request, "Not submitted: answer the questions marked below.")
                return _page(request, stage, questions, form=bound, status=400)
        except DomainError as error:
            return domain_error_page(request, error, back_url=stage.get_absolute_url())
        else:
            told = (
                " Your response is at the top of their review page."
                if revision.response_to_reviewers
                else ""
            )
            messages.success(
                request,
                f"Revision {revision.number} of “{stage.definition.title}” submitted for "
                f"review. The stage is read-only while reviewers decide.{told}",
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
            "form": form,
            "resubmitting": resubmitting,
        },
        status=400 if request.method == "POST" else 200,
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
                    "old_label": f"Revision {old.number}" if old else "Nothing before",
                    "new_label": f"Revision {new.number}",
                    "diffs": diff_answers(questions, old_answers, new.answers),
                    "stakeholder_changes": stakeholder_changes(
                        old.stakeholders if old else [], new.stakeholders
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
