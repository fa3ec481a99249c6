from django.contrib import admin

from .models import DueDateExtension, GradingSettings, StageDueDate


@admin.register(GradingSettings)
class GradingSettingsAdmin(admin.ModelAdmin):
    list_display = ["course", "scorers", "team_sees", "late_rule"]
    raw_id_fields = ["course", "moderator"]


@admin.register(StageDueDate)
class StageDueDateAdmin(admin.ModelAdmin):
    list_display = ["course", "stage_key", "due_at"]
    raw_id_fields = ["course"]


@admin.register(DueDateExtension)
class DueDateExtensionAdmin(admin.ModelAdmin):
    list_display = ["project", "stage_key", "due_at", "granted_by"]
    raw_id_fields = ["project", "granted_by"]
