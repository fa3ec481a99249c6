from django.contrib import admin

from .models import DraftEvidence, EvidenceBlob, RevisionEvidence


class ReadOnlyAdmin(admin.ModelAdmin):
    """Evidence changes only through evidence.services (audited); the admin looks."""

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(EvidenceBlob)
class EvidenceBlobAdmin(ReadOnlyAdmin):
    list_display = ("sha256", "file_type", "size", "created_at")
    search_fields = ("sha256",)


@admin.register(DraftEvidence)
class DraftEvidenceAdmin(ReadOnlyAdmin):
    list_display = ("name", "question_key", "stage", "added_by", "added_at")


@admin.register(RevisionEvidence)
class RevisionEvidenceAdmin(ReadOnlyAdmin):
    list_display = ("name", "question_key", "revision")
