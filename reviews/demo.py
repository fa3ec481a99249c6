"""Demo data for the embedded default: a course on the lecture's template with four teams
spread over the stages, so that whoever signs in finds something to do at once: the TA and each
demo expert have a stage waiting for their decision, a team has changes requested with a comment
thread to answer, and a site admin reaches the Django admin. Everything is written through the
services, so the demo's audit trail verifies like a real one."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from evidence.services import evidence_attach
from lifecycle import services
from lifecycle.default_template import install_default_template
from lifecycle.models import (
    Course,
    Membership,
    Project,
    ProjectStage,
    QuestionKind,
    Role,
)
from lifecycle.risks import risk_add

from . import services as review_services
from .models import ConflictDeclaration
from .proposals import proposal_submit_and_approve

DEMO_PASSWORD = "demo-pass-2026"
DEMO_COURSE_CODE = "dl-demo"
DEMO_JOIN_CODE = "DEMO2026"

STUDENTS = 8
ADMIN_EMAIL = "admin@demo.test"
PEOPLE = [
    ("instructor@demo.test", "Prof. Ada Instructor", "Brown University", ""),
    ("ta@demo.test", "Tom TA", "Brown University", ""),
    ("expert1@demo.test", "Dr Mei Chen", "Rhode Island Hospital", "Clinical triage, paediatrics"),
    ("expert2@demo.test", "Dr Sam Okafor", "Public Defender's Office", "Criminal justice, bail"),
] + [
    (f"student{i}@demo.test", f"Student {i}", "Brown University", "")
    for i in range(1, STUDENTS + 1)
]
# The site admin: the Django admin at /admin/, and no role in the demo course.
ADMIN = (ADMIN_EMAIL, "Demo Site Admin", "Brown University", "")


def _answer(kind: str, choices: list[str], topic: str, prompt: str) -> Any:
    if kind == QuestionKind.YES_NO_UNSURE:
        return {
            "choice": "unsure",
            "justification": f"For {topic}: {prompt.lower()} "
            "We discussed it with our domain expert and need more evidence.",
        }
    if kind == QuestionKind.SHORT_TEXT:
        return f"{topic}: {prompt[:80]}"
    if kind == QuestionKind.LONG_TEXT:
        return f"**{topic}.** Our answer to “{prompt}”\n\n- first consideration\n- second one"
    if kind == QuestionKind.SINGLE_CHOICE:
        return choices[0]
    if kind == QuestionKind.MULTIPLE_CHOICE:
        return choices[:2]
    if kind == QuestionKind.NUMBER:
        return 5
    if kind == QuestionKind.URL:
        return "https://example.org/dataset-card"
    return dt.date(2026, 10, 1).isoformat()


def _submit(stage: ProjectStage, actor: User, topic: str) -> Any:
    answers = {
        q.key: _answer(q.kind, q.choices, topic, q.prompt) for q in stage.definition.questions.all()
    }
    stage.refresh_from_db()
    services.stage_save_draft(
        stage=stage, actor=actor, answers=answers, base_version=stage.draft_version
    )
    return services.stage_submit(stage=stage, actor=actor)


def _current(project: Project) -> ProjectStage:
    project.refresh_from_db()
    return ProjectStage.objects.select_related("definition").get(
        project=project, pk=project.current_stage_id or 0
    )


def _declare_no_conflict(project: Project, expert: User) -> None:
    """Staff assigned the demo's experts (so they need no confirmation); each declares its
    conflicts of interest before its first decision, as every expert must."""
    if not ConflictDeclaration.objects.filter(project=project, reviewer=expert).exists():
        review_services.conflict_declare(
            project=project,
            reviewer=expert,
            has_conflict=False,
            details="No ties to the team, its members or the outcome.",
        )


def _approve_until(
    project: Project, order: int, team: User, ta: User, expert: User, topic: str
) -> None:
    """Submit and pass each stage before ``order`` through real decisions: the TA approves,
    and the project's domain expert too where the stage's gate asks for one."""
    stage = _current(project)
    _declare_no_conflict(project, expert)
    while stage.definition.order < order:
        revision = _submit(stage, team, topic)
        if stage.definition.min_expert_approvals:
            review_services.decision_record(revision=revision, reviewer=expert, outcome="approve")
        review_services.decision_record(revision=revision, reviewer=ta, outcome="approve")
        stage = _current(project)


def _demo_user(email: str, name: str, affiliation: str, expertise: str) -> User:
    existing = User.objects.filter(email=email).first()
    if existing is not None:
        return existing
    create = User.objects.create_superuser if email == ADMIN_EMAIL else User.objects.create_user
    return create(
        email=email,
        password=DEMO_PASSWORD,
        display_name=name,
        affiliation=affiliation,
        expertise=expertise,
        email_verified_at=timezone.now(),
    )


def _comment_thread(revision: Any, team: list[User], reviewer: User, ta: User) -> None:
    """A thread on one question of the revision sent back: the expert asks, a teammate answers,
    the TA follows up; left open for the team to resolve once they have revised."""
    question = "collected-ethically"
    ask = review_services.comment_add(
        revision=revision,
        author=reviewer,
        question_key=question,
        body="The referral letters were written for clinicians, not for a model. Did the "
        "families consent to this use, or does the clinic's data agreement cover it?",
    )
    review_services.comment_add(
        revision=revision,
        author=team[1],
        parent=ask,
        body="The clinic's agreement covers service improvement only. We are asking its "
        "ethics board whether training a model counts.",
    )
    review_services.comment_add(
        revision=revision,
        author=ta,
        parent=ask,
        body="Good: add the board's answer to the revision, and what you do if it says no.",
    )


def seed_demo() -> tuple[Course, bool]:
    """Create the demo course; returns (course, created). Running it again changes nothing,
    except that it adds the site admin to a demo seeded before there was one."""
    _demo_user(*ADMIN)
    existing = Course.objects.filter(code=DEMO_COURSE_CODE).first()
    if existing is not None:
        return existing, False
    with transaction.atomic():
        users = {email.split("@")[0]: _demo_user(email, *rest) for email, *rest in PEOPLE}
        template = install_default_template()
        instructor, ta = users["instructor"], users["ta"]
        course = services.course_create(
            actor=instructor,
            title="Deep Learning — ML life cycle (demo)",
            code=DEMO_COURSE_CODE,
            template=template,
            term="Fall 2026",
            join_code=DEMO_JOIN_CODE,
        )
        services.course_add_member(course=course, actor=instructor, user=ta, role=Role.TA)
        for i in range(1, STUDENTS + 1):
            services.course_add_member(
                course=course, actor=instructor, user=users[f"student{i}"], role=Role.STUDENT
            )
        s = [users[f"student{i}"] for i in range(1, STUDENTS + 1)]

        # Team 1: stages 1-2 approved, stage 3 sent back with changes requested, and a comment
        # thread on it for the team to answer.
        triage = services.project_create(
            course=course,
            actor=s[0],
            members=[s[1]],
            title="Referral triage assistant",
            summary="Rank incoming paediatric referrals by urgency for the clinic's nurses.",
        )
        services.stakeholder_add(
            project=triage,
            actor=s[0],
            name="Triage nurses",
            kind="operator",
            interests="Spend less time sorting referrals",
            possible_harms="Automation bias",
            possible_benefits="Faster care for urgent cases",
            consulted=True,
            consultation="Two interviews at the clinic",
        )
        services.stakeholder_add(
            project=triage,
            actor=s[1],
            name="Families of referred children",
            kind="affected_community",
            interests="Timely, fair care",
            possible_harms="Under-triage of rare conditions",
        )
        expert1, expert2 = users["expert1"], users["expert2"]
        review_services.assignment_create(
            project=triage,
            actor=ta,
            reviewer=expert1,
            role="expert",
            due_date=dt.date(2026, 12, 10),
        )
        _approve_until(triage, 3, s[0], ta, expert1, "Referral triage")
        stage3 = _current(triage)
        revision = _submit(stage3, s[1], "Referral triage")
        review_services.decision_record(
            revision=revision,
            reviewer=expert1,
            outcome="request_changes",
            question_key="data-representative",
            comment="Is the data representative of rural clinics? Say how you checked.",
        )
        _comment_thread(revision, s[0:2], expert1, ta)
        services.stage_set_due_date(stage=stage3, actor=ta, due_date=dt.date(2026, 12, 12))

        # Team 2: went all the way round, looped back to stage 3 in cycle 2 and resubmitted it:
        # it waits for the TA and for expert2.
        crops = services.project_create(
            course=course,
            actor=s[2],
            members=[s[3]],
            title="Crop disease detector",
            summary="Spot leaf blight from smallholders' phone photos.",
        )
        services.stakeholder_add(
            project=crops,
            actor=s[2],
            name="Smallholder farmers",
            kind="direct_user",
            interests="Early warning",
            possible_harms="Wrong treatment costs a harvest",
        )
        review_services.assignment_create(project=crops, actor=ta, reviewer=expert2, role="expert")
        risk_add(
            project=crops,
            actor=s[2],
            title="Blight missed on photos from low-end phones",
            description="Farmers with cheaper phones get more false negatives.",
            stakeholders=list(crops.stakeholders.all()),
            likelihood=3,
            severity=4,
            owner=s[3],
            mitigation="Balance the training photos across phone models; tell the farmer when "
            "a photo is too dark or blurred to judge.",
            data_link="compile-data/data-representative",
            test_link="test-extensively/subgroup-margins",
            monitor_link="deploy-and-monitor/monitoring-and-alerts",
        )
        _approve_until(crops, 5, s[2], ta, expert2, "Crop disease")
        # Stage 5's claim about subgroups comes with its table.
        evidence_attach(
            stage=_current(crops),
            actor=s[2],
            question_key="subgroup-margins",
            name="error-rates-by-phone.csv",
            data=b"phone tier,photos,false negative rate\nlow-end,412,0.081\n"
            b"mid-range,655,0.052\nhigh-end,380,0.047\n",
        )
        _approve_until(crops, 7, s[2], ta, expert2, "Crop disease")
        services.project_loop_back(
            project=crops,
            actor=s[3],
            to_order=3,
            reason="Monitoring showed the model fails on photos taken at dusk; "
            "our data had almost none.",
        )
        _submit(_current(crops), s[2], "Crop disease, with dusk photos")

        # Team 3: decided at stage 1 that this should not be built.
        bail = services.project_create(
            course=course,
            actor=s[4],
            members=[s[5]],
            title="Bail risk scorer",
            summary="Predict flight risk for bail hearings.",
        )
        services.stakeholder_add(
            project=bail,
            actor=s[4],
            name="Defendants",
            kind="affected_community",
            interests="Liberty, due process",
            possible_harms="Unexplained denials of bail",
        )
        # The team proposes "we should not build this"; stage 1's gate (the TA and the bail
        # expert) approves it, and only that concludes the project.
        review_services.assignment_create(project=bail, actor=ta, reviewer=expert2, role="expert")
        _declare_no_conflict(bail, expert2)
        proposal_submit_and_approve(
            project=bail,
            proposer=s[5],
            reasons=["should_not", "explanation", "social"],
            reasoning="A denial of bail must be explained to the person denied; a risk score "
            "cannot, and the defendants we asked do not want a machine to decide.",
            alternative="More pre-trial services and court reminders: a social solution, "
            "not a model.",
            approvers=[ta, expert2],
        )

        # Team 4: stage 1 submitted; it waits for the TA and for expert1.
        sepsis = services.project_create(
            course=course,
            actor=s[6],
            members=[s[7]],
            title="Sepsis early warning",
            summary="Alert the children's ward when vital signs suggest early sepsis.",
        )
        services.stakeholder_add(
            project=sepsis,
            actor=s[6],
            name="Ward nurses",
            kind="operator",
            interests="Fewer missed deteriorations, not more alarms",
            possible_harms="Alarm fatigue",
        )
        review_services.assignment_create(
            project=sepsis,
            actor=ta,
            reviewer=expert1,
            role="expert",
            due_date=dt.date(2026, 12, 14),
        )
        _declare_no_conflict(sepsis, expert1)
        _submit(_current(sepsis), s[7], "Sepsis early warning")
    return course, True


def demo_logins() -> list[tuple[str, str]]:
    roles = dict(
        Membership.objects.filter(course__code=DEMO_COURSE_CODE).values_list("user__email", "role")
    )
    return [
        (email, Role(roles[email]).label if email in roles else "Domain expert (no course role)")
        for email, *_ in PEOPLE
    ] + [(ADMIN_EMAIL, "Site admin: the Django admin at /admin/")]
