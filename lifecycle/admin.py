"""Admin for the lifecycle app.

Courses, memberships and template versions not yet in use are edited here. Projects, their
stages, revisions and stakeholder registers are written only by lifecycle services (row lock,
state check, audit event, notifications), so the admin shows them and changes nothing. The
audit trail is append-only in the database as well; here it has no add, change, delete or
bulk action.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import Count, Model, QuerySet
from django.http import HttpRequest, HttpResponse

from .models import (
    AuditEvent,
    Course,
    LifecycleTemplate,
    Membership,
    NotPursuedProposal,
    Project,
    ProjectStage,
    ProposalRevision,
    Question,
    StageDefinition,
    StageRevision,
    Stakeholder,
)

# --- Templates ----------------------------------------------------------------------------
# A project pins the template version it started on, so a version in use must not change
# under it: its pages turn read-only (a new version is made by the template service).


def _template_in_use(template: LifecycleTemplate | None) -> bool:
    return template is not None and template.projects.exists()


class PinnedTemplateMixin:
    """Read-only once the template version the object belongs to has projects."""

    def template_of(self, obj: Any) -> LifecycleTemplate | None:
        raise NotImplementedError

    def _in_use(self, obj: Any) -> bool:
        return obj is not None and _template_in_use(self.template_of(obj))

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not self._in_use(obj) and super().has_change_permission(request, obj)  # type: ignore[misc]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not self._in_use(obj) and super().has_delete_permission(request, obj)  # type: ignore[misc]


class PinnedTemplateInlineMixin(PinnedTemplateMixin):
    """For inlines, obj is the parent being edited."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not self._in_use(obj) and super().has_add_permission(request, obj)  # type: ignore[misc]


class PinnedTemplateAdmin(PinnedTemplateMixin, admin.ModelAdmin):
    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        obj = self.get_object(request, object_id)
        if request.method == "GET" and self._in_use(obj):
            messages.info(
                request,
                "Projects have started on this template version, so it is read-only here. "
                "Make a new version of the template to change it.",
            )
        return super().change_view(request, object_id, form_url, extra_context)


class StageDefinitionInline(PinnedTemplateInlineMixin, admin.StackedInline):
    model = StageDefinition
    extra = 0
    show_change_link = True
    fields = (
        ("order", "key"),
        "title",
        "summary",
        "guidance",
        ("min_approvals", "min_staff_approvals", "min_expert_approvals"),
        ("independent_review", "requires_stakeholders", "allows_not_pursued", "is_iteration"),
    )

    def template_of(self, obj: LifecycleTemplate) -> LifecycleTemplate:
        return obj


@admin.register(LifecycleTemplate)
class LifecycleTemplateAdmin(PinnedTemplateAdmin):
    list_display = ("name", "slug", "version", "stage_count", "project_count", "created_at")
    search_fields = ("name", "slug")
    inlines = [StageDefinitionInline]

    def template_of(self, obj: LifecycleTemplate) -> LifecycleTemplate:
        return obj

    def get_queryset(self, request: HttpRequest) -> QuerySet[LifecycleTemplate]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_stages=Count("stages", distinct=True), n_projects=Count("projects", distinct=True)
            )
        )

    @admin.display(description="stages", ordering="n_stages")
    def stage_count(self, obj: Any) -> int:
        return obj.n_stages

    @admin.display(description="projects", ordering="n_projects")
    def project_count(self, obj: Any) -> int:
        return obj.n_projects


class QuestionInline(PinnedTemplateInlineMixin, admin.StackedInline):
    model = Question
    extra = 0
    fields = (("order", "key", "kind", "required"), "prompt", "help_text", "choices")

    def template_of(self, obj: StageDefinition) -> LifecycleTemplate:
        return obj.template


@admin.register(StageDefinition)
class StageDefinitionAdmin(PinnedTemplateAdmin):
    list_display = (
        "title",
        "template",
        "order",
        "key",
        "min_approvals",
        "min_staff_approvals",
        "min_expert_approvals",
    )
    list_filter = ("template",)
    list_select_related = ("template",)
    search_fields = ("title", "key", "template__name")
    inlines = [QuestionInline]

    def template_of(self, obj: StageDefinition) -> LifecycleTemplate:
        return obj.template


