"""The template editor's services: drafts, versions, bad input, concurrent edits, migrating
running projects (a project in review included; on SQLite and PostgreSQL alike), project
attributes and the gate rules they feed."""

from __future__ import annotations

import copy

import pytest
from factories import (
    UserFactory,
    current_stage,
    declare_no_conflict,
    fill_and_submit,
    sample_answer,
)

from lifecycle import template_services as ts
from lifecycle.audit import verify_chain
from lifecycle.default_template import DEFAULT_TEMPLATE
from lifecycle.errors import IllegalTransition, InvalidAnswers, NotAllowed
from lifecycle.models import (
    AuditEvent,
    LifecycleTemplate,
    ProjectStage,
    StageStatus,
    TemplateDraft,
)
from lifecycle.template_data import (
    DocumentErrors,
    ReviewerPool,
    checked,
    default_document,
    document_from_template,
    new_question,
    new_stage,
    validate_document,
)
from reviews import services as review_services
from reviews.models import ReviewAssignment

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _the_audit_chain_stays_intact(db):
    yield
    report = verify_chain()
    assert report.intact, f"audit chain broken at #{report.broken_at}: {report.reason}"


def verbs() -> list[str]:
    return list(AuditEvent.objects.order_by("seq").values_list("verb", flat=True))


def start(p, source="current"):
    return ts.template_draft_start(course=p.course, actor=p.ian, source=source)


def edit(p, change, *, actor=None):
    draft = TemplateDraft.objects.get(course=p.course)
    return ts.template_draft_edit(
        course=p.course, actor=actor or p.ian, base_revision=draft.revision, change=change, what="t"
    )


def publish(p, actor=None):
    draft = TemplateDraft.objects.get(course=p.course)
    return ts.template_publish(course=p.course, actor=actor or p.ian, base_revision=draft.revision)


# --- the default stays the lecture's ---------------------------------------------------------


def test_the_default_document_is_exactly_the_lectures_template(db):
    doc = default_document()
    assert [s["key"] for s in doc["stages"]] == [s["key"] for s in DEFAULT_TEMPLATE["stages"]]
    for ours, lecture in zip(doc["stages"], DEFAULT_TEMPLATE["stages"], strict=True):
        for key, value in lecture.items():
            if key == "questions":
                assert [
                    {k: q[k] for k in v} for q, v in zip(ours["questions"], value, strict=True)
                ] == value
            elif key != "order":
                assert ours[key] == value, key
        assert ours["gate_rules"] == [] and ours["dismissal"] == "all"
    assert validate_document(doc) == {}


def test_independent_review_is_a_choice_and_older_true_or_false_still_imports(db):
    doc = default_document()
    doc["stages"][0]["independent_review"] = True
    doc["stages"][1]["independent_review"] = False
    doc["stages"][2]["independent_review"] = "everyone"
    del doc["stages"][3]["independent_review"]
    out = checked(doc)
    assert [s["independent_review"] for s in out["stages"][:4]] == [
        "everyone",
        "off",
        "everyone",
        "off",
    ]
    doc["stages"][0]["independent_review"] = "sometimes"
    assert "stages[0].independent_review" in validate_document(doc)


def test_the_installed_default_reads_back_as_the_default_document(personas):
    assert document_from_template(personas.course.template) == default_document()


# --- drafts and versions ---------------------------------------------------------------------


def test_saving_a_draft_makes_a_new_version_and_running_projects_stay_on_theirs(personas):
    p = personas
    old = p.course.template
    start(p)
    edit(
        p,
        lambda d: d["stages"][2]["questions"].append(
            new_question("consent-form", "Where is the consent form?")
        ),
    )
    template = publish(p)
    p.course.refresh_from_db()
    p.project.refresh_from_db()
    assert p.course.template == template
    assert template.version == 1 and template.slug == f"course-{p.course.pk}"
    assert template.based_on == old
    assert p.project.template == old
    assert not TemplateDraft.objects.filter(course=p.course).exists()
    assert verbs()[-3:] == ["template.draft_start", "template.draft_edit", "template.publish"]
    again = ts.template_draft_start(course=p.course, actor=p.tina, source="current")
    assert again.data["stages"][2]["questions"][-1]["key"] == "consent-form"
    assert publish(p, p.tina).version == 2


