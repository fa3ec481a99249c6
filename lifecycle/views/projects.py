"""Home, courses, projects, the stakeholder register and the Iterate outcomes.

Every page fetches what the user may see through a selector (404 for the rest), every write is
one service call, and domain errors become messages or form errors, never a 500. Course staff
read projects; only the team writes them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, TypedDict, cast
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import (
    Prefetch,
    QuerySet,
    Value,
    prefetch_related_objects,
)
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.models import User
from lifecycle import freshness, permissions, proposals, selectors, services, staff_home, teams
from lifecycle.errors import DomainError, InvalidAnswers, NotAllowed
from lifecycle.forms import (
    ConcludeForm,
    InviteStudentsForm,
    JoinCourseForm,
    LoopBackForm,
    NotPursuedProposalForm,
    ProjectCreateForm,
    StakeholderForm,
    TeamMemberForm,
    add_service_errors,
)
from lifecycle.models import (
    STAFF_ROLES,
    AuditEvent,
    Course,
    Membership,
    Outcome,
    Project,
    ProjectStage,
    ProposalStatus,
    Role,
    StageStatus,
    Stakeholder,
)
from lifecycle.panels import home_is_personal, render_home_panels

from .common import domain_error_page, require_member

# The lecture's Iterate prompts, shown beside the outcome forms.
ITERATE_PROMPTS = [
    "Deep learning may not be the right approach.",
    "Machine learning may not be the right approach.",
    "Any algorithm may not be the right approach.",
    "The problem might need a social solution, not a technical one.",
]


def _members_prefetch() -> Prefetch:
    return Prefetch("members", queryset=User.objects.order_by("display_name", "email"))


def _projects_with_stage(projects: QuerySet[Project]) -> QuerySet[Project]:
    return projects.select_related("course", "current_stage__definition").prefetch_related(
        _members_prefetch()
    )


# --- Home and courses ---------------------------------------------------------------------


# Course staff see this many projects per course on their home page; the course page and
# the board page through the rest.
HOME_PROJECTS_PER_COURSE = 12
COURSE_PAGE_SIZE = 50


@dataclass
class CourseCard:
    """A course on the home page: the person's role in it and the projects they may see."""

    course: selectors.CourseHeading
    role: str
    projects: list[Project] = field(default_factory=list)
    project_total: int = 0  # staff: every project of the course, shown or not
    table: str = ""  # staff: the projects' table, printed by lifecycle.staff_home

    @property
    def role_label(self) -> str:
        return Role(self.role).label

    @property
    def is_staff_role(self) -> bool:
        return self.role in STAFF_ROLES

    @property
    def more(self) -> int:
        return max(self.project_total - len(self.projects), 0)


def _course_cards(user: Any) -> list[CourseCard]:
    return [CourseCard(course=course, role=role) for course, role in selectors.course_roles(user)]


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """The person's courses (with their role) and the projects they work on or teach: every
    project of their own, and for course staff the first few of each course they teach (the
    board has them all), so the page stays one page however large the courses.

    A student's home shows only their courses and their own projects, so its content is a
    fragment cached by those (lifecycle.freshness); course staff and reviewers, whose home
    lists what waits in other projects, get it rendered."""

    def body() -> str:
        context = _home_context(request)
        return render_to_string("lifecycle/partials/home_body.html", context, request)

    user = cast(User, request.user)  # login_required
    own = _own_courses_and_projects(user)
    if own is not None and home_is_personal(request):
        courses, projects = own
        html = freshness.cached_fragment(
            request,
            "home",
            body,
            project_ids=projects,
            course_ids=courses,
            parts=[user.name],
        )
    else:
        html = mark_safe(body())  # our template's output, escaped when rendered
    return render(request, "lifecycle/home.html", {"body": html})


def _own_courses_and_projects(user: Any) -> tuple[list[int], list[int]] | None:
    """(course ids, project ids) of a person who teaches nothing, in one query; None for
    course staff."""
    rows = (
        Membership.objects.filter(user_id=user.pk)
        .order_by()
        .values_list("role", "course_id")
        .union(
            Project.members.through.objects.filter(user_id=user.pk)
            .order_by()
            .annotate(kind=Value("project"))
            # django-stubs does not see the annotated name.
            .values_list("kind", "project_id"),  # type: ignore[misc]
            all=True,
        )
    )
    courses, projects = [], []
    for kind, pk in rows:
        if kind == "project":
            projects.append(pk)
        elif kind in STAFF_ROLES:
            return None
        else:
            courses.append(pk)
    return courses, projects


