"""Pages of the template editor that need the gate: adding a rule with its dry run, and
migrating running projects to the course's current template version with a preview."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from lifecycle import template_selectors as selectors
from lifecycle import template_services
from lifecycle.errors import DomainError
from lifecycle.template_data import DocumentErrors, ReviewerPool
from lifecycle.template_forms import RuleForm, add_document_errors
from lifecycle.views.common import domain_error_page
from lifecycle.views.template_editor import _edit, _error, _stage_of, _stage_page, _stage_url

from ..template_rules import dry_run, migration_previews
from ..template_rules import editorial_accept as editorial_accept_service


def _satisfiability(course: Any, stage: dict[str, Any], rule: dict[str, Any]) -> list[str]:
    from lifecycle.template_data import unsatisfiable

    pool: ReviewerPool = template_services.reviewer_pool(course)
    return unsatisfiable({**stage, "gate_rules": [rule]}, pool)


@login_required
@require_POST
def template_rule_add(request: HttpRequest, course_pk: int, index: int) -> HttpResponse:
    """Add a rule to a stage of the draft, or (``action=dry_run``) first see what it would mean
    for every project in review on this stage, and whether the course's reviewer pool could
    ever satisfy it. A rule no pool could satisfy is refused and nothing is written."""
    course = selectors.get_course_for_staff(request.user, course_pk)
    draft = selectors.draft_of(course)
    stage = _stage_of(draft, index)
    assert draft is not None
    form = RuleForm(request.POST, questions=stage["questions"])
    if not form.is_valid():
        return _stage_page(request, course, draft, index, rule_form=form, status=400)
    rule = form.rule()
    position = len(stage["gate_rules"])
    problems = _satisfiability(course, stage, rule)
    if request.POST.get("action") == "dry_run":
        rows = dry_run(course=course, stage_key=stage["key"], rules=[*stage["gate_rules"], rule])
        result = {
            "rule": rule,
            "rows": rows,
            "problems": problems,
            "became_satisfied": sum(1 for r in rows if r.change == "satisfied"),
            "became_unsatisfied": sum(1 for r in rows if r.change == "unsatisfied"),
        }
        return _stage_page(
            request, course, draft, index, rule_form=form, dry_run=result, status=200
        )
    if problems:
        return _stage_page(
            request, course, draft, index, rule_form=form, errors=problems, status=400
        )

    def change(data: dict[str, Any]) -> None:
        data["stages"][index]["gate_rules"].append(rule)

    try:
        _edit(request, course, change, f"add a {rule['kind']} rule to stage {index + 1}")
    except DocumentErrors as error:
        rest = add_document_errors(form, error.errors, f"stages[{index}].gate_rules[{position}]")
        return _stage_page(request, course, draft, index, rule_form=form, errors=rest, status=400)
    except DomainError as error:
        return _error(request, course, error)
    messages.success(request, "Rule added to the draft.")
    return redirect(_stage_url(course, index))


@login_required
@require_GET
def template_migrations(request: HttpRequest, course_pk: int) -> HttpResponse:
    """Running projects on an older version of the course's template, each with what migrating
    it to the current version would change (paged)."""
    course = selectors.get_course_for_staff(request.user, course_pk)
    target = course.template
    page = Paginator(selectors.projects_behind(course), 10).get_page(request.GET.get("page"))
    previews = migration_previews(list(page), target)
    return render(
        request,
        "reviews/template_migrations.html",
        {"course": course, "target": target, "page": page, "previews": previews},
    )


@login_required
@require_POST
def project_migrate(request: HttpRequest, course_pk: int, project_pk: int) -> HttpResponse:
    course = selectors.get_course_for_staff(request.user, course_pk)
    project = selectors.get_project_of_course(course, project_pk)
    back = reverse("reviews:template_migrations", args=[course.pk])
    try:
        target = selectors.get_version_for_course(course, int(request.POST.get("target", "0")))
    except ValueError:
        target = course.template
    try:
        template_services.project_migrate_template(
            project=project, actor=request.user, target=target
        )
    except DomainError as error:
        return domain_error_page(request, error, back_url=back)
    messages.success(request, f"“{project.title}” now runs on version {target.version}.")
    return redirect(back)


@login_required
@require_POST
def editorial_accept(request: HttpRequest, stage_pk: int) -> HttpResponse:
    """A reviewer accepts the team's editorial resubmission (the stage's dismissal rule lets
    their earlier approval carry)."""
    from ..selectors import get_reviewable_stage
    from .stages import review_url

    stage = get_reviewable_stage(request.user, stage_pk)
    revision = stage.current_revision
    if revision is None:
        raise Http404("Nothing has been submitted on this stage.")
    try:
        editorial_accept_service(revision=revision, reviewer=request.user)
    except DomainError as error:
        return domain_error_page(request, error, back_url=review_url(stage))
    messages.success(request, "You accepted the change as editorial.")
    return redirect(review_url(stage))