@pytest.mark.parametrize("who", ["alice", "carol", "erin", "oscar"])
def test_only_course_staff_edit_the_template(personas, who):
    with pytest.raises(NotAllowed):
        ts.template_draft_start(
            course=personas.course, actor=getattr(personas, who), source="default"
        )
    assert not TemplateDraft.objects.exists()


def test_copying_another_course_needs_its_staff(personas):
    from factories import CourseFactory, enrol

    other = CourseFactory()
    with pytest.raises(NotAllowed):
        ts.template_draft_start(
            course=personas.course, actor=personas.ian, source="course", source_course=other
        )
    enrol(other, personas.ian, "instructor")
    draft = ts.template_draft_start(
        course=personas.course, actor=personas.ian, source="course", source_course=other
    )
    assert len(draft.data["stages"]) == 7


def test_the_second_of_two_concurrent_edits_is_refused_and_changes_nothing(personas):
    p = personas
    draft = start(p)
    seen = draft.revision
    ts.template_draft_edit(
        course=p.course,
        actor=p.ian,
        base_revision=seen,
        change=lambda d: d["stages"][0].update(title="Problem"),
        what="ian",
    )
    with pytest.raises(ts.TemplateConflict) as conflict:
        ts.template_draft_edit(
            course=p.course,
            actor=p.tina,
            base_revision=seen,
            change=lambda d: d["stages"][0].update(title="Tina's"),
            what="tina",
        )
    assert conflict.value.status_code == 409
    assert "Ian" in conflict.value.message
    assert TemplateDraft.objects.get().data["stages"][0]["title"] == "Problem"
    with pytest.raises(ts.TemplateConflict):
        ts.template_publish(course=p.course, actor=p.tina, base_revision=seen)


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (
            lambda d: d["stages"][0]["questions"].append(
                new_question(d["stages"][0]["questions"][0]["key"], "Again?")
            ),
            "stages[0].questions[-1].key",
        ),
        (lambda d: d["stages"].append(new_stage("compile-data", "Twice")), "stages[7].key"),
        (lambda d: d["stages"][6].update(loop_targets=["iterate"]), "stages[6].loop_targets"),
        (lambda d: d["stages"][6].update(loop_targets=["nowhere"]), "stages[6].loop_targets"),
        (
            lambda d: d["stages"][0]["gate_rules"].append(
                {"kind": "min_approvals", "role": "dean"}
            ),
            "stages[0].gate_rules[0].role",
        ),
        (
            lambda d: d["stages"][0]["gate_rules"].append(
                {"kind": "question_owner", "question": "nope", "expertise": "ethics"}
            ),
            "stages[0].gate_rules[0].question",
        ),
        (
            lambda d: d["stages"][0]["gate_rules"].append(
                {"kind": "min_approvals", "applies_if": {"colour": ["red"]}}
            ),
            "stages[0].gate_rules[0].applies_if.colour",
        ),
        (
            lambda d: d["stages"][1]["questions"][0].update(kind="single_choice"),
            "stages[1].questions[0].choices",
        ),
    ],
)
def test_an_edit_that_breaks_the_template_is_refused_naming_the_field(personas, change, path):
    p = personas
    start(p)
    before = copy.deepcopy(TemplateDraft.objects.get().data)
    with pytest.raises(DocumentErrors) as refused:
        edit(p, change)
    if "[-1]" in path:
        n = len(before["stages"][0]["questions"])
        path = path.replace("[-1]", f"[{n}]")
    assert path in refused.value.errors, refused.value.errors
    assert TemplateDraft.objects.get().data == before


def test_a_template_with_no_stages_cannot_be_saved(personas):
    p = personas
    start(p, "empty")
    with pytest.raises(DocumentErrors) as refused:
        publish(p)
    assert refused.value.errors["stages"] == ["a template needs at least one stage"]
    assert LifecycleTemplate.objects.filter(course=p.course).count() == 0


