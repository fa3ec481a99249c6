"""The API's resources. Each is scoped exactly as its page: lookups go through the same
get_…_for_user selectors (404 for what the person may not see), and writes go through the same
services, so every rule, lock and audit event holds for the API too."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.http import Http404, StreamingHttpResponse
from django.http.response import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from evidence import permissions as evidence_permissions
from evidence import services as evidence_services
from evidence.checks import max_bytes
from evidence.models import DraftEvidence, RevisionEvidence
from evidence.selectors import get_draft_file_for_user, get_revision_file_for_user
from evidence.views import serve_blob as serve_file
from grading.rubric_part import KEY as RUBRIC_PART
from lifecycle import permissions as lifecycle_permissions
from lifecycle import selectors as lifecycle_selectors
from lifecycle import services as lifecycle_services
from lifecycle.errors import InvalidAnswers
from lifecycle.exports.formats import ExportFilters, chain_head_at
from lifecycle.exports.streams import stream_export
from lifecycle.models import (
    AuditEvent,
    Course,
    Membership,
    Project,
    ProjectStage,
    StageRevision,
)
from notifications.models import Notification
from reviews import selectors as review_selectors
from reviews import services as review_services
from reviews.anonymity import names_for
from reviews.models import Comment, Decision
from reviews.services import gate_for_stage

from . import serializers as s
from .models import Scope
from .pagination import AuditCursorPagination
from .permissions import token_of

PROBLEM = OpenApiResponse(description="Problem details (RFC 9457)")


def _user(request: Request) -> Any:
    return request.user


def get_stage_for_api(request: Request, pk: int) -> ProjectStage:
    return review_selectors.get_reviewable_stage(_user(request), pk)


def get_revision_for_api(request: Request, pk: int) -> StageRevision:
    revision = StageRevision.objects.filter(pk=pk).only("pk", "stage_id").first()
    if revision is None:
        raise Http404("No such revision.")
    stage = get_stage_for_api(request, revision.stage_id)
    revision = StageRevision.objects.select_related("created_by").get(pk=pk)
    revision.stage = stage
    return revision


def _members_prefetch() -> Prefetch:
    from accounts.models import User

    return Prefetch("members", queryset=User.objects.order_by("pk"))


# --- who am I ------------------------------------------------------------------------------


class MeView(APIView):
    @extend_schema(responses=s.MeSerializer, summary="The person the token or session acts for")
    def get(self, request: Request) -> Response:
        token = token_of(request)
        user = _user(request)
        data = {
            "id": user.pk,
            "email": user.email,
            "name": user.name,
            "scopes": token.scopes if token else list(Scope.values),
            "token_expires_at": token.expires_at if token else None,
        }
        return Response(s.MeSerializer(data).data)


# --- courses and projects --------------------------------------------------------------------


class _Courses:
    serializer_class = s.CourseSerializer
    request: Request

    def get_queryset(self) -> QuerySet[Course]:
        return lifecycle_selectors.courses_for_user(_user(self.request)).order_by("pk")

    def get_serializer_context(self) -> dict[str, Any]:
        roles = dict(
            Membership.objects.filter(user_id=_user(self.request).pk).values_list(
                "course_id", "role"
            )
        )
        return {**super().get_serializer_context(), "roles": roles}  # type: ignore[misc]


class CourseList(_Courses, generics.ListAPIView):
    pass


class CourseDetail(_Courses, generics.RetrieveAPIView):
    pass


class ProjectList(generics.ListAPIView):
    serializer_class = s.ProjectSerializer

    def get_queryset(self) -> QuerySet[Project]:
        projects = lifecycle_selectors.projects_for_user(_user(self.request))
        course = self.request.query_params.get("course")
        if course and course.isdigit():
            projects = projects.filter(course_id=int(course))
        return (
            projects.select_related("current_stage__definition")
            .prefetch_related(_members_prefetch())
            .order_by("pk")
        )


class ProjectDetail(generics.RetrieveAPIView):
    serializer_class = s.ProjectSerializer

    def get_object(self) -> Project:
        project = lifecycle_selectors.get_project_for_user(_user(self.request), self.kwargs["pk"])
        return (
            Project.objects.select_related("current_stage__definition")
            .prefetch_related(_members_prefetch())
            .get(pk=project.pk)
        )


class ProjectStages(APIView):
    @extend_schema(
        responses=s.StageSerializer(many=True), summary="The stages of the current cycle"
    )
    def get(self, request: Request, pk: int) -> Response:
        project = lifecycle_selectors.get_project_for_user(_user(request), pk)
        stages = lifecycle_selectors.current_cycle_timeline(project)
        for stage in stages:
            stage.project = project
        context = {
            "is_member": lifecycle_permissions.is_project_member(_user(request), project),
            "gates": {},
        }
        return Response(s.StageSerializer(stages, many=True, context=context).data)


class ProjectStakeholders(generics.ListAPIView):
    serializer_class = s.StakeholderSerializer

    def get_queryset(self) -> QuerySet[Any]:
        project = lifecycle_selectors.get_project_for_user(_user(self.request), self.kwargs["pk"])
        return project.stakeholders.order_by("created_at", "pk")


# --- stages, drafts, revisions ---------------------------------------------------------------


def _masked_gate(stage: ProjectStage, names: Any) -> Any:
    """The gate as the reader may see it: its lines name reviewers; for a team that sees them
    anonymously the names become their labels."""
    gate = gate_for_stage(stage)
    if not names.anonymous:
        return gate
    from accounts.models import User

    real = {u.pk: u.name for u in User.objects.filter(pk__in=list(names.labels))}
    swaps = [(real[pk], label) for pk, label in names.labels.items() if real.get(pk)]

    def mask(line: str) -> str:
        for name, label in swaps:
            line = line.replace(name, label)
        return line

    return replace(
        gate,
        missing=[mask(x) for x in gate.missing],
        blocking=[mask(x) for x in gate.blocking],
        approvers=[mask(x) for x in gate.approvers],
    )


def _stage_response(request: Request, stage: ProjectStage, code: int = 200) -> Response:
    user = _user(request)
    hide = review_selectors.hides_other_reviews(user, stage)
    names = names_for(user, stage.project)
    context = {
        "is_member": lifecycle_permissions.is_project_member(user, stage.project),
        # An independent reviewer who has not decided learns nothing of the others' votes.
        "gates": {} if hide else {stage.pk: _masked_gate(stage, names)},
    }
    return Response(s.StageSerializer(stage, context=context).data, status=code)


class StageDetail(APIView):
    @extend_schema(responses={200: s.StageSerializer, 404: PROBLEM}, summary="A stage and its gate")
    def get(self, request: Request, pk: int) -> Response:
        return _stage_response(request, get_stage_for_api(request, pk))


class StageDraft(APIView):
    write_scope = Scope.DRAFT

    @extend_schema(
        request=s.DraftInputSerializer,
        responses={200: s.StageSerializer, 400: PROBLEM, 404: PROBLEM, 409: PROBLEM},
        summary="Save answers to the draft, based on the version you read",
        description=(
            "Only the questions sent are saved. A save based on an older version than the "
            "stored one answers 409 with the questions changed since, exactly as the page does."
        ),
    )
    def put(self, request: Request, pk: int) -> Response:
        stage = get_stage_for_api(request, pk)
        _require_member(request, stage)
        body = s.DraftInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        stage = lifecycle_services.stage_save_draft(
            stage=stage,
            actor=_user(request),
            answers=body.validated_data["answers"],
            base_version=body.validated_data["base_version"],
        )
        return _stage_response(request, get_stage_for_api(request, pk))


class StageSubmit(APIView):
    write_scope = Scope.DRAFT

    @extend_schema(
        request=s.SubmitInputSerializer,
        responses={201: s.RevisionSerializer, 400: PROBLEM, 404: PROBLEM, 409: PROBLEM},
        summary="Freeze the draft into a revision and send the stage to review",
    )
    def post(self, request: Request, pk: int) -> Response:
        stage = get_stage_for_api(request, pk)
        _require_member(request, stage)
        body = s.SubmitInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        revision = lifecycle_services.stage_submit(
            stage=stage, actor=_user(request), base_version=body.validated_data["base_version"]
        )
        return Response(s.RevisionSerializer(revision).data, status=status.HTTP_201_CREATED)


def _require_member(request: Request, stage: ProjectStage) -> None:
    """Only the team writes its draft; a reviewer who can see the stage gets a 403."""
    from lifecycle.errors import NotAllowed

    if not lifecycle_permissions.is_project_member(_user(request), stage.project):
        raise NotAllowed("Only the project's team edits its drafts.")


class StageRevisions(generics.ListAPIView):
    serializer_class = s.RevisionSerializer

    def get_queryset(self) -> QuerySet[StageRevision]:
        stage = get_stage_for_api(self.request, self.kwargs["pk"])
        return stage.revisions.select_related("created_by").order_by("number")


class RevisionDetail(APIView):
    @extend_schema(responses={200: s.RevisionSerializer, 404: PROBLEM}, summary="One revision")
    def get(self, request: Request, pk: int) -> Response:
        return Response(s.RevisionSerializer(get_revision_for_api(request, pk)).data)


# --- decisions and comments ------------------------------------------------------------------


class RevisionDecisions(APIView):
    write_scope = Scope.REVIEW

    @extend_schema(
        responses={200: s.DecisionSerializer(many=True), 404: PROBLEM},
        summary="Decisions on a revision (under independent review: yours only, until you decide)",
    )
    def get(self, request: Request, pk: int) -> Response:
        revision = get_revision_for_api(request, pk)
        decisions = Decision.objects.filter(revision=revision).select_related("reviewer")
        if review_selectors.hides_other_reviews(_user(request), revision.stage):
            decisions = decisions.filter(reviewer=_user(request))
        rows = list(decisions.order_by("created_at", "pk")[:500])
        names_for(_user(request), revision.stage.project).mask(rows, "reviewer")
        return Response(s.DecisionSerializer(rows, many=True).data)

    @extend_schema(
        request=s.DecisionInputSerializer,
        responses={
            201: s.DecisionSerializer,
            400: PROBLEM,
            403: PROBLEM,
            404: PROBLEM,
            409: PROBLEM,
        },
        summary="Approve or request changes on this exact revision",
    )
    def post(self, request: Request, pk: int) -> Response:
        revision = get_revision_for_api(request, pk)
        body = s.DecisionInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        scores = data.pop("scores", None)
        decision = review_services.decision_record(
            revision=revision,
            reviewer=_user(request),
            parts={RUBRIC_PART: scores} if scores is not None else None,
            **data,
        )
        return Response(s.DecisionSerializer(decision).data, status=status.HTTP_201_CREATED)


class RevisionComments(APIView):
    _revision: StageRevision | None  # set by initial() for a signed-in user

    @property
    def write_scope(self) -> str:
        """The team comments with the draft scope, reviewers with the review scope."""
        revision = getattr(self, "_revision", None)
        if revision is not None and lifecycle_permissions.is_project_member(
            _user(self.request), revision.stage.project
        ):
            return Scope.DRAFT
        return Scope.REVIEW

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # Resolve the revision before the scope check, which depends on who the author is.
        self.request = request
        request.user  # noqa: B018  (authenticate now)
        if request.user and request.user.is_authenticated:
            try:
                self._revision = get_revision_for_api(request, kwargs["pk"])
            except Http404:
                self._revision = None
        super().initial(request, *args, **kwargs)

    def _revision_or_404(self, request: Request, pk: int) -> StageRevision:
        revision = getattr(self, "_revision", None)
        if revision is None:
            raise Http404("No such revision.")
        return revision

    @extend_schema(
        responses={200: s.CommentSerializer(many=True), 404: PROBLEM}, summary="Comments"
    )
    def get(self, request: Request, pk: int) -> Response:
        revision = self._revision_or_404(request, pk)
        comments = Comment.objects.filter(revision=revision).select_related("author")
        if review_selectors.hides_other_reviews(_user(request), revision.stage):
            comments = comments.filter(author=_user(request))
        rows = list(comments.order_by("created_at", "pk")[:1000])
        names_for(_user(request), revision.stage.project).mask(rows, "author", "resolved_by")
        return Response(s.CommentSerializer(rows, many=True).data)

    @extend_schema(
        request=s.CommentInputSerializer,
        responses={201: s.CommentSerializer, 400: PROBLEM, 403: PROBLEM, 404: PROBLEM},
        summary="Comment on the revision, on one question, or reply to a thread",
    )
    def post(self, request: Request, pk: int) -> Response:
        revision = self._revision_or_404(request, pk)
        body = s.CommentInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        parent = None
        if body.validated_data["parent"]:
            parent = Comment.objects.filter(
                pk=body.validated_data["parent"], revision=revision
            ).first()
            if parent is None:
                from lifecycle.errors import InvalidAnswers

                raise InvalidAnswers({"parent": ["No such thread on this revision."]})
        comment = review_services.comment_add(
            revision=revision,
            author=_user(request),
            body=body.validated_data["body"],
            question_key=body.validated_data["question_key"],
            parent=parent,
        )
        return Response(s.CommentSerializer(comment).data, status=status.HTTP_201_CREATED)


class CommentResolve(APIView):
    write_scope = Scope.DRAFT

    @extend_schema(
        request=None,
        responses={200: s.CommentSerializer, 403: PROBLEM, 404: PROBLEM, 409: PROBLEM},
        summary="The team resolves a thread",
    )
    def post(self, request: Request, pk: int) -> Response:
        comment = review_selectors.get_comment_for_user(_user(request), pk)
        comment = review_services.comment_resolve(comment=comment, actor=_user(request))
        names_for(_user(request), comment.revision.stage.project).mask([comment], "author")
        return Response(s.CommentSerializer(comment).data)


# --- the audit trail -------------------------------------------------------------------------


def _project_for_staff(request: Request, pk: int) -> Project:
    project = lifecycle_selectors.get_project_for_user(_user(request), pk)
    if not lifecycle_permissions.is_course_staff(_user(request), project.course):
        raise Http404("No such project.")
    return project


class ProjectAudit(generics.ListAPIView):
    """The project's events, oldest first, by cursor. Course staff only, as on the pages."""

    serializer_class = s.AuditEventSerializer
    pagination_class = AuditCursorPagination

    def get_queryset(self) -> QuerySet[AuditEvent]:
        project = _project_for_staff(self.request, self.kwargs["pk"])
        return AuditEvent.objects.filter(project=project)


