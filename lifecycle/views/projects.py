"""Home, courses, projects, the stakeholder register and the Iterate outcomes.

(Being written: see the team-workspace issue.)"""

from django.http import HttpResponse


def _todo(request, *args, **kwargs):  # pragma: no cover - replaced by the real views
    return HttpResponse("Not yet", status=501)


home = course_join = course_detail = course_invite = project_create = project_detail = _todo
stakeholders = stakeholder_edit = stakeholder_remove = project_loop_back = _todo
project_conclude = _todo