def test_a_rule_no_reviewer_pool_could_satisfy_is_refused_at_saving(personas):
    p = personas
    p.course.allows_experts = False
    p.course.save(update_fields=["allows_experts"])
    start(p, "empty")
    edit(p, lambda d: d["stages"].append(new_stage("only", "Only")))
    edit(
        p,
        lambda d: d["stages"][0]["gate_rules"].append(
            {"kind": "min_approvals", "role": "expert", "count": 2}
        ),
    )
    with pytest.raises(DocumentErrors) as refused:
        publish(p)
    assert "course takes no domain experts" in " ".join(
        refused.value.errors["stages[0].gate_rules"]
    )
    problems = validate_document(
        {
            **default_document(),
            "stages": [{**new_stage("a", "A"), "min_staff_approvals": 3, "min_approvals": 3}],
        },
        pool=ReviewerPool(allows_experts=True, staff_count=2),
    )
    assert "the course has 2 staff member(s)" in " ".join(problems["stages[0].gate_rules"])


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ([], ""),
        (
            {"format": "lrb-lifecycle-template", "schema_version": 2, "name": "x", "stages": []},
            "schema_version",
        ),
        ({"name": "", "stages": [{"key": "Bad Key", "title": "t"}]}, "stages[0].key"),
        (
            {
                "name": "x",
                "stages": [
                    {
                        "key": "a",
                        "title": "t",
                        "questions": [{"key": "q", "prompt": "p", "kind": "essay"}],
                    }
                ],
            },
            "stages[0].questions[0].kind",
        ),
        (
            {"name": "x", "stages": [{"key": "a", "title": "t", "colour": "red"}]},
            "stages[0].colour",
        ),
        (
            {"name": "x", "stages": [{"key": "a", "title": "t", "min_approvals": "two"}]},
            "stages[0].min_approvals",
        ),
    ],
)
def test_a_malformed_import_is_refused_naming_the_field_and_writes_nothing(personas, data, path):
    with pytest.raises(DocumentErrors) as refused:
        ts.template_draft_import(course=personas.course, actor=personas.ian, data=data)
    assert path in refused.value.errors
    assert not TemplateDraft.objects.exists()


def test_an_exported_template_imports_back_unchanged(personas):
    doc = document_from_template(personas.course.template)
    draft = ts.template_draft_import(course=personas.course, actor=personas.ian, data=doc)
    assert draft.data == doc


def test_a_version_in_use_cannot_be_deleted_and_an_unused_one_can(personas):
    p = personas
    start(p)
    v1 = publish(p)
    start(p)
    v2 = publish(p)
    with pytest.raises(IllegalTransition):
        ts.template_version_delete(template=v2, course=p.course, actor=p.ian)  # the course's
    ts.template_version_delete(template=v1, course=p.course, actor=p.ian)
    assert not LifecycleTemplate.objects.filter(pk=v1.pk).exists()
    with pytest.raises(NotAllowed):  # the lecture's default is nobody's to delete
        ts.template_version_delete(template=p.project.template, course=p.course, actor=p.ian)
    # A version a project runs on is in use.
    from lifecycle import services

    p.course.refresh_from_db()
    project = services.project_create(course=p.course, actor=p.carol, title="On v2")
    assert project.template == v2
    start(p)
    publish(p)
    with pytest.raises(IllegalTransition):
        ts.template_version_delete(template=v2, course=p.course, actor=p.ian)


# --- migrating running projects --------------------------------------------------------------


def _new_version_with_changes(p):
    """Stage 1 gains a question and loses one; stage 2 renames one; stage 4 is removed; a
    stage is added after stage 5."""
    start(p)

    def change(d):
        s1 = d["stages"][0]
        s1["questions"].append(new_question("affected-groups", "Which groups are affected?"))
        s1["questions"] = [q for q in s1["questions"] if q["key"] != s1["questions"][1]["key"]]
        d["stages"][1]["questions"][0]["prompt"] = "Renamed: does deep learning make sense?"
        del d["stages"][3]
        d["stages"].insert(4, new_stage("red-team", "Red-team the model"))
        d["stages"][4]["questions"].append(new_question("attacks", "Which attacks did you try?"))

    edit(p, change)
    return publish(p)


