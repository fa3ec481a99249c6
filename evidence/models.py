"""Evidence files: immutable content-addressed blobs, the files attached to a stage's draft,
and the files frozen with each revision.

Every write goes through evidence.services."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from lifecycle.models import ProjectStage, StageRevision


class FileType(models.TextChoices):
    PDF = "pdf", "PDF"
    IMAGE = "image", "Image"
    SVG = "svg", "SVG image"
    CSV = "csv", "CSV table"
    NOTEBOOK = "notebook", "Jupyter notebook"
    TEXT = "text", "Plain text"


class EvidenceBlob(models.Model):
    """The bytes of one file, stored under their SHA-256 and never changed: two teams who upload
    the same chart share one blob. A row exists only once its bytes are in storage."""

    sha256 = models.CharField(max_length=64, unique=True)
    size = models.PositiveBigIntegerField()
    file_type = models.CharField(max_length=12, choices=FileType.choices)
    content_type = models.CharField(max_length=80)
    storage_name = models.CharField(max_length=200)
    # Notebooks: the sanitised HTML rendering, stored beside the original.
    rendered_name = models.CharField(max_length=200, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    # CSV: the first rows, for the reviewer's table preview.
    preview = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.sha256[:12]

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not self._state.adding:
            raise ValueError("An evidence blob is immutable once written.")
        super().save(*args, **kwargs)


class DraftEvidence(models.Model):
    """A file attached to one question of a stage's draft. Submitting freezes the list into
    the revision; the draft keeps it for the next revision."""

    stage = models.ForeignKey(ProjectStage, on_delete=models.CASCADE, related_name="+")
    question_key = models.SlugField(max_length=60)
    name = models.CharField(max_length=200)
    blob = models.ForeignKey(EvidenceBlob, on_delete=models.PROTECT, related_name="+")
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    added_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["stage", "question_key", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["stage", "question_key", "name"], name="draft_evidence_name_unique"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def snapshot(self) -> dict[str, Any]:
        return {
            "question": self.question_key,
            "name": self.name,
            "sha256": self.blob.sha256,
            "size": self.blob.size,
            "type": self.blob.file_type,
        }


class RevisionEvidence(models.Model):
    """A file as frozen into a revision: the revision and the blob protect each other, so a
    submitted file can neither change nor vanish."""

    revision = models.ForeignKey(StageRevision, on_delete=models.PROTECT, related_name="+")
    question_key = models.SlugField(max_length=60)
    name = models.CharField(max_length=200)
    blob = models.ForeignKey(EvidenceBlob, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["revision", "question_key", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["revision", "question_key", "name"], name="revision_evidence_unique"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not self._state.adding:
            raise ValueError("A revision's evidence is immutable once written.")
        super().save(*args, **kwargs)