def _home_context(request: HttpRequest) -> dict[str, Any]:
    cards = _course_cards(request.user)
    taught = [card.course.pk for card in cards if card.is_staff_role]
    if taught:
        return _staff_home_context(request, cards, taught)
    projects = list(
        _projects_with_stage(
            Project.objects.filter(pk__in=selectors.member_project_ids(request.user))
        ).order_by("course_id", "title", "pk")
    )
    by_course: dict[int, list[Project]] = defaultdict(list)
    for project in sorted(projects, key=lambda p: (p.course_id, p.title, p.pk)):
        by_course[project.course_id].append(project)
    for card in cards:
        card.projects = by_course.pop(card.course.pk, [])
        card.project_total = len(card.projects)
    # A project whose course the person has left: still theirs, so still listed.
    orphans = [p for group in by_course.values() for p in group]
    join_form = JoinCourseForm(action=reverse("lifecycle:course_join"), inline=True)
    return {
        "waiting": render_home_panels(request),
        "cards": cards,
        "orphan_projects": orphans,
        "project_count": sum(card.project_total for card in cards) + len(orphans),
        "join_form": join_form,
    }


def _staff_home_context(
    request: HttpRequest, cards: list[CourseCard], taught: list[int]
) -> dict[str, Any]:
    """The home of someone who teaches: the first HOME_PROJECTS_PER_COURSE projects of each
    course they teach with its total, and every project of their own, read in two queries and
    printed in one pass (lifecycle.staff_home)."""
    rows, teams = staff_home.staff_projects(
        request.user, taught=taught, per_course=HOME_PROJECTS_PER_COURSE
    )
    by_course: dict[int, list[staff_home.ProjectRow]] = defaultdict(list)
    totals: dict[int, int] = {}
    for row in sorted(rows, key=lambda r: (r.course_id, r.title, r.pk)):
        by_course[row.course_id].append(row)
        totals[row.course_id] = max(row.course_total, totals.get(row.course_id, 0))
    for card in cards:
        shown = by_course.pop(card.course.pk, [])
        card.projects = shown  # type: ignore[assignment]
        card.project_total = totals.get(card.course.pk) or len(shown)
        if shown:
            card.table = staff_home.project_table(shown, teams, show_team=card.is_staff_role)
    # A project whose course the person has left: still theirs, so still listed.
    orphans = [row for group in by_course.values() for row in group]
    join_form = JoinCourseForm(action=reverse("lifecycle:course_join"), inline=True)
    return {
        "waiting": render_home_panels(request),
        "cards": cards,
        "orphan_projects": orphans,
        "orphan_table": (
            staff_home.project_table(orphans, teams, show_team=False) if orphans else ""
        ),
        "project_count": sum(card.project_total for card in cards) + len(orphans),
        "join_form": join_form,
    }


@login_required
@require_http_methods(["GET", "POST"])
def course_join(request: HttpRequest) -> HttpResponse:
    action = reverse("lifecycle:course_join")
    if request.method == "GET":
        code = request.GET.get("code", "").strip().upper()
        form = JoinCourseForm(initial={"code": code}, action=action)
        return render(request, "lifecycle/course_join.html", {"form": form, "code": code})

    form = JoinCourseForm(request.POST, action=action)
    if form.is_valid():
        code = form.cleaned_data["code"]
        already = selectors.courses_for_user(request.user).filter(join_code=code).first()
        if already is not None:
            messages.info(request, f"You are a member of {already.title} already.")
            return redirect("lifecycle:course_detail", course_pk=already.pk)
        try:
            membership = services.course_join(user=request.user, join_code=code)
        except DomainError as error:
            form.add_error("code", error.message)
        else:
            team = selectors.roster_team_of(membership)
            if membership.role == Role.TA:
                text = f"You have joined {membership.course.title} as a teaching assistant."
            elif team is not None:
                text = (
                    f"You have joined {membership.course.title} and are on the team "
                    f"“{team.title}”, as the course's roster says."
                )
            else:
                text = (
                    f"You have joined {membership.course.title}. Start a project with your team, "
                    "or wait for a teammate to add you to theirs."
                )
            messages.success(request, text)
            return redirect("lifecycle:course_detail", course_pk=membership.course_id)
    return render(request, "lifecycle/course_join.html", {"form": form}, status=400)


