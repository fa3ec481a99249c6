"""What the API shows: the same fields the pages show to the same person, no more."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from lifecycle.models import Course, Project, ProjectStage, Risk, StageRevision, Stakeholder
from notifications.models import Notification
from reviews.anonymity import MaskedReviewer
from reviews.models import Comment, Decision, DecisionOutcome

from .models import PersonalAccessToken


class PersonSerializer(serializers.Serializer):
    id = serializers.IntegerField(allow_null=True)
    name = serializers.CharField()


def person(user: Any) -> dict[str, Any]:
    """A person as the reader may see them: a reviewer the team sees anonymously (a course
    setting) is a label with no id, as on the pages."""
    if isinstance(user, MaskedReviewer):
        return {"id": None, "name": user.name}
    return {"id": user.pk, "name": user.name}


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    name = serializers.CharField()
    scopes = serializers.ListField(child=serializers.CharField())
    token_expires_at = serializers.DateTimeField(allow_null=True)


class CourseSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField()

    class Meta:
        model = Course
        fields = ["id", "code", "title", "term", "role"]

    def get_role(self, course: Course) -> str | None:
        return self.context.get("roles", {}).get(course.pk)


class StageRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    key = serializers.CharField(source="definition.key")
    title = serializers.CharField(source="definition.title")
    status = serializers.CharField()


class ProjectSerializer(serializers.ModelSerializer):
    course = serializers.IntegerField(source="course_id")
    current_stage = StageRefSerializer(allow_null=True)
    members = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = [
            "id",
            "course",
            "title",
            "summary",
            "status",
            "outcome",
            "cycle",
            "current_stage",
            "members",
            "created_at",
            "concluded_at",
        ]

    @extend_schema_field(PersonSerializer(many=True))
    def get_members(self, project: Project) -> list[dict[str, Any]]:
        return [{"id": m.pk, "name": m.name} for m in project.members.all()]


class GateSerializer(serializers.Serializer):
    satisfied = serializers.BooleanField()
    approvals = serializers.IntegerField()
    staff_approvals = serializers.IntegerField()
    expert_approvals = serializers.IntegerField()
    missing = serializers.ListField(child=serializers.CharField())
    blocking = serializers.ListField(child=serializers.CharField())
    summary = serializers.CharField()


class DraftSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    answers = serializers.DictField()
    updated_at = serializers.DateTimeField(allow_null=True)


class RevisionRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    number = serializers.IntegerField()
    sha256 = serializers.CharField(source="content_sha256")


class StageSerializer(serializers.ModelSerializer):
    project = serializers.IntegerField(source="project_id")
    key = serializers.CharField(source="definition.key")
    title = serializers.CharField(source="definition.title")
    order = serializers.IntegerField(source="definition.order")
    current_revision = RevisionRefSerializer(allow_null=True)
    gate = serializers.SerializerMethodField()
    draft = serializers.SerializerMethodField()

    class Meta:
        model = ProjectStage
        fields = [
            "id",
            "project",
            "key",
            "title",
            "order",
            "cycle",
            "status",
            "due_date",
            "submitted_at",
            "approved_at",
            "approved_by_override",
            "current_revision",
            "gate",
            "draft",
        ]

    @extend_schema_field(GateSerializer(allow_null=True))
    def get_gate(self, stage: ProjectStage) -> dict[str, Any] | None:
        gate = self.context.get("gates", {}).get(stage.pk)
        if gate is None:
            return None
        return {
            "satisfied": gate.satisfied,
            "approvals": gate.approvals,
            "staff_approvals": gate.staff_approvals,
            "expert_approvals": gate.expert_approvals,
            "missing": list(gate.missing),
            "blocking": list(gate.blocking),
            "summary": gate.summary,
        }

    @extend_schema_field(DraftSerializer(allow_null=True))
    def get_draft(self, stage: ProjectStage) -> dict[str, Any] | None:
        """The working draft: the team's alone (reviewers see submitted revisions only)."""
        if not self.context.get("is_member"):
            return None
        return {
            "version": stage.draft_version,
            "answers": stage.draft_answers,
            "updated_at": stage.draft_updated_at,
        }


class RevisionSerializer(serializers.ModelSerializer):
    stage = serializers.IntegerField(source="stage_id")
    sha256 = serializers.CharField(source="content_sha256")
    created_by = serializers.SerializerMethodField()

    class Meta:
        model = StageRevision
        fields = [
            "id",
            "stage",
            "number",
            "answers",
            "stakeholders",
            "sha256",
            "created_at",
            "created_by",
        ]

    @extend_schema_field(PersonSerializer(allow_null=True))
    def get_created_by(self, revision: StageRevision) -> dict[str, Any] | None:
        user = revision.created_by
        return {"id": user.pk, "name": user.name} if user else None