class ProjectAuditJsonl(APIView):
    @extend_schema(
        responses={(200, "application/x-ndjson"): OpenApiTypes.STR, 404: PROBLEM},
        summary="The project's audit trail as JSON Lines, ending with its signed chain head",
        description="Verify offline with `manage.py verify_audit --file`.",
    )
    def get(self, request: Request, pk: int) -> StreamingHttpResponse:
        project = _project_for_staff(request, pk)
        head = chain_head_at(counted=False)  # counted at the end, for the signed head
        filters = ExportFilters(course_id=project.course_id, project_id=project.pk)
        response = StreamingHttpResponse(
            stream_export("jsonl", filters, head), content_type="application/x-ndjson"
        )
        name = f"audit-project{project.pk}-upto{head.last_seq}.jsonl"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


# --- notifications ---------------------------------------------------------------------------


class NotificationList(generics.ListAPIView):
    serializer_class = s.NotificationSerializer

    def get_queryset(self) -> QuerySet[Notification]:
        rows = Notification.objects.filter(recipient_id=_user(self.request).pk)
        if self.request.query_params.get("unread") == "1":
            rows = rows.filter(read_at__isnull=True)
        return rows.order_by("-created_at", "-pk")


class NotificationRead(APIView):
    write_scope = Scope.READ

    @extend_schema(request=None, responses={200: s.NotificationSerializer, 404: PROBLEM})
    def post(self, request: Request, pk: int) -> Response:
        from notifications.services import notification_mark_read

        row = Notification.objects.filter(pk=pk, recipient_id=_user(request).pk).first()
        if row is None:
            raise Http404("No such notification.")
        notification_mark_read(user=_user(request), notification=row)
        row.refresh_from_db()
        return Response(s.NotificationSerializer(row).data)


