from django.urls import path

app_name = "lifecycle"
urlpatterns: list = []