def test_migrating_a_project_keeps_drafts_and_history_and_audits_what_was_dropped(personas):
    p = personas
    stage = current_stage(p.project)
    removed = stage.definition.questions.order_by("order")[1]
    first = stage.definition.questions.order_by("order")[0]
    removed_key, first_key = removed.key, first.key
    kept_answer = sample_answer(first.kind, first.choices)
    dropped_answer = sample_answer(removed.kind, removed.choices)
    from lifecycle import services

    services.stage_save_draft(
        stage=stage,
        actor=p.alice,
        answers={first_key: kept_answer, removed_key: dropped_answer},
        base_version=stage.draft_version,
    )
    target = _new_version_with_changes(p)
    plan = ts.migration_plan(p.project, target)
    assert plan["added_stages"] == ["red-team"]
    assert plan["removed_stages"] == ["build-and-train"]
    first = plan["stages"][0]
    assert first["change"].added_questions == ["affected-groups"]
    assert first["change"].removed_questions == [removed_key]
    assert first["dropped_answers"] == [removed_key]
    assert plan["stages"][1]["change"].renamed_questions[0][2].startswith("Renamed")

    summary = ts.project_migrate_template(project=p.project, actor=p.ian, target=target)
    p.project.refresh_from_db()
    assert p.project.template == target
    stages = list(
        ProjectStage.objects.filter(project=p.project)
        .select_related("definition")
        .order_by("definition__order")
    )
    assert [s.definition.key for s in stages] == [s.key for s in target.stages.order_by("order")]
    assert all(s.definition.template_id == target.pk for s in stages)
    stored = ProjectStage.objects.get(pk=stage.pk).draft_answers
    assert list(stored) == [first_key]
    dropped = summary["dropped_draft_answers"]["problem-and-stakeholders"]
    assert list(dropped) == [removed_key]
    event = AuditEvent.objects.filter(verb="project.template_migrate").get()
    assert event.new["dropped_draft_answers"] == {"problem-and-stakeholders": dropped}
    assert p.other_project.template != target  # one project at a time


def test_a_project_in_review_keeps_its_revision_and_decisions_and_is_judged_by_the_new_gate(
    personas,
):
    p = personas
    stage = current_stage(p.project)
    review_services.assignment_create(
        project=p.project,
        actor=p.tina,
        reviewer=p.erin,
        role="expert",
        stage_definition=stage.definition,
        expertise_tags=["clinical"],
    )
    declare_no_conflict(p.project, p.erin)
    revision = fill_and_submit(stage, p.alice)
    review_services.decision_record(revision=revision, reviewer=p.tina, outcome="approve")
    stage.refresh_from_db()
    assert stage.status == StageStatus.IN_REVIEW  # the default also needs an expert
    # The new version needs no expert on stage 1: the staff approval in flight now suffices.
    start(p)
    edit(p, lambda d: d["stages"][0].update(min_expert_approvals=0, min_approvals=1))
    target = publish(p)
    from reviews.template_rules import migration_preview

    preview = migration_preview(p.project, target)
    row = preview["stages"][0]
    assert row["in_review"] and not row["gate_before"].satisfied and row["gate_after"].satisfied

    ts.project_migrate_template(project=p.project, actor=p.ian, target=target)
    stage.refresh_from_db()
    assert stage.definition.template_id == target.pk
    assert stage.current_revision_id == revision.pk
    assert stage.status == StageStatus.APPROVED
    assignment = ReviewAssignment.objects.get(reviewer=p.erin)
    assert assignment.stage_definition_id == stage.definition_id
    assert verbs()[-2:] == ["stage.approve", "project.template_migrate"]


def test_a_project_whose_current_stage_the_new_version_removes_is_not_migrated(personas):
    p = personas
    start(p)
    edit(p, lambda d: d["stages"].pop(0))
    target = publish(p)
    assert ts.migration_plan(p.project, target)["blocked"]
    with pytest.raises(IllegalTransition):
        ts.project_migrate_template(project=p.project, actor=p.ian, target=target)
    p.project.refresh_from_db()
    assert p.project.template != target


@pytest.mark.parametrize("who", ["alice", "carol", "erin", "oscar"])
def test_only_course_staff_migrate_a_project(personas, who):
    p = personas
    start(p)
    target = publish(p)
    with pytest.raises(NotAllowed):
        ts.project_migrate_template(project=p.project, actor=getattr(p, who), target=target)