# --- evidence and the risk register ------------------------------------------------------------


class StageEvidence(APIView):
    """The files of the stage's draft: listed for the team and course staff, uploaded by the
    team (multipart: ``question_key`` and ``file``), checked by content like the page's."""

    write_scope = Scope.DRAFT
    parser_classes = [MultiPartParser]

    def _stage(self, request: Request, pk: int) -> ProjectStage:
        stage = get_stage_for_api(request, pk)
        if not evidence_permissions.can_see_draft_files(_user(request), stage):
            raise Http404("No such stage.")
        return stage

    @extend_schema(responses={200: s.EvidenceFileSerializer(many=True)}, summary="Draft files")
    def get(self, request: Request, pk: int) -> Response:
        stage = self._stage(request, pk)
        rows = DraftEvidence.objects.filter(stage=stage).select_related("blob").order_by("pk")
        context = {"download_url": "api:draft_file"}
        return Response(s.EvidenceFileSerializer(rows[:200], many=True, context=context).data)

    @extend_schema(
        request={"multipart/form-data": s.EvidenceUploadSerializer},
        responses={201: s.EvidenceFileSerializer},
        summary="Attach a file to a question of the draft",
    )
    def post(self, request: Request, pk: int) -> Response:
        stage = self._stage(request, pk)
        _require_member(request, stage)
        body = s.EvidenceUploadSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        uploaded = body.validated_data["file"]
        if uploaded.size is not None and uploaded.size > max_bytes():
            raise InvalidAnswers({"file": [f"The file is larger than {max_bytes()} bytes."]})
        attached = evidence_services.evidence_attach(
            stage=stage,
            actor=_user(request),
            question_key=body.validated_data["question_key"],
            name=uploaded.name or "",
            data=uploaded.read(),
        )
        context = {"download_url": "api:draft_file"}
        return Response(
            s.EvidenceFileSerializer(attached, context=context).data,
            status=status.HTTP_201_CREATED,
        )