def _get_course_for_user(user: Any, course_pk: int) -> tuple[Course, str]:
    """The course and the user's role in it; 404 for anyone who is not a member."""
    course = (
        selectors.courses_for_user(user).select_related("template").filter(pk=course_pk).first()
    )
    role = permissions.course_role(user, course) if course is not None else None
    if course is None or role is None:
        raise Http404("No such course.")
    return course, role


def _course_page(
    request: HttpRequest,
    course: Course,
    role: str,
    *,
    invite_form: InviteStudentsForm | None = None,
    status: int = 200,
) -> HttpResponse:
    is_staff = role in STAFF_ROLES
    user = cast(User, request.user)  # login_required
    projects = course.projects.all() if is_staff else course.projects.filter(members=user)
    memberships = list(
        course.memberships.select_related("user").order_by("user__display_name", "user__email")
    )
    # Staff page through the course's projects; a page past the end shows the last one.
    page = Paginator(
        _projects_with_stage(projects).order_by("title", "pk"), COURSE_PAGE_SIZE
    ).get_page(request.GET.get("page"))
    context: dict[str, Any] = {
        "course": course,
        "role": role,
        "role_label": Role(role).label,
        "is_staff": is_staff,
        "is_student": role == Role.STUDENT,
        "page": page,
        "projects": list(page.object_list),
        "staff_members": [m for m in memberships if m.is_staff_role],
        "student_members": [m for m in memberships if not m.is_staff_role],
    }
    if is_staff:
        join_path = reverse("lifecycle:course_join")
        context["join_url"] = request.build_absolute_uri(
            f"{join_path}?{urlencode({'code': course.join_code})}"
        )
        context["invite_form"] = invite_form or InviteStudentsForm(
            action=reverse("lifecycle:course_invite", args=[course.pk])
        )
        context["team_form"] = TeamMemberForm(
            projects=[(p.pk, p.title) for p in context["projects"]],
            action=reverse("lifecycle:course_team_change", args=[course.pk]),
            form_id="course-team-form",
        )
    return render(request, "lifecycle/course_detail.html", context, status=status)


@login_required
@require_GET
def course_detail(request: HttpRequest, course_pk: int) -> HttpResponse:
    course, role = _get_course_for_user(request.user, course_pk)
    return _course_page(request, course, role)


@login_required
@require_POST
def join_code_rotate(request: HttpRequest, course_pk: int) -> HttpResponse:
    """Course staff replace the join code; the old one stops working at once."""
    course, role = _get_course_for_user(request.user, course_pk)
    if role not in STAFF_ROLES:
        raise Http404("Only course staff change the join code.")
    try:
        course = services.course_rotate_join_code(course=course, actor=request.user)
    except DomainError as error:
        return domain_error_page(request, error)
    messages.success(
        request, f"The new join code is {course.join_code}; the old one no longer works."
    )
    back = request.POST.get("next", "")
    if back.startswith("/") and not back.startswith("//"):
        return redirect(back)
    return redirect("lifecycle:course_detail", course_pk=course.pk)


@login_required
@require_POST
def course_invite(request: HttpRequest, course_pk: int) -> HttpResponse:
    course, role = _get_course_for_user(request.user, course_pk)
    if role not in STAFF_ROLES:
        raise Http404("Only course staff invite students.")
    form = InviteStudentsForm(
        request.POST, action=reverse("lifecycle:course_invite", args=[course.pk])
    )
    if form.is_valid():
        try:
            invited = services.course_invite_students(
                course=course, actor=request.user, emails=form.cleaned_data["emails"]
            )
        except InvalidAnswers as invalid:
            add_service_errors(form, invalid.errors)
        except DomainError as error:
            messages.error(request, error.message)
            return redirect("lifecycle:course_detail", course_pk=course.pk)
        else:
            messages.success(
                request,
                f"Sent {len(invited)} invitation{'s' if len(invited) != 1 else ''} with the "
                f"join link for {course.title}.",
            )
            return redirect("lifecycle:course_detail", course_pk=course.pk)
    messages.error(request, "No invitations sent: correct the addresses below.")
    return _course_page(request, course, role, invite_form=form, status=400)


# --- Projects -----------------------------------------------------------------------------


def _course_students(course: Course, *, excluding: Any) -> QuerySet[Any]:
    return (
        User.objects.filter(memberships__course=course, memberships__role=Role.STUDENT)
        .exclude(pk=excluding.pk)
        .order_by("display_name", "email")
    )


