"""The course's grades as a CSV download, for course staff (404 for everyone else). Each
download is recorded in the audit trail before its first byte is sent."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, StreamingHttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from . import export, late_services
from .selectors_late import get_course_for_staff


@login_required
@require_GET
def grades_csv(request: HttpRequest, course_pk: int) -> StreamingHttpResponse:
    course = get_course_for_staff(request.user, course_pk)
    columns = export.header_row(export.graded_stages(course))
    late_services.grade_export_record(
        course=course, actor=request.user, rows=export.student_count(course), columns=columns
    )
    response = StreamingHttpResponse(
        export.stream_csv(course), content_type="text/csv; charset=utf-8"
    )
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="grades-{course.code}-{stamp}.csv"'
    response["X-Content-Type-Options"] = "nosniff"
    return response
