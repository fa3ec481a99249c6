from django.urls import path

from .views import courses, inbox, invitations, proposals, reviewers, stages

app_name = "reviews"

urlpatterns = [
    path("", inbox.inbox, name="inbox"),
    path("projects/<int:pk>/reviewers/", reviewers.project_reviewers, name="project_reviewers"),
    path("projects/<int:pk>/assignments/", reviewers.assignment_create, name="assignment_create"),
    path(
        "assignments/<int:assignment_pk>/withdraw/",
        reviewers.assignment_withdraw,
        name="assignment_withdraw",
    ),
    path(
        "assignments/<int:assignment_pk>/reassign/",
        reviewers.assignment_reassign,
        name="assignment_reassign",
    ),
    path("projects/<int:pk>/invitations/", reviewers.invitation_create, name="invitation_create"),
    path(
        "invitations/<int:invitation_pk>/confirm/",
        reviewers.invitation_confirm,
        name="invitation_confirm",
    ),
    path(
        "invitations/<int:invitation_pk>/revoke/",
        reviewers.invitation_revoke,
        name="invitation_revoke",
    ),
    path(
        "invitations/<int:invitation_pk>/resend/",
        reviewers.invitation_resend,
        name="invitation_resend",
    ),
    path("invitations/<str:token>/", invitations.invitation_accept, name="invitation_accept"),
    path("stages/<int:stage_pk>/", stages.review_stage, name="review_stage"),
    path("proposals/<int:pk>/", proposals.review_proposal, name="review_proposal"),
    path("proposals/<int:pk>/decide/", proposals.proposal_decide, name="proposal_decide"),
    path("stages/<int:stage_pk>/decide/", stages.stage_decide, name="stage_decide"),
    path("stages/<int:stage_pk>/conflicts/", stages.conflict_declare, name="conflict_declare"),
    path(
        "assignments/<int:assignment_pk>/confirm/",
        reviewers.expert_confirm,
        name="expert_confirm",
    ),
    path(
        "assignments/<int:assignment_pk>/revoke/",
        reviewers.expert_revoke,
        name="expert_revoke",
    ),
    path(
        "invitations/<int:invitation_pk>/readdress/",
        reviewers.invitation_readdress,
        name="invitation_readdress",
    ),
    path("stages/<int:stage_pk>/comments/", stages.comment_add, name="comment_add"),
    path("stages/<int:stage_pk>/override/", stages.stage_override, name="stage_override"),
    path("comments/<int:comment_pk>/resolve/", stages.comment_resolve, name="comment_resolve"),
    path("courses/<int:course_pk>/settings/", courses.course_settings, name="course_settings"),
]

# The project dossier: a printable page and its PDF (reviews/views/dossier.py).
from .views import dossier as dossier_views  # noqa: E402

urlpatterns += [
    path(
        "projects/<int:pk>/dossier/",
        dossier_views.project_dossier_page,
        name="project_dossier",
    ),
    # Asking for the PDF answers at once (preparing, ready or failed); a worker renders it.
    path(
        "projects/<int:pk>/dossier/pdf/",
        dossier_views.project_dossier_pdf,
        name="project_dossier_pdf",
    ),
    path(
        "projects/<int:pk>/dossier/pdf/<int:render_pk>/download/",
        dossier_views.project_dossier_pdf_download,
        name="project_dossier_pdf_download",
    ),
]

# The course staff's board (reviews/views/dashboard.py).
from .views import dashboard as dashboard_views  # noqa: E402

urlpatterns += [
    path("courses/<int:course_pk>/board/", dashboard_views.board, name="board"),
    path("courses/<int:course_pk>/board/bulk/", dashboard_views.board_bulk, name="board_bulk"),
]

from .views import template_rules  # noqa: E402

urlpatterns += [
    path(
        "courses/<int:course_pk>/template/stages/<int:index>/rules/",
        template_rules.template_rule_add,
        name="template_rule_add",
    ),
    path(
        "courses/<int:course_pk>/template/migrations/",
        template_rules.template_migrations,
        name="template_migrations",
    ),
    path(
        "courses/<int:course_pk>/template/migrations/<int:project_pk>/",
        template_rules.project_migrate,
        name="project_migrate",
    ),
    path(
        "stages/<int:stage_pk>/editorial/",
        template_rules.editorial_accept,
        name="editorial_accept",
    ),
]

# The reviewer quality loop: the team rates and flags reviews; staff resolve flags.
from .views import quality as quality_views  # noqa: E402

urlpatterns += [
    path("decisions/<int:decision_pk>/rating/", quality_views.review_rate, name="review_rate"),
    path("decisions/<int:decision_pk>/flag/", quality_views.review_flag, name="review_flag"),
    path(
        "decisions/<int:decision_pk>/flag/withdraw/",
        quality_views.review_flag_withdraw,
        name="review_flag_withdraw",
    ),
    path("courses/<int:course_pk>/flags/", quality_views.course_flags, name="course_flags"),
    path("flags/<int:flag_pk>/resolve/", quality_views.flag_resolve, name="flag_resolve"),
]
