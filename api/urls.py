from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import AllowAny

from . import views

app_name = "api"

# Every operation here is listed in tests/api/test_api_personas.py's matrix; a new path without
# a row there fails that test.
urlpatterns = [
    path("me/", views.MeView.as_view(), name="me"),
    path("courses/", views.CourseList.as_view(), name="courses"),
    path("courses/<int:pk>/", views.CourseDetail.as_view(), name="course"),
    path("projects/", views.ProjectList.as_view(), name="projects"),
    path("projects/<int:pk>/", views.ProjectDetail.as_view(), name="project"),
    path("projects/<int:pk>/stages/", views.ProjectStages.as_view(), name="project_stages"),
    path(
        "projects/<int:pk>/stakeholders/",
        views.ProjectStakeholders.as_view(),
        name="project_stakeholders",
    ),
    path("projects/<int:pk>/audit/", views.ProjectAudit.as_view(), name="project_audit"),
    path(
        "projects/<int:pk>/audit.jsonl",
        views.ProjectAuditJsonl.as_view(),
        name="project_audit_jsonl",
    ),
    path("stages/<int:pk>/", views.StageDetail.as_view(), name="stage"),
    path("stages/<int:pk>/draft/", views.StageDraft.as_view(), name="stage_draft"),
    path("stages/<int:pk>/submit/", views.StageSubmit.as_view(), name="stage_submit"),
    path("stages/<int:pk>/revisions/", views.StageRevisions.as_view(), name="stage_revisions"),
    path("revisions/<int:pk>/", views.RevisionDetail.as_view(), name="revision"),
    path(
        "revisions/<int:pk>/decisions/",
        views.RevisionDecisions.as_view(),
        name="revision_decisions",
    ),
    path(
        "revisions/<int:pk>/comments/", views.RevisionComments.as_view(), name="revision_comments"
    ),
    path("comments/<int:pk>/resolve/", views.CommentResolve.as_view(), name="comment_resolve"),
    path("stages/<int:pk>/evidence/", views.StageEvidence.as_view(), name="stage_evidence"),
    path(
        "revisions/<int:pk>/evidence/",
        views.RevisionEvidenceList.as_view(),
        name="revision_evidence",
    ),
    path("evidence/drafts/<int:pk>/", views.DraftFileDownload.as_view(), name="draft_file"),
    path(
        "evidence/revisions/<int:pk>/", views.RevisionFileDownload.as_view(), name="revision_file"
    ),
    path("projects/<int:pk>/risks/", views.ProjectRisks.as_view(), name="project_risks"),
    path("notifications/", views.NotificationList.as_view(), name="notifications"),
    path(
        "notifications/<int:pk>/read/", views.NotificationRead.as_view(), name="notification_read"
    ),
    path(
        "schema/",
        SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[AllowAny]),
        name="schema",
    ),
    path(
        "docs/",
        SpectacularSwaggerSplitView.as_view(
            url_name="api:schema", authentication_classes=[], permission_classes=[AllowAny]
        ),
        name="docs",
    ),
]