@login_required
@require_http_methods(["GET", "POST"])
def project_create(request: HttpRequest, course_pk: int) -> HttpResponse:
    course, role = _get_course_for_user(request.user, course_pk)
    if role != Role.STUDENT:
        raise Http404("Only students of this course start projects.")
    teammates = _course_students(course, excluding=request.user)
    if request.method == "POST":
        form = ProjectCreateForm(request.POST, teammates=teammates)
        if form.is_valid():
            data = form.cleaned_data
            try:
                project = services.project_create(
                    course=course,
                    actor=request.user,
                    title=data["title"],
                    summary=data["summary"].strip(),
                    members=list(data["members"]),
                )
            except InvalidAnswers as invalid:
                add_service_errors(form, invalid.errors)
            except NotAllowed as error:
                raise Http404(error.message) from error
            except DomainError as error:
                form.add_error(None, error.message)
            else:
                messages.success(
                    request,
                    f"“{project.title}” has started. Stage 1: identify the problem and its "
                    "stakeholders.",
                )
                stage_one = project.current_stage
                return redirect(stage_one.get_absolute_url() if stage_one else project)
        status = 400
    else:
        form = ProjectCreateForm(teammates=teammates)
        status = 200
    return render(
        request, "lifecycle/project_create.html", {"course": course, "form": form}, status=status
    )


def _cycle_origin(project: Project, cycle: int, rows: list[ProjectStage]) -> dict[str, Any]:
    """Why a later cycle began: the team's reason, as the loop-back's audit event holds it."""
    if cycle == 1:
        return {}
    event = (
        AuditEvent.objects.filter(project=project, verb="project.loop_back")
        .select_related("actor")
        .order_by("seq")
        .filter(new__cycle=cycle)
        .first()
    )
    if event is None:
        return {}
    new = event.new or {}
    titles = {row.definition.key: row.definition for row in rows}
    return {
        "stage": titles.get(str(new.get("stage", ""))),
        "reason": new.get("reason", ""),
        "at": event.created_at,
        "by": event.actor.name if event.actor else event.actor_label,
    }


def _allowed_outcomes(project: Project) -> list[str]:
    """The outcomes the team may record itself: "deployed and monitored" once the Iterate
    stage is approved. "Not pursued" is a proposal the reviewers approve (the proposal panel)."""
    stage = project.current_stage
    if not project.is_active or stage is None:
        return []
    if stage.definition.is_iteration and stage.status == StageStatus.APPROVED:
        return [Outcome.DEPLOYED]
    return []


def _loop_back_targets(project: Project) -> list[tuple[int, str]]:
    stage = project.current_stage
    before = stage.definition.order if stage is not None else 0
    return list(
        project.template.stages.filter(order__lt=before)
        .order_by("order")
        .values_list("order", "title")
    )


def _revisit_default(project: Project, targets: list[tuple[int, str]]) -> int | None:
    """The earliest stage the team ticked under "Which stages should we revisit?" on the
    Iterate stage: a multiple-choice answer whose options are the stages' titles."""
    stage = project.current_stage
    if stage is None or not targets:
        return None
    by_title = {title: order for order, title in targets}
    answers = stage.draft_answers or {}
    ticked = [
        by_title[value]
        for value in (v for answer in answers.values() if isinstance(answer, list) for v in answer)
        if value in by_title
    ]
    return min(ticked) if ticked else None


def _loop_back_form(project: Project, data: Any = None) -> LoopBackForm:
    targets = _loop_back_targets(project)
    default = _revisit_default(project, targets)
    return LoopBackForm(
        data,
        stages=targets,
        initial={"to_order": default} if default is not None else None,
        action=reverse("lifecycle:project_loop_back", args=[project.pk]),
    )


def _conclude_form(project: Project, data: Any = None, *, outcomes: Any = None) -> ConcludeForm:
    return ConcludeForm(
        data,
        outcomes=_allowed_outcomes(project) if outcomes is None else outcomes,
        action=reverse("lifecycle:project_conclude", args=[project.pk]),
    )


def _outcome_panel(project: Project, is_member: bool) -> str:
    """'iterate' (loop back or conclude as deployed) or ''."""
    if not (is_member and project.is_active and project.current_stage is not None):
        return ""
    stage = project.current_stage
    if stage.definition.is_iteration and stage.status not in (
        StageStatus.IN_REVIEW,
        StageStatus.LOCKED,
    ):
        return "iterate"
    return ""