class DecisionSerializer(serializers.ModelSerializer):
    revision = serializers.IntegerField(source="revision_id")
    reviewer = serializers.SerializerMethodField()

    class Meta:
        model = Decision
        fields = [
            "id",
            "revision",
            "reviewer",
            "role",
            "outcome",
            "comment",
            "question_key",
            "created_at",
            "replaced_at",
        ]

    @extend_schema_field(PersonSerializer)
    def get_reviewer(self, decision: Decision) -> dict[str, Any]:
        return person(decision.reviewer)


class DecisionInputSerializer(serializers.Serializer):
    outcome = serializers.ChoiceField(choices=DecisionOutcome.choices)
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=20000)
    question_key = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=60
    )
    change = serializers.BooleanField(required=False, default=False)
    scores = serializers.DictField(
        child=serializers.JSONField(),
        required=False,
        help_text="The rubric scores that are part of this decision, when the course grades "
        "the stage and your role scores: criterion key → the points of one of its levels, or "
        '"na" where the criterion allows "not applicable". Every criterion is scored; a '
        "decision without them is refused (400) where scores are due, and scores are ignored "
        "where none are.",
    )


class CommentSerializer(serializers.ModelSerializer):
    revision = serializers.IntegerField(source="revision_id")
    parent = serializers.IntegerField(source="parent_id", allow_null=True)
    author = serializers.SerializerMethodField()

    class Meta:
        model = Comment
        fields = [
            "id",
            "revision",
            "parent",
            "question_key",
            "author",
            "body",
            "created_at",
            "resolved_at",
        ]

    @extend_schema_field(PersonSerializer)
    def get_author(self, comment: Comment) -> dict[str, Any]:
        return person(comment.author)


class CommentInputSerializer(serializers.Serializer):
    body = serializers.CharField(max_length=20000)
    question_key = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=60
    )
    parent = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1)


class DraftInputSerializer(serializers.Serializer):
    base_version = serializers.IntegerField(min_value=0)
    answers = serializers.DictField()


class SubmitInputSerializer(serializers.Serializer):
    base_version = serializers.IntegerField(
        min_value=0, required=False, allow_null=True, default=None
    )


class StakeholderSerializer(serializers.ModelSerializer):
    class Meta:
        model = Stakeholder
        fields = [
            "id",
            "name",
            "kind",
            "interests",
            "possible_harms",
            "possible_benefits",
            "consulted",
            "consultation",
            "created_at",
            "updated_at",
        ]


class NotificationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Notification
        fields = [
            "id",
            "kind",
            "project",
            "stage",
            "subject",
            "body",
            "link",
            "created_at",
            "read_at",
        ]


class AuditEventSerializer(serializers.Serializer):
    seq = serializers.IntegerField()
    at = serializers.DateTimeField(source="created_at")
    actor = serializers.CharField(source="actor_label")
    verb = serializers.CharField()
    object_type = serializers.CharField()
    object_id = serializers.CharField()
    old = serializers.JSONField(allow_null=True)
    new = serializers.JSONField(allow_null=True)
    flagged = serializers.BooleanField()
    hash_version = serializers.IntegerField()
    prev_hash = serializers.CharField()
    hash = serializers.CharField()


class TokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = PersonalAccessToken
        fields = [
            "id",
            "name",
            "prefix",
            "scopes",
            "created_at",
            "expires_at",
            "last_used_at",
            "state",
        ]


class EvidenceFileSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    question_key = serializers.CharField()
    name = serializers.CharField()
    sha256 = serializers.CharField(source="blob.sha256")
    file_type = serializers.CharField(source="blob.file_type")
    content_type = serializers.CharField(source="blob.content_type")
    size = serializers.IntegerField(source="blob.size")
    download = serializers.SerializerMethodField()

    def get_download(self, row: Any) -> str:
        return reverse(self.context["download_url"], args=[row.pk])


class EvidenceUploadSerializer(serializers.Serializer):
    question_key = serializers.SlugField(max_length=60)
    file = serializers.FileField(allow_empty_file=False)


class RiskSerializer(serializers.ModelSerializer):
    stakeholders = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    owner = serializers.SerializerMethodField()

    class Meta:
        model = Risk
        fields = [
            "id",
            "title",
            "description",
            "stakeholders",
            "likelihood",
            "severity",
            "owner",
            "mitigation",
            "data_link",
            "test_link",
            "monitor_link",
            "evidence",
            "scored_cycle",
            "created_at",
            "updated_at",
        ]

    @extend_schema_field(PersonSerializer(allow_null=True))
    def get_owner(self, risk: Risk) -> dict[str, Any] | None:
        return {"id": risk.owner_id, "name": risk.owner.name} if risk.owner else None
