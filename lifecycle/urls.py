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
    path(
        "projects/<int:pk>/not-pursued/propose/",
        projects.proposal_submit,
        name="proposal_submit",
    ),
    path(
        "projects/<int:pk>/not-pursued/<int:proposal_pk>/withdraw/",
        projects.proposal_withdraw,
        name="proposal_withdraw",
    ),
    path("projects/<int:pk>/members/add/", projects.project_member_add, name="project_member_add"),
    path(
        "projects/<int:pk>/members/<int:user_pk>/remove/",
        projects.project_member_remove,
        name="project_member_remove",
    ),
    path(
        "courses/<int:course_pk>/teams/",
        projects.course_team_change,
        name="course_team_change",
    ),
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

from .views import template_editor as te  # noqa: E402

TEMPLATE = "courses/<int:course_pk>/template/"
TSTAGE = TEMPLATE + "stages/<int:index>/"

urlpatterns += [
    path(TEMPLATE, te.template_editor, name="template_editor"),
    path(TEMPLATE + "start/", te.template_start, name="template_start"),
    path(TEMPLATE + "publish/", te.template_publish, name="template_publish"),
    path(TEMPLATE + "discard/", te.template_discard, name="template_discard"),
    path(TEMPLATE + "export/", te.template_export, name="template_export"),
    path(TEMPLATE + "import/", te.template_import, name="template_import"),
    path(
        TEMPLATE + "versions/<int:template_pk>/delete/",
        te.template_version_delete,
        name="template_version_delete",
    ),
    path(TEMPLATE + "stages/add/", te.template_stage_add, name="template_stage_add"),
    path(TSTAGE, te.template_stage, name="template_stage"),
    path(TSTAGE + "move/", te.template_stage_move, name="template_stage_move"),
    path(TSTAGE + "remove/", te.template_stage_remove, name="template_stage_remove"),
    path(TSTAGE + "questions/add/", te.template_question_add, name="template_question_add"),
    path(TSTAGE + "questions/<int:q>/", te.template_question, name="template_question"),
    path(
        TSTAGE + "questions/<int:q>/move/", te.template_question_move, name="template_question_move"
    ),
    path(
        TSTAGE + "questions/<int:q>/remove/",
        te.template_question_remove,
        name="template_question_remove",
    ),
    path(TSTAGE + "rules/<int:r>/remove/", te.template_rule_remove, name="template_rule_remove"),
    path(TSTAGE + "criteria/add/", te.template_criterion_add, name="template_criterion_add"),
    path(
        TSTAGE + "criteria/<int:c>/remove/",
        te.template_criterion_remove,
        name="template_criterion_remove",
    ),
    path("projects/<int:pk>/attributes/", te.project_attributes, name="project_attributes"),
]

from .views import rosters as roster_views  # noqa: E402

urlpatterns += [
    path("courses/<int:course_pk>/roster/", roster_views.course_roster, name="course_roster"),
]
