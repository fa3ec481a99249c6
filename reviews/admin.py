"""Admin for the review layer: read-only. Assignments, invitations, decisions and comments are
written only by reviews.services (row lock, permission and state checks, audit event), so the
admin shows them and changes nothing. An invitation's token hash is never shown at all: it is
as good as the link for anyone who can reverse a lookup table of leaked links."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import (
    Comment,
    Decision,
    Invitation,
    ProposalDecision,
    ReviewAssignment,
    ReviewFlag,
    ReviewRating,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """View permission only: Django renders every field read-only, with no save button."""

    actions = None

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ReviewAssignment)
class ReviewAssignmentAdmin(ReadOnlyAdmin):
    list_display = ["reviewer", "project", "stage_definition", "role", "state", "due_date"]
    list_filter = ["state", "role", "project__course"]
    search_fields = ["reviewer__email", "reviewer__display_name", "project__title"]
    list_select_related = ["reviewer", "project", "stage_definition"]
    date_hierarchy = "created_at"


@admin.register(Invitation)
class InvitationAdmin(ReadOnlyAdmin):
    exclude = ["token_hash"]
    list_display = ["email", "course", "project", "stage_definition", "state_label", "expires_at"]
    list_filter = ["course", "needs_confirmation"]
    search_fields = ["email", "name", "project__title"]
    list_select_related = ["course", "project", "stage_definition"]
    date_hierarchy = "created_at"

    @admin.display(description="state")
    def state_label(self, obj: Invitation) -> str:
        return obj.state().replace("_", " ")


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdmin):
    list_display = ["reviewer", "revision", "role", "outcome", "created_at", "replaced_at"]
    list_filter = ["outcome", "role"]
    search_fields = ["reviewer__email", "revision__stage__project__title", "comment"]
    list_select_related = ["reviewer", "revision__stage__project", "revision__stage__definition"]
    date_hierarchy = "created_at"


@admin.register(ProposalDecision)
class ProposalDecisionAdmin(ReadOnlyAdmin):
    list_display = ["reviewer", "revision", "role", "outcome", "created_at", "replaced_at"]
    list_filter = ["outcome", "role"]
    search_fields = ["reviewer__email", "revision__proposal__project__title", "comment"]
    list_select_related = ["reviewer", "revision__proposal__project"]


@admin.register(Comment)
class CommentAdmin(ReadOnlyAdmin):
    list_display = ["author", "revision", "question_key", "created_at", "resolved_at"]
    list_filter = ["resolved_at"]
    search_fields = ["author__email", "body", "revision__stage__project__title"]
    list_select_related = ["author", "revision__stage__project", "revision__stage__definition"]
    date_hierarchy = "created_at"


@admin.register(ReviewRating)
class ReviewRatingAdmin(ReadOnlyAdmin):
    list_display = ["rater", "decision", "helpfulness", "updated_at"]
    list_select_related = ["rater", "decision__reviewer"]


@admin.register(ReviewFlag)
class ReviewFlagAdmin(ReadOnlyAdmin):
    list_display = ["raised_by", "decision", "state", "created_at", "closed_at"]
    list_filter = ["state"]
    list_select_related = ["raised_by", "decision__reviewer"]
