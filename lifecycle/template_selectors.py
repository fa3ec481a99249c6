"""Reads of the template editor: lookups scoped to course staff (404 for anyone else), the
rows its pages show, and the document an export writes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db.models import Count, Exists, OuterRef, QuerySet
from django.http import Http404

from .models import (
    STAFF_ROLES,
    Course,
    LifecycleTemplate,
    Membership,
    Project,
    ProjectStatus,
    TemplateDraft,
)
from .template_data import document_from_template, validate_document

VERSION_LIMIT = 20


def _staff_courses(user: Any) -> QuerySet[Course]:
    if not getattr(user, "is_authenticated", False):
        return Course.objects.none()
    return Course.objects.filter(
        Exists(Membership.objects.filter(course=OuterRef("pk"), user=user, role__in=STAFF_ROLES))
    )


def get_course_for_staff(user: Any, course_pk: int) -> Course:
    """The course, if ``user`` is its instructor or TA; 404 otherwise (students, experts and
    outsiders never learn the editor exists)."""
    course = _staff_courses(user).select_related("template").filter(pk=course_pk).first()
    if course is None:
        raise Http404("No such course.")
    return course


def get_taught_course(user: Any, course_pk: int | None) -> Course | None:
    if course_pk is None:
        return None
    course = _staff_courses(user).select_related("template").filter(pk=course_pk).first()
    if course is None:
        raise Http404("No such course.")
    return course


def other_taught_courses(user: Any, course: Course) -> list[Course]:
    return list(_staff_courses(user).exclude(pk=course.pk).order_by("title")[:50])


def get_version_for_course(course: Course, template_pk: int) -> LifecycleTemplate:
    """A template version this course has: its own, its current one, or one its projects run."""
    template = (
        LifecycleTemplate.objects.filter(pk=template_pk)
        .filter(
            Exists(Course.objects.filter(pk=course.pk, template=OuterRef("pk")))
            | Exists(Project.objects.filter(course=course, template=OuterRef("pk")))
            | Exists(LifecycleTemplate.objects.filter(pk=OuterRef("pk"), course=course))
        )
        .first()
    )
    if template is None:
        raise Http404("No such template version in this course.")
    return template


def get_project_of_course(course: Course, project_pk: int) -> Project:
    project = (
        Project.objects.select_related("course", "template")
        .filter(course=course, pk=project_pk)
        .first()
    )
    if project is None:
        raise Http404("No such project.")
    return project


def draft_of(course: Course) -> TemplateDraft | None:
    return TemplateDraft.objects.select_related("updated_by").filter(course=course).first()


def versions_of(course: Course) -> list[dict[str, Any]]:
    """The versions this course has, newest first (capped), with how many of its projects
    each one runs and whether it may be deleted."""
    templates = (
        LifecycleTemplate.objects.filter(
            Exists(Project.objects.filter(course=course, template=OuterRef("pk")))
            | Exists(Course.objects.filter(pk=course.pk, template=OuterRef("pk")))
            | Exists(LifecycleTemplate.objects.filter(pk=OuterRef("pk"), course=course))
        )
        .annotate(
            project_count=Count("projects", distinct=True),
            course_count=Count("courses", distinct=True),
        )
        .order_by("-created_at", "-pk")[:VERSION_LIMIT]
    )
    return [
        {
            "template": t,
            "projects": t.project_count,
            "current": t.pk == course.template_id,
            "deletable": t.course_id == course.pk and not t.project_count and not t.course_count,
        }
        for t in templates
    ]


def stage_rows(draft: TemplateDraft | None) -> list[dict[str, Any]]:
    if draft is None:
        return []
    stages = draft.data.get("stages", [])
    return [
        {
            "index": i,
            "stage": s,
            "first": i == 0,
            "last": i == len(stages) - 1,
            "question_count": len(s.get("questions", [])),
            "rule_count": len(s.get("gate_rules", [])),
        }
        for i, s in enumerate(stages)
    ]


def question_rows(stage: Mapping[str, Any]) -> list[dict[str, Any]]:
    questions = stage.get("questions", [])
    return [
        {"index": i, "q": q, "first": i == 0, "last": i == len(questions) - 1}
        for i, q in enumerate(questions)
    ]


def rule_rows(stage: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for i, rule in enumerate(stage.get("gate_rules", [])):
        condition = rule.get("applies_if") or {}
        when = " and ".join(
            f"{k.replace('_', ' ')} is {' or '.join(v)}" for k, v in sorted(condition.items())
        )
        if rule.get("kind") == "min_approvals":
            what = f"{rule.get('count', 1)} approval(s) by {rule.get('role', 'any')}"
        elif rule.get("kind") == "question_owner":
            what = (
                f"{rule.get('count', 1)} approval(s) by “{rule.get('expertise')}” for "
                f"question {rule.get('question')}"
            )
        else:
            what = rule.get("kind", "?")
        rows.append({"index": i, "rule": rule, "what": what, "when": when or "always"})
    return rows


def draft_problems(course: Course, draft: TemplateDraft | None) -> list[str]:
    """What would stop the draft from being saved as a version, with field paths."""
    if draft is None:
        return []
    from .template_services import reviewer_pool

    errors = validate_document(draft.data, pool=reviewer_pool(course))
    return [f"{path or 'template'}: {' '.join(msgs)}" for path, msgs in errors.items()]


def projects_behind(course: Course) -> QuerySet[Project]:
    """Active projects of the course on a version other than its current one."""
    return (
        Project.objects.filter(course=course, status=ProjectStatus.ACTIVE)
        .exclude(template_id=course.template_id)
        .select_related("template", "course", "current_stage__definition")
        .prefetch_related("members")
        .order_by("title", "pk")
    )


def export_document(course: Course, query: Mapping[str, str]) -> tuple[dict[str, Any], str]:
    if query.get("draft"):
        draft = draft_of(course)
        if draft is None:
            raise Http404("No draft.")
        return draft.data, f"{course.code}-template-draft"
    template = course.template
    if query.get("version"):
        try:
            template = get_version_for_course(course, int(query["version"]))
        except ValueError:
            raise Http404("No such version.") from None
    return document_from_template(template), f"{template.slug}-v{template.version}"
