from django.contrib import admin
from django.urls import include, path

from lifecycle.views import projects as lifecycle_projects

from . import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    # The notification centre kept the address it had inside the review pages.
    path("reviews/notifications/", include("notifications.urls")),
    path("reviews/", include("reviews.urls")),
    path("evidence/", include("evidence.urls")),
    path("grading/", include("grading.urls")),
    path("api/v1/", include("api.urls")),
    path("api/", include("api.page_urls")),
    path("lti/", include("lti.urls")),
    path("", lifecycle_projects.home, name="home"),
    path("", include("lifecycle.urls")),
]
