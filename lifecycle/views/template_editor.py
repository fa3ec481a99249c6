"""The template editor: course staff shape their course's lifecycle template in the site's own
pages. Every page 404s for anyone who is not staff of the course; every POST names the draft
edit it started from, so the second of two concurrent edits gets a conflict page."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from lifecycle import template_selectors as selectors
from lifecycle import template_services as services
from lifecycle.errors import DomainError
from lifecycle.markdown import render_markdown
from lifecycle.models import Course, TemplateDraft
from lifecycle.template_data import DocumentErrors, new_question, new_stage
from lifecycle.template_forms import (
    AttributesForm,
    CriterionForm,
    ImportForm,
    QuestionForm,
    RuleForm,
    StageForm,
    StartForm,
    add_document_errors,
)
from lifecycle.views.common import domain_error_page

MAX_IMPORT_BYTES = 1_000_000


def _editor_url(course: Course) -> str:
    return reverse("lifecycle:template_editor", args=[course.pk])


def _stage_url(course: Course, index: int) -> str:
    return reverse("lifecycle:template_stage", args=[course.pk, index])


def _base(request: HttpRequest) -> int:
    try:
        return int(request.POST.get("base_revision", ""))
    except ValueError:
        return -1


def _conflict(
    request: HttpRequest, course: Course, error: services.TemplateConflict
) -> HttpResponse:
    return render(
        request,
        "lifecycle/template_conflict.html",
        {"course": course, "error": error, "draft": error.draft},
        status=409,
    )


def _error(request: HttpRequest, course: Course, error: DomainError) -> HttpResponse:
    if isinstance(error, services.TemplateConflict):
        return _conflict(request, course, error)
    return domain_error_page(request, error, back_url=_editor_url(course))


def _edit(
    request: HttpRequest,
    course: Course,
    change: Callable[[dict[str, Any]], None],
    what: str,
) -> TemplateDraft:
    return services.template_draft_edit(
        course=course, actor=request.user, base_revision=_base(request), change=change, what=what
    )


def _stage_of(draft: TemplateDraft | None, index: int) -> dict[str, Any]:
    if draft is None or not 0 <= index < len(draft.data.get("stages", [])):
        raise Http404("No such stage in the draft.")
    return draft.data["stages"][index]


# --- the overview ----------------------------------------------------------------------------


@login_required
@require_GET
def template_editor(request: HttpRequest, course_pk: int) -> HttpResponse:
    course = selectors.get_course_for_staff(request.user, course_pk)
    return _overview(request, course)


def _overview(
    request: HttpRequest,
    course: Course,
    *,
    import_form: ImportForm | None = None,
    errors: list[str] | None = None,
    status: int = 200,
) -> HttpResponse:
    draft = selectors.draft_of(course)
    return render(
        request,
        "lifecycle/template_editor.html",
        {
            "course": course,
            "draft": draft,
            "stages": selectors.stage_rows(draft),
            "versions": selectors.versions_of(course),
            "start_form": StartForm(courses=selectors.other_taught_courses(request.user, course)),
            "import_form": import_form or ImportForm(),
            "document_errors": errors or [],
            "draft_problems": selectors.draft_problems(course, draft),
        },
        status=status,
    )


@login_required
@require_POST
def template_start(request: HttpRequest, course_pk: int) -> HttpResponse:
    course = selectors.get_course_for_staff(request.user, course_pk)
    form = StartForm(request.POST, courses=selectors.other_taught_courses(request.user, course))
    if not form.is_valid():
        return _overview(request, course, errors=[str(form.errors)], status=400)
    source_course = None
    if form.cleaned_data["source"] == "course":
        source_course = selectors.get_taught_course(
            request.user, form.cleaned_data["source_course"]
        )
    base = _base(request) if request.POST.get("base_revision") else None
    try:
        services.template_draft_start(
            course=course,
            actor=request.user,
            source=form.cleaned_data["source"],
            source_course=source_course,
            base_revision=base,
        )
    except DomainError as error:
        return _error(request, course, error)
    messages.success(request, "You are editing a draft; projects see nothing until you save it.")
    return redirect(_editor_url(course))


@login_required
@require_POST
def template_stage_add(request: HttpRequest, course_pk: int) -> HttpResponse:
    course = selectors.get_course_for_staff(request.user, course_pk)
    key = request.POST.get("key", "").strip()
    title = request.POST.get("title", "").strip() or key

    def change(data: dict[str, Any]) -> None:
        data["stages"].append(new_stage(key, title))

    return _apply(request, course, change, f"add stage {key}", _editor_url(course))


@login_required
@require_POST
def template_stage_move(request: HttpRequest, course_pk: int, index: int) -> HttpResponse:
    course = selectors.get_course_for_staff(request.user, course_pk)
    step = -1 if request.POST.get("direction") == "up" else 1

    def change(data: dict[str, Any]) -> None:
        stages = data["stages"]
        other = index + step
        if not (0 <= index < len(stages) and 0 <= other < len(stages)):
            raise IndexError("no stage there")
        stages[index], stages[other] = stages[other], stages[index]

    return _apply(request, course, change, f"move stage {index + 1}", _editor_url(course))


@login_required
@require_POST
def template_stage_remove(request: HttpRequest, course_pk: int, index: int) -> HttpResponse:
    course = selectors.get_course_for_staff(request.user, course_pk)

    def change(data: dict[str, Any]) -> None:
        del data["stages"][index]

    return _apply(request, course, change, f"remove stage {index + 1}", _editor_url(course))


def _apply(
    request: HttpRequest,
    course: Course,
    change: Callable[[dict[str, Any]], None],
    what: str,
    back: str,
) -> HttpResponse:
    try:
        _edit(request, course, change, what)
    except DocumentErrors as error:
        for path, msgs in error.errors.items():
            messages.error(request, f"{path or 'template'}: {' '.join(msgs)}")
        return redirect(back)
    except DomainError as error:
        return _error(request, course, error)
    messages.success(request, "Saved in the draft.")
    return redirect(back)


@login_required
@require_POST
def template_publish(request: HttpRequest, course_pk: int) -> HttpResponse:
    course = selectors.get_course_for_staff(request.user, course_pk)
    try:
        template = services.template_publish(
            course=course, actor=request.user, base_revision=_base(request)
        )
    except DocumentErrors as error:
        rest = [f"{p or 'template'}: {' '.join(m)}" for p, m in error.errors.items()]
        return _overview(request, course, errors=rest, status=400)
    except DomainError as error:
        return _error(request, course, error)
    messages.success(
        request,
        f"Saved as version {template.version}. New projects start on it; running projects stay "
        "on theirs until you migrate them.",
    )
    return redirect(_editor_url(course))


@login_required
@require_POST
def template_discard(request: HttpRequest, course_pk: int) -> HttpResponse:
    course = selectors.get_course_for_staff(request.user, course_pk)
    try:
        services.template_draft_discard(course=course, actor=request.user)
    except DomainError as error:
        return _error(request, course, error)
    messages.success(request, "The draft was discarded.")
    return redirect(_editor_url(course))


@login_required
@require_POST
def template_version_delete(request: HttpRequest, course_pk: int, template_pk: int) -> HttpResponse:
    course = selectors.get_course_for_staff(request.user, course_pk)
    template = selectors.get_version_for_course(course, template_pk)
    try:
        services.template_version_delete(template=template, course=course, actor=request.user)
    except DomainError as error:
        return _error(request, course, error)
    messages.success(request, f"Version {template.version} was deleted.")
    return redirect(_editor_url(course))


# --- export and import -----------------------------------------------------------------------


@login_required
@require_GET
def template_export(request: HttpRequest, course_pk: int) -> HttpResponse:
    """The draft (``?draft=1``) or a version of the course (``?version=<id>``, default the
    current one) as the schema's JSON document."""
    course = selectors.get_course_for_staff(request.user, course_pk)
    document, name = selectors.export_document(course, request.GET)
    response = HttpResponse(
        json.dumps(document, indent=2, ensure_ascii=False) + "\n",
        content_type="application/json; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="{name}.json"'
    return response


@login_required
@require_POST
def template_import(request: HttpRequest, course_pk: int) -> HttpResponse:
    course = selectors.get_course_for_staff(request.user, course_pk)
    form = ImportForm(request.POST, request.FILES)
    if not form.is_valid():
        return _overview(request, course, import_form=form, status=400)
    upload = form.cleaned_data["file"]
    if upload.size > MAX_IMPORT_BYTES:
        form.add_error("file", "The file is larger than 1 MB.")
        return _overview(request, course, import_form=form, status=413)
    try:
        data = json.loads(upload.read().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        form.add_error("file", f"Not JSON: {error}")
        return _overview(request, course, import_form=form, status=400)
    base = _base(request) if request.POST.get("base_revision") else None
    try:
        services.template_draft_import(
            course=course, actor=request.user, data=data, base_revision=base
        )
    except DocumentErrors as error:
        rest = [f"{p or 'template'}: {' '.join(m)}" for p, m in error.errors.items()]
        form.add_error("file", "The template was not imported; nothing was written.")
        return _overview(request, course, import_form=form, errors=rest, status=400)
    except DomainError as error:
        return _error(request, course, error)
    messages.success(request, "Imported into the draft. Check it, then save it as a version.")
    return redirect(_editor_url(course))


# --- one stage -------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def template_stage(request: HttpRequest, course_pk: int, index: int) -> HttpResponse:
    """A stage's fields (with a Markdown preview of the guidance that works without
    JavaScript), its questions in order, and its rules."""
    course = selectors.get_course_for_staff(request.user, course_pk)
    draft = selectors.draft_of(course)
    stage = _stage_of(draft, index)
    assert draft is not None
    form = StageForm(request.POST or None, initial=_stage_initial(stage))
    preview = ""
    errors: list[str] = []
    if request.method == "POST" and form.is_valid():
        values = form.values()
        if request.POST.get("action") == "preview":
            preview = render_markdown(values["guidance"])
        else:

            def change(data: dict[str, Any]) -> None:
                data["stages"][index].update(values)

            try:
                _edit(request, course, change, f"stage {index + 1}")
            except DocumentErrors as error:
                errors = add_document_errors(form, error.errors, f"stages[{index}]")
            except DomainError as error:
                return _error(request, course, error)
            else:
                messages.success(request, "Stage saved in the draft.")
                return redirect(_stage_url(course, index))
    return _stage_page(request, course, draft, index, form=form, preview=preview, errors=errors)


def _stage_initial(stage: dict[str, Any]) -> dict[str, Any]:
    rubric = stage.get("rubric") or {}
    return {
        **stage,
        "loop_targets": ", ".join(stage["loop_targets"]),
        "rubric": json.dumps(rubric, indent=2, ensure_ascii=False) if rubric else "",
    }


def _stage_page(
    request: HttpRequest,
    course: Course,
    draft: TemplateDraft,
    index: int,
    *,
    form: StageForm | None = None,
    rule_form: RuleForm | None = None,
    question_form: QuestionForm | None = None,
    criterion_form: CriterionForm | None = None,
    preview: str = "",
    errors: list[str] | None = None,
    dry_run: dict[str, Any] | None = None,
    status: int | None = None,
) -> HttpResponse:
    stage = draft.data["stages"][index]
    if status is None:
        status = 400 if (errors or (form is not None and form.errors)) else 200
    return render(
        request,
        "lifecycle/template_stage.html",
        {
            "course": course,
            "draft": draft,
            "index": index,
            "stage": stage,
            "form": form or StageForm(initial=_stage_initial(stage)),
            "questions": selectors.question_rows(stage),
            "rules": selectors.rule_rows(stage),
            "rule_form": rule_form or RuleForm(questions=stage["questions"]),
            "question_form": question_form
            or QuestionForm(initial={"kind": "long_text", "required": True}),
            "criteria": (stage.get("rubric") or {}).get("criteria", []),
            "criterion_form": criterion_form or CriterionForm(),
            "preview": preview,
            "errors": errors or [],
            "dry_run": dry_run,
        },
        status=status,
    )


@login_required
@require_POST
def template_question_add(request: HttpRequest, course_pk: int, index: int) -> HttpResponse:
    course = selectors.get_course_for_staff(request.user, course_pk)
    draft = selectors.draft_of(course)
    stage = _stage_of(draft, index)
    assert draft is not None
    form = QuestionForm(request.POST)
    if not form.is_valid():
        return _stage_page(request, course, draft, index, question_form=form, status=400)
    values = form.values()
    question = {**new_question(values["key"], values["prompt"]), **values}
    position = len(stage["questions"])

    def change(data: dict[str, Any]) -> None:
        data["stages"][index]["questions"].append(question)

    try:
        _edit(request, course, change, f"add question {values['key']} to stage {index + 1}")
    except DocumentErrors as error:
        rest = add_document_errors(form, error.errors, f"stages[{index}].questions[{position}]")
        return _stage_page(
            request, course, draft, index, question_form=form, errors=rest, status=400
        )
    except DomainError as error:
        return _error(request, course, error)
    messages.success(request, "Question added to the draft.")
    return redirect(_stage_url(course, index))


@login_required
@require_http_methods(["GET", "POST"])
def template_question(request: HttpRequest, course_pk: int, index: int, q: int) -> HttpResponse:
    course = selectors.get_course_for_staff(request.user, course_pk)
    draft = selectors.draft_of(course)
    stage = _stage_of(draft, index)
    if not 0 <= q < len(stage["questions"]):
        raise Http404("No such question.")
    question = stage["questions"][q]
    form = QuestionForm(
        request.POST or None, initial={**question, "choices": "\n".join(question["choices"])}
    )
    errors: list[str] = []
    if request.method == "POST" and form.is_valid():
        values = form.values()

        def change(data: dict[str, Any]) -> None:
            data["stages"][index]["questions"][q].update(values)

        try:
            _edit(request, course, change, f"question {values['key']} of stage {index + 1}")
        except DocumentErrors as error:
            errors = add_document_errors(form, error.errors, f"stages[{index}].questions[{q}]")
        except DomainError as error:
            return _error(request, course, error)
        else:
            messages.success(request, "Question saved in the draft.")
            return redirect(_stage_url(course, index))
    return render(
        request,
        "lifecycle/template_question.html",
        {
            "course": course,
            "draft": draft,
            "index": index,
            "stage": stage,
            "q": q,
            "form": form,
            "errors": errors,
        },
        status=400 if (errors or form.errors) else 200,
    )


@login_required
@require_POST
def template_question_move(
    request: HttpRequest, course_pk: int, index: int, q: int
) -> HttpResponse:
    course = selectors.get_course_for_staff(request.user, course_pk)
    step = -1 if request.POST.get("direction") == "up" else 1

    def change(data: dict[str, Any]) -> None:
        questions = data["stages"][index]["questions"]
        other = q + step
        if not (0 <= q < len(questions) and 0 <= other < len(questions)):
            raise IndexError("no question there")
        questions[q], questions[other] = questions[other], questions[q]

    return _apply(request, course, change, f"move question {q + 1}", _stage_url(course, index))


@login_required
@require_POST
def template_question_remove(
    request: HttpRequest, course_pk: int, index: int, q: int
) -> HttpResponse:
    course = selectors.get_course_for_staff(request.user, course_pk)

    def change(data: dict[str, Any]) -> None:
        del data["stages"][index]["questions"][q]

    return _apply(request, course, change, f"remove question {q + 1}", _stage_url(course, index))


@login_required
@require_POST
def template_criterion_add(request: HttpRequest, course_pk: int, index: int) -> HttpResponse:
    """A rubric criterion added with a plain form (the stage form's JSON field edits the whole
    rubric)."""
    course = selectors.get_course_for_staff(request.user, course_pk)
    draft = selectors.draft_of(course)
    stage = _stage_of(draft, index)
    assert draft is not None
    form = CriterionForm(request.POST)
    if not form.is_valid():
        return _stage_page(request, course, draft, index, criterion_form=form, status=400)
    criterion = dict(form.cleaned_data)
    position = len((stage.get("rubric") or {}).get("criteria", []))

    def change(data: dict[str, Any]) -> None:
        rubric = data["stages"][index].get("rubric") or {}
        rubric.setdefault("criteria", []).append(criterion)
        data["stages"][index]["rubric"] = rubric

    try:
        _edit(request, course, change, f"add criterion {criterion['key']} to stage {index + 1}")
    except DocumentErrors as error:
        rest = add_document_errors(
            form, error.errors, f"stages[{index}].rubric.criteria[{position}]"
        )
        return _stage_page(
            request, course, draft, index, criterion_form=form, errors=rest, status=400
        )
    except DomainError as error:
        return _error(request, course, error)
    messages.success(request, "Criterion added to the draft's rubric.")
    return redirect(_stage_url(course, index))


@login_required
@require_POST
def template_criterion_remove(
    request: HttpRequest, course_pk: int, index: int, c: int
) -> HttpResponse:
    course = selectors.get_course_for_staff(request.user, course_pk)

    def change(data: dict[str, Any]) -> None:
        rubric = data["stages"][index].get("rubric") or {}
        del rubric["criteria"][c]
        data["stages"][index]["rubric"] = rubric if rubric["criteria"] else {}

    return _apply(request, course, change, f"remove criterion {c + 1}", _stage_url(course, index))


@login_required
@require_POST
def template_rule_remove(request: HttpRequest, course_pk: int, index: int, r: int) -> HttpResponse:
    course = selectors.get_course_for_staff(request.user, course_pk)

    def change(data: dict[str, Any]) -> None:
        del data["stages"][index]["gate_rules"][r]

    return _apply(request, course, change, f"remove rule {r + 1}", _stage_url(course, index))


# --- project attributes ----------------------------------------------------------------------


@login_required
@require_POST
def project_attributes(request: HttpRequest, pk: int) -> HttpResponse:
    from lifecycle.selectors import get_project_for_user

    project = get_project_for_user(request.user, pk)
    form = AttributesForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a risk tier; the domain is one word, e.g. health.")
        return redirect(project.get_absolute_url())
    try:
        services.project_set_attributes(
            project=project,
            actor=request.user,
            risk_tier=form.cleaned_data["risk_tier"],
            domain=form.cleaned_data["domain"],
        )
    except DomainError as error:
        return domain_error_page(request, error, back_url=project.get_absolute_url())
    messages.success(request, "The project's attributes were saved.")
    return redirect(project.get_absolute_url())