class RevisionEvidenceList(APIView):
    @extend_schema(
        responses={200: s.EvidenceFileSerializer(many=True)},
        summary="The files frozen into a revision (their hashes are in its SHA-256)",
    )
    def get(self, request: Request, pk: int) -> Response:
        revision = get_revision_for_api(request, pk)
        rows = (
            RevisionEvidence.objects.filter(revision=revision).select_related("blob").order_by("pk")
        )
        context = {"download_url": "api:revision_file"}
        return Response(s.EvidenceFileSerializer(rows[:200], many=True, context=context).data)


class DraftFileDownload(APIView):
    @extend_schema(
        responses={(200, "*/*"): OpenApiTypes.BINARY},
        summary="Download a draft's file",
    )
    def get(self, request: Request, pk: int) -> HttpResponseBase:
        attachment = get_draft_file_for_user(_user(request), pk)
        return serve_file(attachment.blob, attachment.name, "download")


class RevisionFileDownload(APIView):
    @extend_schema(
        responses={(200, "*/*"): OpenApiTypes.BINARY},
        summary="Download a file frozen into a revision",
    )
    def get(self, request: Request, pk: int) -> HttpResponseBase:
        frozen = get_revision_file_for_user(_user(request), pk)
        return serve_file(frozen.blob, frozen.name, "download")


class ProjectRisks(generics.ListAPIView):
    serializer_class = s.RiskSerializer

    def get_queryset(self) -> QuerySet[Any]:
        project = lifecycle_selectors.get_project_for_user(_user(self.request), self.kwargs["pk"])
        return (
            project.risks.select_related("owner")
            .prefetch_related("stakeholders")
            .order_by("-severity", "-likelihood", "pk")
        )
