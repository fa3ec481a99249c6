"""Grading's pages under /grading/: the rubric side (settings, overview, stage and project
moderation) and the late policy and grade export (``urls_late``)."""

from django.urls import path

from . import rubric_views, urls_late

app_name = "grading"

urlpatterns = [
    path("courses/<int:course_pk>/", rubric_views.course_grades, name="course"),
    path("courses/<int:course_pk>/settings/", rubric_views.grading_settings, name="settings"),
    path("stages/<int:stage_pk>/", rubric_views.stage_grading, name="stage"),
    path("stages/<int:stage_pk>/grade/", rubric_views.stage_grade, name="stage_grade"),
    path("projects/<int:project_pk>/", rubric_views.project_grading, name="project"),
    path("projects/<int:project_pk>/grade/", rubric_views.project_grade, name="project_grade"),
    *urls_late.urlpatterns,
]
