"""factory_boy factories and small builders shared by the tests."""

from __future__ import annotations

import datetime as dt
from typing import Any

import factory
from django.utils import timezone

from accounts.models import User
from lifecycle import services
from lifecycle.models import (
    Course,
    Membership,
    Project,
    ProjectStage,
    QuestionKind,
    Role,
)

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("email",)
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"person{n}@example.test")
    display_name = factory.Faker("name")
    # Verified by default, as every account was before sign-up asked for it; tests of the
    # unverified state pass email_verified_at=None.
    email_verified_at = factory.LazyFunction(timezone.now)
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj: User, create: bool, extracted: Any, **kwargs: Any) -> None:
        if create:
            obj.save()


def default_template() -> Any:
    # Transactional tests empty every table afterwards, the migrated template included, so
    # install it again when it is gone (the install is idempotent).
    from lifecycle.default_template import install_default_template

    return install_default_template()


class CourseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Course

    title = factory.Sequence(lambda n: f"Deep Learning {n}")
    code = factory.Sequence(lambda n: f"dl-{n}")
    template = factory.LazyFunction(default_template)


def enrol(course: Course, user: User, role: str = Role.STUDENT) -> Membership:
    return Membership.objects.get_or_create(course=course, user=user, defaults={"role": role})[0]


def sample_answer(kind: str, choices: list[str]) -> Any:
    return {
        QuestionKind.SHORT_TEXT: "A short answer",
        QuestionKind.LONG_TEXT: "A **long** answer, with reasons.",
        QuestionKind.YES_NO_UNSURE: {"choice": "unsure", "justification": "Because we asked."},
        QuestionKind.SINGLE_CHOICE: choices[0] if choices else "",
        QuestionKind.MULTIPLE_CHOICE: choices[:2],
        QuestionKind.NUMBER: 42,
        QuestionKind.URL: "https://example.org/data",
        QuestionKind.DATE: dt.date(2026, 11, 1).isoformat(),
    }[kind]


def complete_answers(stage: ProjectStage) -> dict[str, Any]:
    return {q.key: sample_answer(q.kind, q.choices) for q in stage.definition.questions.all()}


def fill_and_submit(stage: ProjectStage, actor: User, **overrides: Any):
    """Answer every question of the stage, add a stakeholder where the stage needs one, and
    submit. Returns the new revision."""
    stage.refresh_from_db()
    answers = {**complete_answers(stage), **overrides}
    services.stage_save_draft(
        stage=stage, actor=actor, answers=answers, base_version=stage.draft_version
    )
    if stage.definition.requires_stakeholders and not stage.project.stakeholders.exists():
        services.stakeholder_add(
            project=stage.project,
            actor=actor,
            name="Teachers",
            kind="direct_user",
            interests="Fewer hours marking",
            possible_harms="Deskilling",
        )
    return services.stage_submit(stage=stage, actor=actor)


def current_stage(project: Project) -> ProjectStage:
    project.refresh_from_db()
    return ProjectStage.objects.select_related("definition", "project").get(
        pk=project.current_stage_id
    )


def advance_to(project: Project, order: int, *, team_member: User, reviewer: User) -> ProjectStage:
    """Submit and approve stages until the project's current stage has the given order."""
    stage = current_stage(project)
    while stage.definition.order < order:
        revision = fill_and_submit(stage, team_member)
        services.stage_mark_approved(stage=stage, revision=revision, actor=reviewer)
        stage = current_stage(project)
    return stage


def declare_no_conflict(project: Project, expert: User) -> Any:
    """An expert's conflict-of-interest declaration, due before their first decision."""
    from reviews.models import ConflictDeclaration
    from reviews.services import conflict_declare

    found = ConflictDeclaration.objects.filter(project=project, reviewer=expert).first()
    return found or conflict_declare(
        project=project, reviewer=expert, has_conflict=False, details="No ties to the team."
    )


def conclude_not_pursued(
    project: Project, member: User, reviewer: User, reasoning: str = "A social solution fits."
) -> Project:
    """Propose "we should not build this" and approve it at the lifecycle level (as
    advance_to approves stages): the project concludes as not pursued."""
    from lifecycle import proposals

    revision = proposals.proposal_submit(
        project=project,
        actor=member,
        answers={"reasons": ["social"], "reasoning": reasoning},
    )
    return proposals.proposal_mark_approved(
        proposal=revision.proposal, revision=revision, actor=reviewer
    )


def reviewed_by_expert_and_ta(p: Any, *, changes_comment: str) -> tuple[Any, Any, Any, Any]:
    """Stage 1 of the personas' project, revision 1: Erin (assigned expert) approves with a
    reason, Tina (TA) asks for changes. Returns (stage, revision, Erin's, Tina's decision)."""
    from reviews import services as review_services

    stage = current_stage(p.project)
    review_services.assignment_create(
        project=p.project,
        actor=p.ian,
        reviewer=p.erin,
        role="expert",
        stage_definition=stage.definition,
    )
    declare_no_conflict(p.project, p.erin)
    revision = fill_and_submit(stage, p.alice)
    erin = review_services.decision_record(
        revision=revision,
        reviewer=p.erin,
        outcome="approve",
        comment="The referral pathway is clear.",
    )
    tina = review_services.decision_record(
        revision=revision, reviewer=p.tina, outcome="request_changes", comment=changes_comment
    )
    stage.refresh_from_db()
    return stage, revision, erin, tina