def _proposal_form(
    project: Project, data: Any = None, *, initial: Any = None, button: str = ""
) -> NotPursuedProposalForm:
    return NotPursuedProposalForm(
        data,
        initial=initial,
        reasons=proposals.PROPOSAL_REASONS,
        action=reverse("lifecycle:proposal_submit", args=[project.pk]),
        **({"button": button} if button else {}),
    )


def _proposal_context(
    project: Project, is_member: bool, form: NotPursuedProposalForm | None
) -> dict[str, Any]:
    """The "we should not build this" panel: the open proposal (or the approved one of a
    concluded project) with the latest request for changes, and the form when the team may
    propose or revise."""
    proposal = (
        project.not_pursued_proposals.select_related(
            "current_revision__created_by", "stage__definition"
        )
        .exclude(status=ProposalStatus.WITHDRAWN)
        .first()
    )
    context: dict[str, Any] = {"proposal": proposal, "proposal_form": None}
    if proposal is not None and proposal.current_revision is not None:
        answers = proposal.current_revision.answers
        context["proposal_reasons"] = [
            proposals.REASON_LABELS.get(k, k) for k in answers.get("reasons", [])
        ]
        if proposal.status == ProposalStatus.CHANGES_REQUESTED:
            event = (
                AuditEvent.objects.filter(
                    project=project,
                    verb="proposal.request_changes",
                    object_id=str(proposal.pk),
                )
                .select_related("actor")
                .order_by("-seq")
                .first()
            )
            if event is not None:
                context["proposal_change_request"] = {
                    "by": event.actor.name if event.actor else event.actor_label,
                    "reason": (event.new or {}).get("reason", ""),
                }
    if not (is_member and project.is_active):
        return context
    if proposal is None or not proposal.is_open:
        context["proposal"] = None if project.is_active else proposal
        context["proposal_form"] = form or _proposal_form(project)
    elif proposal.status == ProposalStatus.CHANGES_REQUESTED:
        context["proposal_form"] = form or _proposal_form(
            project,
            initial=proposal.current_revision.answers if proposal.current_revision else None,
            button="Propose again with these changes",
        )
    return context


def _attributes_form(project: Project, is_member: bool) -> Any:
    """The risk tier and domain gate rules read: the team proposes until staff confirm;
    staff (everyone else who sees the page) confirm or change them."""
    from lifecycle.template_forms import AttributesForm

    if not project.is_active or (is_member and project.attributes_confirmed_at is not None):
        return None
    return AttributesForm(initial={"risk_tier": project.risk_tier, "domain": project.domain})


class _PostedForms(TypedDict):
    """The overview's forms as posted (None: a fresh one)."""

    loop_form: LoopBackForm | None
    conclude_form: ConcludeForm | None
    proposal_form: NotPursuedProposalForm | None
    member_form: TeamMemberForm | None


def _project_page(
    request: HttpRequest,
    project: Project,
    *,
    loop_form: LoopBackForm | None = None,
    conclude_form: ConcludeForm | None = None,
    proposal_form: NotPursuedProposalForm | None = None,
    member_form: TeamMemberForm | None = None,
    status: int = 200,
) -> HttpResponse:
    """The overview. Its content, for a plain GET, is a fragment cached by what it shows
    (lifecycle.freshness); a page with a posted form is always rendered."""
    try:
        cycle = int(request.GET.get("cycle", project.cycle))
    except ValueError:
        cycle = project.cycle
    if not 1 <= cycle <= project.cycle:
        raise Http404("This project has no such cycle.")
    forms: _PostedForms = {
        "loop_form": loop_form,
        "conclude_form": conclude_form,
        "proposal_form": proposal_form,
        "member_form": member_form,
    }

    def body(shown: Project = project) -> str:
        context = _project_context(request, shown, cycle, **forms)
        return render_to_string("lifecycle/partials/project_body.html", context, request)

    def fresh_body() -> str:
        # The project as it is after the tokens were read (freshness: a fragment may be newer
        # than its tokens, never older).
        return body(selectors.get_project_for_user(request.user, project.pk))

    if status == 200 and not any(forms.values()):
        html = freshness.cached_fragment(
            request,
            "overview",
            fresh_body,
            project_ids=[project.pk],
            course_ids=[project.course_id],
            parts=[project.status, project.cycle, project.current_stage_id],
        )
    else:
        html = mark_safe(body())  # our template's output, escaped when rendered
    return render(
        request, "lifecycle/project_detail.html", {"project": project, "body": html}, status=status
    )


