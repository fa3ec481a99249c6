from django.http import HttpRequest, HttpResponse
from django.urls import path


def hello(request: HttpRequest) -> HttpResponse:
    """Touch the session's user (one query for the session, one for the user)."""
    name = request.user.get_username() if request.user.is_authenticated else "anonymous"
    return HttpResponse(f"Hello, {name}.", content_type="text/plain")


urlpatterns = [path("", hello, name="hello")]
