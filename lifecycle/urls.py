
app_name = "lifecycle"
urlpatterns: list = []
