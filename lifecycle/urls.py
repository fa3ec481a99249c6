from django.urls import path

from .views import projects, risks, stages

app_name = "lifecycle"

STAGE = "projects/<int:pk>/cycles/<int:cycle>/stages/<slug:key>/"

urlpatterns = [
    path("courses/join/", projects.course_join, name="course_join"),
    path("courses/<int:course_pk>/", projects.course_detail, name="course_detail"),
    path("courses/<int:course_pk>/invite/", projects.course_invite, name="course_invite"),
    path(
        "courses/<int:course_pk>/join-code/rotate/",
        projects.join_code_rotate,
        name="join_code_rotate",
    ),
    path("courses/<int:course_pk>/projects/new/", projects.project_create, name="project_create"),
    path("projects/<int:pk>/", projects.project_detail, name="project_detail"),
    path("projects/<int:pk>/stakeholders/", projects.stakeholders, name="stakeholders"),
    path(
        "projects/<int:pk>/stakeholders/<int:sid>/edit/",
        projects.stakeholder_edit,
        name="stakeholder_edit",
    ),
    path(
        "projects/<int:pk>/stakeholders/<int:sid>/remove/",
        projects.stakeholder_remove,
        name="stakeholder_remove",
    ),
    path("projects/<int:pk>/risks/", risks.risk_register, name="risks"),
    path("projects/<int:pk>/risks/<int:rid>/edit/", risks.risk_edit, name="risk_edit"),
    path("projects/<int:pk>/risks/<int:rid>/remove/", risks.risk_remove, name="risk_remove"),
    path("projects/<int:pk>/traceability/", risks.traceability, name="traceability"),
    path("projects/<int:pk>/loop-back/", projects.project_loop_back, name="project_loop_back"),
    path("projects/<int:pk>/conclude/", projects.project_conclude, name="project_conclude"),
    path(STAGE, stages.stage_detail, name="stage_detail"),
    path(STAGE + "autosave/", stages.stage_autosave, name="stage_autosave"),
    path(STAGE + "draft-state/", stages.stage_draft_state, name="stage_draft_state"),
    path(STAGE + "submit/", stages.stage_submit, name="stage_submit"),
    path(STAGE + "revisions/", stages.stage_revisions, name="stage_revisions"),
    path("markdown/preview/", stages.markdown_preview, name="markdown_preview"),
]

from .views import audit_key, exports  # noqa: E402

urlpatterns += [
    path("audit/public-key/", audit_key.audit_public_key, name="audit_public_key"),
    path("courses/<int:course_pk>/audit/", exports.audit_export, name="audit_export"),
]
