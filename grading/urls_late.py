"""The late policy and grade export pages (included under /grading/)."""

from django.urls import path

from . import views_export, views_late

app_name = "grading"

urlpatterns = [
    path("courses/<int:course_pk>/late/", views_late.late_policy, name="late_policy"),
    path("courses/<int:course_pk>/late/rule/", views_late.late_rule, name="late_rule"),
    path("courses/<int:course_pk>/late/due-dates/", views_late.due_dates, name="due_dates"),
    path(
        "courses/<int:course_pk>/late/extensions/",
        views_late.extension_grant,
        name="extension_grant",
    ),
    path(
        "extensions/<int:extension_pk>/revoke/",
        views_late.extension_revoke,
        name="extension_revoke",
    ),
    path("courses/<int:course_pk>/late/reapply/", views_late.late_reapply, name="late_reapply"),
    path("courses/<int:course_pk>/grades.csv", views_export.grades_csv, name="grades_csv"),
]