# --- project attributes and the rules that read them -----------------------------------------


def test_the_team_proposes_attributes_at_stage_one_and_staff_confirm_them(personas):
    p = personas
    ts.project_set_attributes(project=p.project, actor=p.alice, risk_tier="high", domain="Health")
    p.project.refresh_from_db()
    assert (p.project.risk_tier, p.project.domain, p.project.attributes_confirmed_at) == (
        "high",
        "health",
        None,
    )
    ts.project_set_attributes(project=p.project, actor=p.tina, risk_tier="medium", domain="health")
    p.project.refresh_from_db()
    assert p.project.attributes_confirmed_by == p.tina
    with pytest.raises(IllegalTransition):
        ts.project_set_attributes(project=p.project, actor=p.alice, risk_tier="low", domain="")
    with pytest.raises(NotAllowed):
        ts.project_set_attributes(project=p.project, actor=p.carol, risk_tier="low", domain="")
    with pytest.raises(InvalidAnswers):
        ts.project_set_attributes(project=p.project, actor=p.ian, risk_tier="extreme", domain="")
    assert verbs()[-2:] == ["project.attributes_propose", "project.attributes_confirm"]


def test_two_experts_are_required_when_the_risk_tier_is_high(personas):
    p = personas
    start(p)
    edit(
        p,
        lambda d: d["stages"][0]["gate_rules"].append(
            {
                "kind": "min_approvals",
                "role": "expert",
                "count": 2,
                "applies_if": {"risk_tier": ["high"]},
            }
        ),
    )
    target = publish(p)
    ts.project_migrate_template(project=p.project, actor=p.ian, target=target)
    ts.project_set_attributes(project=p.project, actor=p.ian, risk_tier="high", domain="")
    stage = current_stage(p.project)
    second = UserFactory(email="frank@example.test", display_name="Frank")
    for expert in (p.erin, second):
        review_services.assignment_create(
            project=p.project,
            actor=p.tina,
            reviewer=expert,
            role="expert",
            stage_definition=stage.definition,
        )
        declare_no_conflict(p.project, expert)
    revision = fill_and_submit(stage, p.alice)
    review_services.decision_record(revision=revision, reviewer=p.tina, outcome="approve")
    review_services.decision_record(revision=revision, reviewer=p.erin, outcome="approve")
    stage.refresh_from_db()
    assert stage.status == StageStatus.IN_REVIEW
    review_services.decision_record(revision=revision, reviewer=second, outcome="approve")
    stage.refresh_from_db()
    assert stage.status == StageStatus.APPROVED


def test_a_question_owned_by_ethics_waits_for_the_ethics_expert(personas):
    p = personas
    start(p)
    edit(p, lambda d: d["stages"][0]["questions"][0].update(owner_expertise="ethics"))
    target = publish(p)
    ts.project_migrate_template(project=p.project, actor=p.ian, target=target)
    stage = current_stage(p.project)
    clinician = UserFactory(email="frank@example.test", display_name="Frank")
    review_services.assignment_create(
        project=p.project,
        actor=p.tina,
        reviewer=clinician,
        role="expert",
        stage_definition=stage.definition,
        expertise_tags=["clinical"],
    )
    review_services.assignment_create(
        project=p.project,
        actor=p.tina,
        reviewer=p.erin,
        role="expert",
        stage_definition=stage.definition,
        expertise_tags=["Ethics"],
    )
    for expert in (clinician, p.erin):
        declare_no_conflict(p.project, expert)
    revision = fill_and_submit(stage, p.alice)
    review_services.decision_record(revision=revision, reviewer=p.tina, outcome="approve")
    review_services.decision_record(revision=revision, reviewer=clinician, outcome="approve")
    stage.refresh_from_db()
    assert stage.status == StageStatus.IN_REVIEW
    assert "“ethics” approval for question 1" in review_services.gate_for_stage(stage).summary
    review_services.decision_record(revision=revision, reviewer=p.erin, outcome="approve")
    stage.refresh_from_db()
    assert stage.status == StageStatus.APPROVED


