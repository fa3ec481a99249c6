from django.urls import path

from . import views

app_name = "evidence"

urlpatterns = [
    path(
        "stages/<int:stage_pk>/questions/<slug:question_key>/upload/",
        views.upload,
        name="upload",
    ),
    path("drafts/<int:pk>/remove/", views.remove, name="remove"),
    path("drafts/<int:pk>/risk/", views.link_risk, name="link_risk"),
    path("drafts/<int:pk>/<slug:variant>/", views.draft_file, name="draft_file"),
    path("revisions/<int:pk>/<slug:variant>/", views.revision_file, name="revision_file"),
    path("projects/<int:pk>/artefacts/", views.artefacts, name="artefacts"),
    path(
        "projects/<int:pk>/artefacts/<str:filename>",
        views.artefact_download,
        name="artefact_download",
    ),
]