def _project_context(
    request: HttpRequest,
    project: Project,
    cycle: int,
    *,
    loop_form: LoopBackForm | None,
    conclude_form: ConcludeForm | None,
    proposal_form: NotPursuedProposalForm | None,
    member_form: TeamMemberForm | None,
) -> dict[str, Any]:
    # The team, read once: the member check, the list and the gate panel all use it.
    prefetch_related_objects([project], _members_prefetch())
    if project.current_stage is not None:
        project.current_stage.project = project
    is_member = permissions.is_project_member(request.user, project)
    viewing_current = cycle == project.cycle
    panel = _outcome_panel(project, is_member) if viewing_current else ""
    rows = selectors.cycle_timeline(project, cycle)
    for row in rows:
        row.shown_status, row.shown_label = selectors.shown_status(row, project)
    is_staff = permissions.is_course_staff(request.user, project.course)
    context: dict[str, Any] = {
        "project": project,
        "course": project.course,
        "cycle": cycle,
        "viewing_current": viewing_current,
        "cycles": range(1, project.cycle + 1),
        "rows": rows,
        "origin": _cycle_origin(project, cycle, rows),
        "is_member": is_member,
        "members": list(project.members.all()),
        "stakeholder_count": project.stakeholders.count(),
        "panel": panel,
        "iterate_prompts": ITERATE_PROMPTS,
        "attributes_form": _attributes_form(project, is_member),
        "is_staff": is_staff,
        "member_form": (
            member_form or _member_form(project)
            if project.is_active and (is_member or is_staff)
            else None
        ),
        **_proposal_context(project, is_member, proposal_form),
    }
    if panel == "iterate":
        context["loop_form"] = loop_form or _loop_back_form(project)
        if _allowed_outcomes(project):
            context["conclude_form"] = conclude_form or _conclude_form(project)
    return context


@login_required
@require_GET
def project_detail(request: HttpRequest, pk: int) -> HttpResponse:
    # The row alone: the content is cached, or rendered from the project read again.
    project = selectors.get_project_for_user(request.user, pk, related=())
    return _project_page(request, project)


@login_required
@require_POST
def project_loop_back(request: HttpRequest, pk: int) -> HttpResponse:
    project = selectors.get_project_for_user(request.user, pk)
    require_member(request.user, project)
    form = _loop_back_form(project, request.POST)
    if form.is_valid():
        try:
            project = services.project_loop_back(
                project=project,
                actor=request.user,
                to_order=form.cleaned_data["to_order"],
                reason=form.cleaned_data["reason"],
            )
        except InvalidAnswers as invalid:
            add_service_errors(form, invalid.errors)
        except DomainError as error:
            messages.error(request, error.message)
            return redirect(project)
        else:
            stage = project.current_stage
            assert stage is not None  # a loop-back always opens a stage
            messages.success(
                request,
                f"Cycle {project.cycle} has started at stage {stage.definition.order}, "
                f"“{stage.definition.title}”, prefilled with your last approved answers. "
                f"Cycle {project.cycle - 1} stays in the history as it was.",
            )
            return redirect(stage.get_absolute_url())
    if _outcome_panel(project, is_member=True) != "iterate":
        messages.error(request, "The project can loop back only from its Iterate stage.")
        return redirect(project)
    messages.error(request, "Not looped back: correct the fields marked below.")
    return _project_page(request, project, loop_form=form, status=400)