# --- what a new revision dismisses -----------------------------------------------------------


def _stage_one_with(p, owner="", **fields):
    """Stage 1 of Alice's project on a version whose stage 1 has ``fields`` (and its first
    long-text question owned by ``owner``), with Erin as its ethics expert; revision 1 approved
    by Tina and sent back by Erin."""
    start(p)

    def change(d):
        d["stages"][0].update(**fields)
        if owner:
            first = next(q for q in d["stages"][0]["questions"] if q["kind"] == "long_text")
            first["owner_expertise"] = owner

    edit(p, change)
    ts.project_migrate_template(project=p.project, actor=p.ian, target=publish(p))
    stage = current_stage(p.project)
    review_services.assignment_create(
        project=p.project,
        actor=p.tina,
        reviewer=p.erin,
        role="expert",
        stage_definition=stage.definition,
        expertise_tags=["ethics"],
    )
    declare_no_conflict(p.project, p.erin)
    first = fill_and_submit(stage, p.alice)
    review_services.decision_record(revision=first, reviewer=p.tina, outcome="approve")
    review_services.decision_record(
        revision=first, reviewer=p.erin, outcome="request_changes", comment="Say more."
    )
    stage.refresh_from_db()
    assert stage.status == StageStatus.CHANGES_REQUESTED
    return stage


def _resubmit(p, stage, question, *, editorial=False):
    from lifecycle import services

    stage.refresh_from_db()
    q = stage.definition.questions.get(key=question)
    answers = dict(stage.current_revision.answers)
    answers[q.key] = (
        "A rewritten answer." if q.kind in ("long_text", "short_text") else answers[q.key]
    )
    services.stage_save_draft(
        stage=stage, actor=p.alice, answers=answers, base_version=stage.draft_version
    )
    return services.stage_submit(stage=stage, actor=p.alice, editorial=editorial)


def _a_text_question(stage, *, skip=()):
    return next(
        q.key
        for q in stage.definition.questions.order_by("order")
        if q.kind == "long_text" and q.key not in skip
    )


def test_under_owners_dismissal_a_staff_approval_survives_a_change_to_an_owned_question(personas):
    p = personas
    stage = _stage_one_with(p, owner="ethics", dismissal="owners")
    owned = _a_text_question(stage)
    assert stage.definition.question_owners == {owned: "ethics"}
    # Ethics owns the question that changes: Erin must approve again, Tina need not.
    second = _resubmit(p, stage, owned)
    stage.refresh_from_db()
    assert stage.status == StageStatus.IN_REVIEW  # the expert's approval is still missing
    gate = review_services.gate_for_stage(stage)
    assert gate.approvers == ["Tina"]  # carried from revision 1
    review_services.decision_record(revision=second, reviewer=p.erin, outcome="approve")
    stage.refresh_from_db()
    assert stage.status == StageStatus.APPROVED  # Tina never had to approve again


def test_under_the_default_dismissal_every_approval_must_be_given_again(personas):
    p = personas
    stage = _stage_one_with(p, dismissal="all")
    second = _resubmit(p, stage, _a_text_question(stage))
    review_services.decision_record(revision=second, reviewer=p.erin, outcome="approve")
    stage.refresh_from_db()
    assert stage.status == StageStatus.IN_REVIEW
    assert review_services.gate_for_stage(stage).approvers == ["Dr Erin Chen"]


def test_an_editorial_change_keeps_an_approval_once_its_reviewer_accepts(personas):
    from reviews.template_rules import editorial_accept

    p = personas
    stage = _stage_one_with(p, dismissal="editorial")
    second = _resubmit(p, stage, _a_text_question(stage), editorial=True)
    assert second.editorial
    review_services.decision_record(revision=second, reviewer=p.erin, outcome="approve")
    stage.refresh_from_db()
    assert stage.status == StageStatus.IN_REVIEW  # Tina has not accepted yet
    with pytest.raises(NotAllowed):
        editorial_accept(revision=second, reviewer=p.alice)
    editorial_accept(revision=second, reviewer=p.tina)
    stage.refresh_from_db()
    assert stage.status == StageStatus.APPROVED
    assert "decision.editorial_accept" in verbs()
