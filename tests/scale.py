"""Unrelated data in bulk: other courses with their staff, teams, stages, revisions, decisions,
notifications and audit events, written with bulk_create (no services, no audit chain), so a
test can show that a page's queries do not grow with what other courses store."""

from __future__ import annotations

import hashlib
import itertools

from django.db import connection
from django.db.models import Max
from django.utils import timezone

from accounts.models import User
from lifecycle.models import (
    AuditEvent,
    Course,
    Membership,
    Project,
    ProjectStage,
    Role,
    StageRevision,
    StageStatus,
)
from notifications.models import Notification, NotificationKind
from reviews.models import (
    AssignmentState,
    Decision,
    DecisionOutcome,
    ReviewAssignment,
    ReviewerRole,
)

_batch = itertools.count(1)


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def seed_unrelated_courses(
    *, courses: int, projects_per_course: int = 10, template=None
) -> list[Course]:
    """``courses`` courses of other people, each with an instructor and a TA, two students per
    project, every stage of every project, the first stage in review with a revision, a
    decision and an assignment, and notifications and audit events for each project."""
    from factories import default_template

    template = template or default_template()
    tag = f"s{next(_batch)}-{timezone.now().timestamp():.0f}"
    new_courses = Course.objects.bulk_create(
        Course(title=f"Other course {tag}-{i}", code=f"other-{tag}-{i}", template=template)
        for i in range(courses)
    )
    staff = User.objects.bulk_create(
        User(email=f"staff-{tag}-{i}-{r}@example.test", display_name=f"Staff {i}{r}")
        for i in range(courses)
        for r in ("i", "t")
    )
    Membership.objects.bulk_create(
        Membership(course=course, user=staff[2 * i + k], role=role)
        for i, course in enumerate(new_courses)
        for k, role in ((0, Role.INSTRUCTOR), (1, Role.TA))
    )
    _fill(new_courses, staff, projects_per_course, tag)
    return new_courses


def seed_projects(*, course: Course, instructor: User, ta: User, projects: int) -> None:
    """``projects`` more projects in ``course``, each with its first stage in review, assigned
    to ``ta``, a request for changes from ``instructor`` on it, and notifications for both."""
    _fill([course], [instructor, ta], projects, f"s{next(_batch)}-{timezone.now().timestamp():.0f}")


def _fill(new_courses: list[Course], staff: list[User], projects_per_course: int, tag: str):
    template = new_courses[0].template
    definitions = list(template.stages.order_by("order"))
    now = timezone.now()
    courses = len(new_courses)
    students = User.objects.bulk_create(
        User(email=f"student-{tag}-{i}-{k}@example.test", display_name=f"Student {i} {k}")
        for i in range(courses)
        for k in range(projects_per_course * 2)
    )
    memberships = []
    for i, course in enumerate(new_courses):
        for k in range(projects_per_course * 2):
            memberships.append(
                Membership(
                    course=course,
                    user=students[i * projects_per_course * 2 + k],
                    role=Role.STUDENT,
                )
            )
    Membership.objects.bulk_create(memberships)

    projects = Project.objects.bulk_create(
        Project(
            course=course,
            template=template,
            title=f"Project {tag}-{i}-{j}",
            created_by=students[(i * projects_per_course + j) * 2],
        )
        for i, course in enumerate(new_courses)
        for j in range(projects_per_course)
    )
    through = Project.members.through
    through.objects.bulk_create(
        through(project_id=project.pk, user_id=students[n * 2 + k].pk)
        for n, project in enumerate(projects)
        for k in (0, 1)
    )
    stages = ProjectStage.objects.bulk_create(
        ProjectStage(
            project=project,
            definition=d,
            status=StageStatus.IN_REVIEW if d.order == 1 else StageStatus.LOCKED,
            opened_at=now if d.order == 1 else None,
            submitted_at=now if d.order == 1 else None,
        )
        for project in projects
        for d in definitions
    )
    firsts = [s for s in stages if s.definition.order == 1]
    revisions = StageRevision.objects.bulk_create(
        StageRevision(
            stage=stage,
            number=1,
            answers={},
            content_sha256=_hash(f"{tag}-{stage.pk}"),
            created_by_id=stage.project.created_by_id,
        )
        for stage in firsts
    )
    for stage, revision in zip(firsts, revisions, strict=True):
        stage.current_revision = revision
        stage.project.current_stage = stage
    ProjectStage.objects.bulk_update(firsts, ["current_revision"])
    Project.objects.bulk_update(projects, ["current_stage"])

    course_index = {c.pk: i for i, c in enumerate(new_courses)}
    assignments = ReviewAssignment.objects.bulk_create(
        ReviewAssignment(
            project=stage.project,
            stage_definition=stage.definition,
            reviewer=staff[2 * course_index[stage.project.course_id] + 1],
            due_date=now.date(),
            role=ReviewerRole.STAFF,
            state=AssignmentState.ACTIVE,
            assigned_by=staff[2 * course_index[stage.project.course_id]],
        )
        for stage in firsts
    )
    Decision.objects.bulk_create(
        Decision(
            revision=revision,
            reviewer=staff[2 * course_index[revision.stage.project.course_id]],
            role=ReviewerRole.STAFF,
            outcome=DecisionOutcome.REQUEST_CHANGES,
            comment="More about the stakeholders, please.",
        )
        for revision in revisions
    )
    del assignments
    Notification.objects.bulk_create(
        Notification(
            recipient_id=user_id,
            email=f"n-{tag}-{stage.pk}-{user_id}@example.test",
            kind=NotificationKind.REVIEW_REQUESTED,
            project=stage.project,
            stage=stage,
            subject="A stage waits for you",
            dedupe_key=f"scale-{tag}-{stage.pk}-{user_id}",
        )
        for stage in firsts
        for user_id in (
            staff[2 * course_index[stage.project.course_id]].pk,
            stage.project.created_by_id,
        )
    )
    last = AuditEvent.objects.aggregate(m=Max("seq"))["m"] or 0
    events = []
    seq = last
    for project in projects:
        for verb in ("project.create", "stage.open", "stage.submit", "decision.record"):
            seq += 1
            events.append(
                AuditEvent(
                    seq=seq,
                    created_at=now,
                    actor_id=project.created_by_id,
                    verb=verb,
                    object_type="project",
                    object_id=str(project.pk),
                    course_id=project.course_id,
                    project=project,
                    new={},
                    prev_hash=_hash(f"prev-{tag}-{seq}"),
                    hash=_hash(f"hash-{tag}-{seq}"),
                )
            )
    AuditEvent.objects.bulk_create(events)


def analyze() -> None:
    """Fresh planner statistics (PostgreSQL), as autovacuum would have after a while."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