@login_required
@require_http_methods(["GET", "POST"])
def project_conclude(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: a confirmation page with the outcome form. POST: record the outcome."""
    project = selectors.get_project_for_user(request.user, pk)
    require_member(request.user, project)
    if request.method == "GET":
        form = _conclude_form(project)
        return render(
            request,
            "lifecycle/project_conclude.html",
            {"project": project, "form": form, "outcomes": _allowed_outcomes(project)},
        )
    # Shape only: whether this outcome is possible now is the service's decision, and its
    # message says why not better than "select a valid choice".
    form = _conclude_form(project, request.POST, outcomes=Outcome.values)
    if form.is_valid():
        try:
            project = services.project_conclude(
                project=project,
                actor=request.user,
                outcome=form.cleaned_data["outcome"],
                reason=form.cleaned_data["reason"],
            )
        except InvalidAnswers as invalid:
            add_service_errors(form, invalid.errors)
        except DomainError as error:
            messages.error(request, error.message)
            return redirect(project)
        else:
            messages.success(
                request,
                f"“{project.title}” is concluded: {project.get_outcome_display().lower()}. "
                "The project is now read-only.",
            )
            return redirect(project)
    return render(
        request,
        "lifecycle/project_conclude.html",
        {"project": project, "form": form, "outcomes": _allowed_outcomes(project)},
        status=400,
    )


# --- The stakeholder register -------------------------------------------------------------


def _get_stakeholder(project: Project, sid: int) -> Stakeholder:
    return get_object_or_404(project.stakeholders.all(), pk=sid)


def _register_url(project: Project) -> str:
    return reverse("lifecycle:stakeholders", args=[project.pk])


@login_required
@require_http_methods(["GET", "POST"])
def stakeholders(request: HttpRequest, pk: int) -> HttpResponse:
    """The register: the team reads and adds; course staff read."""
    project = selectors.get_project_for_user(request.user, pk)
    is_member = permissions.is_project_member(request.user, project)
    status = 200
    form: StakeholderForm | None = None
    if request.method == "POST":
        require_member(request.user, project)
        form = StakeholderForm(request.POST)
        if form.is_valid():
            try:
                stakeholder = services.stakeholder_add(
                    project=project, actor=request.user, **form.service_fields()
                )
            except InvalidAnswers as invalid:
                add_service_errors(form, invalid.errors)
            except DomainError as error:
                messages.error(request, error.message)
                return redirect(_register_url(project))
            else:
                messages.success(request, f"{stakeholder.name} added to the register.")
                return redirect(f"{_register_url(project)}#stakeholder-{stakeholder.pk}")
        status = 400
    elif is_member and project.is_active:
        form = StakeholderForm()
    return render(
        request,
        "lifecycle/stakeholder_list.html",
        {
            "project": project,
            "stakeholders": list(project.stakeholders.all()),
            "is_member": is_member,
            "can_edit": is_member and project.is_active,
            "form": form,
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def stakeholder_edit(request: HttpRequest, pk: int, sid: int) -> HttpResponse:
    project = selectors.get_project_for_user(request.user, pk)
    require_member(request.user, project)
    stakeholder = _get_stakeholder(project, sid)
    if not project.is_active:
        messages.info(request, "This project is concluded: its register is read-only.")
        return redirect(_register_url(project))
    status = 200
    if request.method == "POST":
        # Not bound to the instance: a ModelForm writes the posted values into it while
        # validating, and the page must keep showing the stored entry until the save succeeds.
        form = StakeholderForm(request.POST, submit_label="Save changes")
        if form.is_valid():
            try:
                services.stakeholder_update(
                    stakeholder=stakeholder, actor=request.user, **form.service_fields()
                )
            except InvalidAnswers as invalid:
                add_service_errors(form, invalid.errors)
            except DomainError as error:
                messages.error(request, error.message)
                return redirect(_register_url(project))
            else:
                messages.success(request, f"{form.cleaned_data['name']} updated.")
                return redirect(f"{_register_url(project)}#stakeholder-{stakeholder.pk}")
        status = 400
    else:
        form = StakeholderForm(instance=stakeholder, submit_label="Save changes")
    return render(
        request,
        "lifecycle/stakeholder_form.html",
        {"project": project, "stakeholder": stakeholder, "form": form},
        status=status,
    )


@login_required
@require_POST
def stakeholder_remove(request: HttpRequest, pk: int, sid: int) -> HttpResponse:
    project = selectors.get_project_for_user(request.user, pk)
    require_member(request.user, project)
    stakeholder = _get_stakeholder(project, sid)
    try:
        services.stakeholder_remove(stakeholder=stakeholder, actor=request.user)
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request,
            f"{stakeholder.name} removed from the register. Submitted revisions keep the "
            "register as it was when they were submitted.",
        )
    return redirect(_register_url(project))


# --- "We should not build this" -----------------------------------------------------------


@login_required
@require_POST
def proposal_submit(request: HttpRequest, pk: int) -> HttpResponse:
    """The team proposes (or, after a request for changes, proposes again) that the project
    should not be built; reviewers decide on the review page."""
    project = selectors.get_project_for_user(request.user, pk)
    require_member(request.user, project)
    form = _proposal_form(project, request.POST)
    if form.is_valid():
        try:
            revision = proposals.proposal_submit(
                project=project, actor=request.user, answers=form.answers()
            )
        except InvalidAnswers as invalid:
            add_service_errors(form, invalid.errors)
        except DomainError as error:
            messages.error(request, error.message)
            return redirect(project)
        else:
            messages.success(
                request,
                f"Your proposal not to build “{project.title}” is in review (revision "
                f"{revision.number}). The project concludes only if the reviewers approve it.",
            )
            return redirect(f"{project.get_absolute_url()}#proposal")
    messages.error(request, "Not proposed: correct the fields marked below.")
    return _project_page(request, project, proposal_form=form, status=400)


@login_required
@require_POST
def proposal_withdraw(request: HttpRequest, pk: int, proposal_pk: int) -> HttpResponse:
    project = selectors.get_project_for_user(request.user, pk)
    require_member(request.user, project)
    proposal = get_object_or_404(project.not_pursued_proposals.all(), pk=proposal_pk)
    try:
        proposals.proposal_withdraw(proposal=proposal, actor=request.user)
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "Proposal withdrawn: the project goes on where it is.")
    return redirect(project)


# --- Team membership ----------------------------------------------------------------------


def _member_form(project: Project, data: Any = None) -> TeamMemberForm:
    return TeamMemberForm(data, action=reverse("lifecycle:project_member_add", args=[project.pk]))


def _course_student(course: Course, email: str) -> User | None:
    return User.objects.filter(
        email__iexact=email.strip(),
        memberships__course=course,
        memberships__role=Role.STUDENT,
    ).first()


@login_required
@require_POST
def project_member_add(request: HttpRequest, pk: int) -> HttpResponse:
    """A team member adds a classmate; course staff add any student of the course."""
    project = selectors.get_project_for_user(request.user, pk)
    form = _member_form(project, request.POST)
    if form.is_valid():
        try:
            teams.project_member_add(
                project=project,
                actor=request.user,
                user=_course_student(project.course, form.cleaned_data["email"]),
            )
        except InvalidAnswers as invalid:
            add_service_errors(form, invalid.errors)
        except DomainError as error:
            messages.error(request, error.message)
            return redirect(project)
        else:
            messages.success(request, f"{form.cleaned_data['email']} is on the team now.")
            return redirect(f"{project.get_absolute_url()}#team")
    messages.error(request, "Nobody was added: correct the field marked below.")
    return _project_page(request, project, member_form=form, status=400)


@login_required
@require_POST
def project_member_remove(request: HttpRequest, pk: int, user_pk: int) -> HttpResponse:
    """Course staff take someone off the team."""
    project = selectors.get_project_for_user(request.user, pk)
    if not permissions.is_course_staff(request.user, project.course):
        raise Http404("Only course staff remove someone from a team.")
    user = get_object_or_404(project.members.all(), pk=user_pk)
    try:
        teams.project_member_remove(project=project, actor=request.user, user=user)
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"{user.name} is no longer on the team.")
    return redirect(f"{project.get_absolute_url()}#team")


@login_required
@require_POST
def course_team_change(request: HttpRequest, course_pk: int) -> HttpResponse:
    """Course staff add a student to a team, or take one off, from the course page."""
    course = get_object_or_404(selectors.courses_for_user(request.user), pk=course_pk)
    if not permissions.is_course_staff(request.user, course):
        raise Http404("Only course staff change teams from here.")
    projects = Project.objects.filter(course=course)
    form = TeamMemberForm(request.POST, projects=[])
    back = reverse("lifecycle:course_detail", args=[course.pk])
    if not form.is_valid():
        messages.error(request, "Choose a team and enter a student's e-mail address.")
        return redirect(f"{back}#teams")
    project = get_object_or_404(projects, pk=form.cleaned_data["project"])
    user = _course_student(course, form.cleaned_data["email"])
    try:
        if request.POST.get("action") == "remove":
            teams.project_member_remove(project=project, actor=request.user, user=user)
            done = f"{form.cleaned_data['email']} is no longer on “{project.title}”."
        else:
            teams.project_member_add(project=project, actor=request.user, user=user)
            done = f"{form.cleaned_data['email']} is on “{project.title}” now."
    except InvalidAnswers as invalid:
        messages.error(request, " ".join(m for msgs in invalid.errors.values() for m in msgs))
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, done)
    return redirect(f"{back}#teams")
