from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import models

from .keys import tool_key_generate
from .models import (
    LtiContext,
    LtiLineItem,
    LtiPlatform,
    LtiProblem,
    LtiScore,
    LtiToolKey,
    LtiUser,
)


@admin.register(LtiPlatform)
class LtiPlatformAdmin(admin.ModelAdmin):
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = ("name", "issuer", "client_id", "is_active")
    list_filter = ("is_active",)
    search_fields = ("name", "issuer", "client_id")


@admin.register(LtiToolKey)
class LtiToolKeyAdmin(admin.ModelAdmin):
    list_display = ("kid", "is_active", "created_at")
    fields = ("kid", "public_key_pem", "is_active", "created_at")
    readonly_fields = ("kid", "public_key_pem", "created_at")
    actions = ["generate_key"]

    def has_add_permission(self, request: Any) -> bool:
        return False  # made by the action or `manage.py lti_generate_key`, never pasted

    @admin.action(description="Generate a new signing key")
    def generate_key(self, request: Any, queryset: Any) -> None:
        key = tool_key_generate()
        self.message_user(request, f"New signing key {key.kid}.")


@admin.register(LtiContext)
class LtiContextAdmin(admin.ModelAdmin):
    list_display = ("__str__", "platform", "course", "last_roster_sync_at")
    list_select_related = ("platform", "course")
    raw_id_fields = ("course",)
    search_fields = ("context_id", "title", "label")


@admin.register(LtiUser)
class LtiUserAdmin(admin.ModelAdmin):
    list_display = ("sub", "platform", "user", "lms_user_id", "last_launch_at")
    list_select_related = ("platform", "user")
    raw_id_fields = ("user",)
    search_fields = ("sub", "user__email", "lms_user_id")


@admin.register(LtiLineItem)
class LtiLineItemAdmin(admin.ModelAdmin):
    list_display = ("stage_key", "context", "url")
    list_select_related = ("context__platform",)


@admin.register(LtiScore)
class LtiScoreAdmin(admin.ModelAdmin):
    list_display = ("stage_key", "user", "score_given", "score_maximum", "state", "attempts")
    list_filter = ("state",)
    list_select_related = ("user",)
    readonly_fields = [f.name for f in LtiScore._meta.fields]

    def has_add_permission(self, request: Any) -> bool:
        return False


@admin.register(LtiProblem)
class LtiProblemAdmin(admin.ModelAdmin):
    list_display = ("created_at", "kind", "message", "issuer", "course")
    list_filter = ("kind",)
    readonly_fields = [f.name for f in LtiProblem._meta.fields]

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False
