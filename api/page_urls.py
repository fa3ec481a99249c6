from django.urls import path

from . import page_views

app_name = "api_pages"

urlpatterns = [
    path("tokens/", page_views.tokens, name="tokens"),
    path("tokens/<int:pk>/revoke/", page_views.token_revoke, name="token_revoke"),
    path("courses/<int:course_pk>/tokens/", page_views.course_tokens, name="course_tokens"),
    path("courses/<int:course_pk>/webhooks/", page_views.webhooks_page, name="course_webhooks"),
    path("projects/<int:project_pk>/webhooks/", page_views.webhooks_page, name="project_webhooks"),
    path("webhooks/<int:pk>/", page_views.webhook_detail, name="webhook"),
    path("webhooks/<int:pk>/delete/", page_views.webhook_delete, name="webhook_delete"),
    path(
        "webhooks/<int:pk>/deliveries/<int:delivery_pk>/redeliver/",
        page_views.webhook_redeliver,
        name="webhook_redeliver",
    ),
]