@admin.register(Question)
class QuestionAdmin(PinnedTemplateAdmin):
    list_display = ("prompt", "stage", "order", "key", "kind", "required")
    list_filter = ("kind", "required", "stage__template")
    list_select_related = ("stage",)
    search_fields = ("prompt", "key", "stage__title")

    def template_of(self, obj: Question) -> LifecycleTemplate:
        return obj.stage.template


# --- Courses ------------------------------------------------------------------------------


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ("user",)
    fields = ("user", "role", "joined_at")


@admin.register(Course)
class CourseAdmin(admin.ModelAdmin):
    list_display = ("title", "code", "term", "template", "join_code", "created_at")
    list_select_related = ("template",)
    search_fields = ("title", "code", "term")
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "course", "role", "joined_at")
    list_filter = ("role", "course")
    list_select_related = ("user", "course")
    search_fields = ("user__email", "user__display_name", "course__title", "course__code")
    autocomplete_fields = ("user", "course")


# --- Written only by services: view-only ---------------------------------------------------


class ViewOnlyAdmin(admin.ModelAdmin):
    """Every write of these goes through lifecycle services; the admin may only look."""

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(Project)
class ProjectAdmin(ViewOnlyAdmin):
    list_display = ("title", "course", "status", "outcome", "cycle", "current_stage_title")
    list_filter = ("status", "outcome", "course")
    list_select_related = ("course", "current_stage__definition")
    search_fields = ("title", "course__title", "course__code")
    date_hierarchy = "created_at"

    @admin.display(description="current stage", ordering="current_stage__definition__order")
    def current_stage_title(self, obj: Project) -> str:
        return obj.current_stage.definition.title if obj.current_stage else "—"


@admin.register(ProjectStage)
class ProjectStageAdmin(ViewOnlyAdmin):
    list_display = ("project", "stage_title", "cycle", "status", "due_date", "draft_version")
    list_filter = ("status", "cycle", "approved_by_override")
    list_select_related = ("project", "definition")
    search_fields = ("project__title", "definition__title")

    @admin.display(description="stage", ordering="definition__order")
    def stage_title(self, obj: ProjectStage) -> str:
        return str(obj.definition)


@admin.register(StageRevision)
class StageRevisionAdmin(ViewOnlyAdmin):
    list_display = ("__str__", "number", "created_by", "created_at", "short_sha256")
    list_select_related = ("stage__project", "stage__definition", "created_by")
    search_fields = ("stage__project__title", "content_sha256")

    @admin.display(description="SHA-256")
    def short_sha256(self, obj: StageRevision) -> str:
        return obj.content_sha256[:12]


@admin.register(NotPursuedProposal)
class NotPursuedProposalAdmin(ViewOnlyAdmin):
    list_display = ("project", "status", "stage", "created_by", "created_at", "closed_at")
    list_filter = ("status",)
    list_select_related = ("project", "stage__definition", "stage__project", "created_by")
    search_fields = ("project__title",)


@admin.register(ProposalRevision)
class ProposalRevisionAdmin(ViewOnlyAdmin):
    list_display = ("__str__", "number", "created_by", "created_at", "short_sha256")
    list_select_related = ("proposal__project", "created_by")
    search_fields = ("proposal__project__title", "content_sha256")

    @admin.display(description="SHA-256")
    def short_sha256(self, obj: ProposalRevision) -> str:
        return obj.content_sha256[:12]


@admin.register(Stakeholder)
class StakeholderAdmin(ViewOnlyAdmin):
    list_display = ("name", "kind", "project", "consulted")
    list_filter = ("kind", "consulted")
    list_select_related = ("project",)
    search_fields = ("name", "project__title")


@admin.register(AuditEvent)
class AuditEventAdmin(ViewOnlyAdmin):
    """Strictly read-only; the database refuses UPDATE and DELETE on this table anyway."""

    list_display = (
        "seq",
        "created_at",
        "actor_label",
        "verb",
        "object_type",
        "object_id",
        "flagged",
    )
    list_filter = ("verb", "flagged")
    search_fields = ("actor_label", "verb", "object_type", "object_id")
    ordering = ("-seq",)
    actions = ()
    # Counting a long trail on every page view is the slow part of a changelist.
    show_full_result_count = False

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        return {}
