from django.urls import path

from . import views

app_name = "lti"

urlpatterns = [
    path("jwks/", views.jwks, name="jwks"),
    path("login/", views.oidc_login_initiation, name="login"),
    path("launch/", views.launch, name="launch"),
    path("enter/<str:token>/", views.enter, name="enter"),
    path("link/<int:context_pk>/", views.link_context, name="link_context"),
    path("deep-link/", views.deep_link, name="deep_link"),
    path("courses/<int:course_pk>/", views.course_lti, name="course"),
    path("courses/<int:course_pk>/sync/", views.course_sync_roster, name="sync_roster"),
    path(
        "courses/<int:course_pk>/scores/<int:score_pk>/retry/",
        views.score_retry,
        name="score_retry",
    ),
]
