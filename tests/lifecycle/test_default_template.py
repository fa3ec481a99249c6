"""The default lifecycle template from the lecture, as installed by migration 0003.

The tests read what the migration wrote to the test database (pytest-django runs the migrations
when it creates it), not the Python constant, except where they compare the two.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from lifecycle import default_template
from lifecycle.default_template import DEFAULT_TEMPLATE, install_default_template
from lifecycle.models import (
    CHOICE_KINDS,
    LifecycleTemplate,
    Question,
    QuestionKind,
    StageDefinition,
)

pytestmark = pytest.mark.django_db

SLUG, VERSION = "lecture-default", 1

STAGE_KEYS = [
    "problem-and-stakeholders",
    "algorithmic-approach",
    "compile-data",
    "build-and-train",
    "test-extensively",
    "deploy-and-monitor",
    "iterate",
]

STAGE_TITLES = [
    "Identify a problem and its stakeholders",
    "Identify an algorithmic approach",
    "Compile data",
    "Build and train the model",
    "Test extensively",
    "Deploy and monitor",
    "Iterate",
]

YNU = QuestionKind.YES_NO_UNSURE
LONG = QuestionKind.LONG_TEXT

# Every yes/no/unsure question of the template, by stage: the lecture's hard questions, each
# answered with a justification.
YES_NO_UNSURE_KEYS = {
    "problem-and-stakeholders": {
        "encode-relevant-features",
        "define-success-metric",
        "stakeholders-agree-on-metric",
        "comfortable-with-machine-deciding",
    },
    "algorithmic-approach": {
        "deep-learning-makes-sense",
        "enough-training-data",
        "ok-without-interpretability",
    },
    "compile-data": {"data-representative", "collected-ethically"},
    "build-and-train": {
        "loss-reflects-values",
        "average-error-hides-subgroups",
        "labels-cover-all-possibilities",
        "labels-match-stakeholder-values",
    },
    "test-extensively": {"within-acceptable-margin"},
    "deploy-and-monitor": {"solves-the-problem", "unintended-consequences"},
    "iterate": {
        "deep-learning-right-approach",
        "ml-right-approach",
        "any-algorithm-right-approach",
        "needs-social-solution",
    },
}

SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


# --- helpers --------------------------------------------------------------------------------


def normalise(text: str) -> str:
    """Lower case, Markdown emphasis removed, whitespace (including line wraps) collapsed."""
    return re.sub(r"\s+", " ", text.replace("*", "")).strip().lower()


@pytest.fixture
def template() -> LifecycleTemplate:
    return LifecycleTemplate.objects.get(slug=SLUG, version=VERSION)


def stage_of(template: LifecycleTemplate, order: int) -> StageDefinition:
    return template.stages.get(order=order)


def assert_considerations(
    stage: StageDefinition, considerations: list[tuple[str, str, list[str]]]
) -> None:
    """Each consideration is (question key, kind, phrases the prompt must contain)."""
    questions = {q.key: q for q in stage.questions.all()}
    for key, kind, phrases in considerations:
        assert key in questions, f"stage {stage.key!r} lacks question {key!r}: {sorted(questions)}"
        question = questions[key]
        assert question.kind == kind, f"{key!r} is {question.kind!r}, expected {kind!r}"
        assert question.required, f"{key!r} should be required"
        prompt = normalise(question.prompt)
        for phrase in phrases:
            assert normalise(phrase) in prompt, (
                f"{key!r} prompt {question.prompt!r} lacks {phrase!r}"
            )


def assert_help_mentions(stage: StageDefinition, mentions: dict[str, list[str]]) -> None:
    for key, phrases in mentions.items():
        help_text = normalise(stage.questions.get(key=key).help_text)
        for phrase in phrases:
            assert normalise(phrase) in help_text, f"help of {key!r} lacks {phrase!r}"


def assert_guidance_mentions(stage: StageDefinition, phrases: list[str]) -> None:
    guidance = normalise(stage.guidance)
    missing = [phrase for phrase in phrases if normalise(phrase) not in guidance]
    assert not missing, f"guidance of {stage.key!r} does not mention {missing}"


def as_data(template: LifecycleTemplate) -> dict[str, Any]:
    """The template as written to the database, in the shape of DEFAULT_TEMPLATE."""
    stage_fields = [
        "order",
        "key",
        "title",
        "summary",
        "guidance",
        "min_approvals",
        "min_staff_approvals",
        "min_expert_approvals",
        "independent_review",
        "requires_stakeholders",
        "allows_not_pursued",
        "is_iteration",
        "risk_min_severity",
        "rubric",
    ]
    question_fields = ["key", "prompt", "help_text", "kind", "choices", "required"]
    return {
        "slug": template.slug,
        "version": template.version,
        "name": template.name,
        "description": template.description,
        "evidence_slots": template.evidence_slots,
        "artefact_map": template.artefact_map,
        "stages": [
            {
                **{field: getattr(stage, field) for field in stage_fields},
                "questions": [
                    {field: getattr(question, field) for field in question_fields}
                    for question in stage.questions.order_by("order")
                ],
            }
            for stage in template.stages.order_by("order")
        ],
    }


def counts() -> tuple[int, int, int]:
    return (
        LifecycleTemplate.objects.count(),
        StageDefinition.objects.count(),
        Question.objects.count(),
    )


# --- what the migration installed ------------------------------------------------------------


def test_the_migration_installed_exactly_one_lecture_default_template_with_seven_stages():
    templates = LifecycleTemplate.objects.filter(slug=SLUG)
    assert templates.count() == 1
    template = templates.get()
    assert template.version == VERSION
    assert template.name == "ML system life cycle (lecture default)"
    assert template.description
    stages = list(template.stages.order_by("order"))
    assert [s.order for s in stages] == [1, 2, 3, 4, 5, 6, 7]
    assert [s.key for s in stages] == STAGE_KEYS
    assert [s.title for s in stages] == STAGE_TITLES
    for stage in stages:
        assert stage.summary, stage.key
        assert len(stage.guidance) > 200, stage.key
        orders = list(stage.questions.order_by("order").values_list("order", flat=True))
        assert orders == list(range(1, len(orders) + 1)), stage.key
        assert len(orders) >= 5, stage.key


def test_the_database_holds_exactly_the_default_template_data(template):
    assert as_data(template) == DEFAULT_TEMPLATE


@pytest.mark.parametrize(
    ("order", "min_approvals", "staff", "expert"),
    [
        (1, 2, 1, 1),
        (2, 1, 1, 0),
        (3, 2, 1, 1),
        (4, 1, 1, 0),
        (5, 2, 1, 1),
        (6, 2, 1, 1),
        (7, 1, 1, 0),
    ],
)
def test_default_gates(template, order, min_approvals, staff, expert):
    stage = stage_of(template, order)
    assert (stage.min_approvals, stage.min_staff_approvals, stage.min_expert_approvals) == (
        min_approvals,
        staff,
        expert,
    )
    # Blind review for the expert part of the gate (issue 11).
    assert stage.independent_review == "experts"


def test_stage_rules_sit_on_the_right_stages(template):
    stages = list(template.stages.order_by("order"))
    assert [s.requires_stakeholders for s in stages] == [True] + [False] * 6
    assert [s.allows_not_pursued for s in stages] == [True, True] + [False] * 5
    assert [s.is_iteration for s in stages] == [False] * 6 + [True]


# --- the lecture's considerations, stage by stage --------------------------------------------


def test_stage_1_asks_whether_it_can_and_should_be_solved_by_an_algorithm(template):
    stage = stage_of(template, 1)
    assert_considerations(
        stage,
        [
            ("problem-statement", LONG, ["problem", "for whom"]),
            ("encode-relevant-features", YNU, ["encode all relevant features"]),
            ("define-success-metric", YNU, ["metric for success"]),
            ("stakeholders-agree-on-metric", YNU, ["stakeholders agree", "metric"]),
            (
                "comfortable-with-machine-deciding",
                YNU,
                ["comfortable with a machine making this decision"],
            ),
            ("who-is-we", LONG, ['who is "we"']),
            ("domain-experts-included", LONG, ["domain experts"]),
        ],
    )
    assert_help_mentions(
        stage,
        {
            "encode-relevant-features": ["digit recognition", "pixels", "virality"],
            "define-success-metric": ["test-set accuracy"],
            "stakeholders-agree-on-metric": [
                "classroom interventions",
                "teachers",
                "parents",
                "administrators",
                "government officials",
            ],
            "comfortable-with-machine-deciding": ["mail sorting", "autonomous weapons"],
        },
    )
    assert_guidance_mentions(
        stage,
        [
            "can this problem be solved by an algorithm",
            "should it be",
            "digit recognition",
            "image pixels",
            "test-set accuracy",
            "clear yes",
            "virality",
            "the state of the world?",
            "classroom interventions",
            "teachers, parents, administrators, government officials",
            "mail sorting",
            "autonomous weapons",
            "thousands of AI researchers",
            'who is "we"',
            "domain experts",
            "unforeseen",
            "we should not build this",
        ],
    )


def test_stage_2_asks_whether_deep_learning_makes_sense(template):
    stage = stage_of(template, 2)
    assert_considerations(
        stage,
        [
            ("deep-learning-makes-sense", YNU, ["deep learning make sense"]),
            ("enough-training-data", YNU, ["enough training data"]),
            (
                "ok-without-interpretability",
                YNU,
                ["not understanding why the model makes the decisions"],
            ),
            ("approach-chosen", QuestionKind.SINGLE_CHOICE, ["approach"]),
            ("alternatives-rejected", LONG, ["alternatives", "reject"]),
        ],
    )
    choices = normalise(" | ".join(stage.questions.get(key="approach-chosen").choices))
    for option in ["deep learning", "classical", "rule-based", "non-algorithmic", "undecided"]:
        assert option in choices, option
    assert_help_mentions(
        stage,
        {
            "enough-training-data": ["MNIST", "tens of thousands", "personal health"],
            "ok-without-interpretability": ["interpretab", "bail"],
        },
    )
    assert_guidance_mentions(
        stage,
        [
            "MNIST",
            "tens of thousands of training examples",
            "personal health",
            "a few datapoints from a single person's life",
            "less data-hungry",
            "brain tumour segmentation",
            "bail",
            "should it be required to explain why",
            "more interpretable ML models",
            "model interpretability",
        ],
    )


def test_stage_3_asks_whether_the_data_is_representative_and_ethically_collected(template):
    stage = stage_of(template, 3)
    assert_considerations(
        stage,
        [
            ("data-representative", YNU, ["representative"]),
            ("collected-ethically", YNU, ["ethically", "consent"]),
            ("data-sources-and-licences", LONG, ["come from", "licences"]),
            ("dataset-size", QuestionKind.NUMBER, ["how many examples"]),
        ],
    )
    source_url = stage.questions.get(key="data-source-url")
    assert source_url.kind == QuestionKind.URL
    assert "data source" in normalise(source_url.prompt)
    assert "licence" in normalise(source_url.prompt)
    collected = stage.questions.get(key="collection-date")
    assert collected.kind == QuestionKind.DATE
    assert "when was the data collected" in normalise(collected.prompt)
    assert_help_mentions(
        stage,
        {
            "data-representative": ["same frequency", "race", "ethnicity", "gender"],
            "collected-ethically": ["face recognition", "social media"],
        },
    )
    assert_guidance_mentions(
        stage,
        [
            "representative",
            "same frequency",
            "deployed",
            "race, ethnicity, gender",
            "consent",
            "face recognition",
            "scraping millions of photos from social media",
            "licence",
        ],
    )


def test_stage_4_asks_whether_the_loss_and_the_labels_reflect_our_values(template):
    stage = stage_of(template, 4)
    assert_considerations(
        stage,
        [
            ("objective-loss", LONG, ["objective", "loss"]),
            ("loss-reflects-values", YNU, ["reflect all of our desired outcomes and values"]),
            (
                "average-error-hides-subgroups",
                YNU,
                ["average error", "systematic underperformance", "minority subpopulations"],
            ),
            ("labelling-process", LONG, ["labelled"]),
            ("labels-cover-all-possibilities", YNU, ["account for all possibilities"]),
            (
                "labels-match-stakeholder-values",
                YNU,
                ["consistent with the value systems", "stakeholders"],
            ),
        ],
    )
    assert_help_mentions(
        stage,
        {
            "average-error-hides-subgroups": ["algorithmic fairness"],
            "labels-cover-all-possibilities": ['"gender"', '"male" and "female"'],
        },
    )
    assert_guidance_mentions(
        stage,
        [
            "objective (loss) function",
            "desired outcomes and values",
            "average test-set error",
            "systematic underperformance on minority subpopulations",
            "algorithmic fairness",
            "account for all possibilities",
            "value system",
            '"gender" attribute with only "male" and "female" options',
        ],
    )


def test_stage_5_asks_what_the_model_gets_wrong_and_what_errors_cost(template):
    stage = stage_of(template, 5)
    assert_considerations(
        stage,
        [
            ("classified-correctly", LONG, ["classify correctly"]),
            ("classified-incorrectly", LONG, ["classify incorrectly"]),
            ("edge-cases", LONG, ["edge cases"]),
            ("error-costs", LONG, ["incorrect prediction cost", "situation"]),
            ("acceptable-error-rate", QuestionKind.NUMBER, ["acceptable", "error rate"]),
            ("subgroup-margins", LONG, ["margin of error", "each subgroup"]),
            ("within-acceptable-margin", YNU, ["acceptable margin of error", "every subgroup"]),
        ],
    )
    assert_help_mentions(stage, {"error-costs": ["dog photo", "speed-limit sign"]})
    assert_guidance_mentions(
        stage,
        [
            "classify correctly",
            "incorrectly",
            "edge cases",
            "different consequences",
            "dog photo",
            "speed-limit sign",
            "autonomous vehicle",
            "acceptable margin of error",
            "for each subgroup",
        ],
    )


def test_stage_6_asks_whether_the_model_solves_the_problem_without_unintended_consequences(
    template,
):
    stage = stage_of(template, 6)
    assert_considerations(
        stage,
        [
            ("solves-the-problem", YNU, ["solve the problem"]),
            ("how-measured", LONG, ["measure"]),
            ("unintended-consequences", YNU, ["unintended consequences"]),
            ("monitoring-and-alerts", LONG, ["monitor", "alerted"]),
            ("rollback-plan", LONG, ["roll back"]),
        ],
    )
    deployment_date = stage.questions.get(key="deployment-date")
    assert deployment_date.kind == QuestionKind.DATE
    assert "deployment date" in normalise(deployment_date.prompt)
    assert_guidance_mentions(
        stage,
        [
            "does our model solve the problem",
            "measured how",
            "are there unintended consequences",
            "monitor",
            "alerted",
            "rolled back",
        ],
    )


def test_stage_7_asks_whether_we_were_wrong_to_use_an_algorithm_at_all(template):
    stage = stage_of(template, 7)
    assert_considerations(
        stage,
        [
            ("what-we-learned", LONG, ["what did we learn"]),
            ("deep-learning-right-approach", YNU, ["deep learning the right approach"]),
            ("ml-right-approach", YNU, ["machine learning the right approach"]),
            ("any-algorithm-right-approach", YNU, ["any algorithm the right approach"]),
            ("needs-social-solution", YNU, ["social solution", "technical"]),
            ("expert-findings", LONG, ["domain experts", "not foreseen"]),
        ],
    )
    revisit = stage.questions.get(key="stages-to-revisit")
    assert revisit.kind == QuestionKind.MULTIPLE_CHOICE
    assert set(STAGE_TITLES) <= set(revisit.choices)
    assert_guidance_mentions(
        stage,
        [
            "be willing to be wrong, and to do better",
            "deep learning may not be the right approach",
            "machine learning may not be the right approach",
            "any algorithm may not be the right approach",
            "social solution, not a technical one",
            "domain",
            "unforeseen consequences",
            "loops back",
        ],
    )


# --- question kinds -------------------------------------------------------------------------


@pytest.mark.parametrize(("order", "stage_key"), list(enumerate(STAGE_KEYS, start=1)))
def test_yes_no_unsure_questions_are_exactly_the_expected_ones(template, order, stage_key):
    stage = stage_of(template, order)
    assert stage.key == stage_key
    actual = set(stage.questions.filter(kind=YNU).values_list("key", flat=True))
    assert actual == YES_NO_UNSURE_KEYS[stage_key]
    # The justification is part of the kind; the answer itself is never optional.
    assert all(stage.questions.filter(kind=YNU).values_list("required", flat=True))


def test_every_question_kind_is_used_at_least_once(template):
    used = set(Question.objects.filter(stage__template=template).values_list("kind", flat=True))
    assert used == set(QuestionKind.values)
    # The module's own list of kinds has not drifted from the model's.
    assert set(default_template.QUESTION_KINDS) == set(QuestionKind.values)
    assert set(default_template.CHOICE_KINDS) == set(CHOICE_KINDS)


def test_choice_questions_have_choices_and_the_others_have_none(template):
    questions = list(Question.objects.filter(stage__template=template))
    choice_questions = [q for q in questions if q.kind in CHOICE_KINDS]
    assert len(choice_questions) >= 2
    for question in questions:
        if question.kind in CHOICE_KINDS:
            assert len(question.choices) >= 2, question.key
            assert all(isinstance(c, str) and c.strip() for c in question.choices), question.key
            assert len(set(question.choices)) == len(question.choices), question.key
        else:
            assert question.choices == [], question.key


def test_keys_are_slugs_and_question_keys_are_unique_within_a_stage(template):
    for stage in template.stages.all():
        assert SLUG_RE.match(stage.key), stage.key
        keys = list(stage.questions.values_list("key", flat=True))
        assert len(keys) == len(set(keys)), stage.key
        for key in keys:
            assert SLUG_RE.match(key), key
        for prompt in stage.questions.values_list("prompt", flat=True):
            assert 0 < len(prompt) <= 120, prompt


# --- installing ------------------------------------------------------------------------------


def test_install_default_template_is_idempotent(template):
    before = counts()
    again = install_default_template()
    assert again.pk == template.pk
    assert counts() == before
    assert LifecycleTemplate.objects.filter(slug=SLUG, version=VERSION).count() == 1


def test_install_writes_a_new_version_and_does_not_touch_the_constant():
    pristine = copy.deepcopy(DEFAULT_TEMPLATE)
    data = copy.deepcopy(DEFAULT_TEMPLATE)
    data["version"] = 2
    templates, stages, questions = counts()
    per_template = len(data["stages"]), sum(len(s["questions"]) for s in data["stages"])

    created = install_default_template(data=data)

    assert created.version == 2
    assert counts() == (templates + 1, stages + per_template[0], questions + per_template[1])
    assert as_data(created) == data
    assert pristine == DEFAULT_TEMPLATE
    assert install_default_template(data=data).pk == created.pk


def test_install_refuses_malformed_data_without_writing_anything():
    data = copy.deepcopy(DEFAULT_TEMPLATE)
    data["version"] = 3
    data["stages"][1]["questions"][0]["choices"] = ["yes", "no"]  # a yes/no/unsure question
    before = counts()
    with pytest.raises(ValueError, match="choice"):
        install_default_template(data=data)
    assert counts() == before
