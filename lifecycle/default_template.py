"""The default lifecycle template: the seven stages of the lecture's life cycle of an ML system.

``DEFAULT_TEMPLATE`` is plain data (strings, numbers, booleans, lists and dicts) so that the data
migration that installs it, the tests and the admin can all read it without touching models.
Question kinds are the string values of ``lifecycle.models.QuestionKind``.

``install_default_template()`` writes it to the database, once: calling it again returns the
template that is already there.

The lecture's message, which every stage repeats in its own words: an ML system is never "just
math". At each stage the team asks hard questions, is willing to be wrong, and includes domain
experts who can point out consequences the team would not foresee on its own.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from django.db import DEFAULT_DB_ALIAS, IntegrityError, transaction

# The values of lifecycle.models.QuestionKind, repeated here so that this module (and the
# migration that imports it) does not depend on the current models.
SHORT_TEXT = "short_text"
LONG_TEXT = "long_text"
YES_NO_UNSURE = "yes_no_unsure"
SINGLE_CHOICE = "single_choice"
MULTIPLE_CHOICE = "multiple_choice"
NUMBER = "number"
URL = "url"
DATE = "date"

QUESTION_KINDS = (
    SHORT_TEXT,
    LONG_TEXT,
    YES_NO_UNSURE,
    SINGLE_CHOICE,
    MULTIPLE_CHOICE,
    NUMBER,
    URL,
    DATE,
)
CHOICE_KINDS = (SINGLE_CHOICE, MULTIPLE_CHOICE)

# The lecture's names for the seven stages, in order.
STAGE_TITLES = [
    "Identify a problem and its stakeholders",
    "Identify an algorithmic approach",
    "Compile data",
    "Build and train the model",
    "Test extensively",
    "Deploy and monitor",
    "Iterate",
]


def _q(
    key: str,
    prompt: str,
    kind: str,
    help_text: str = "",
    *,
    choices: list[str] | None = None,
    required: bool = True,
) -> dict[str, Any]:
    return {
        "key": key,
        "prompt": prompt,
        "help_text": help_text,
        "kind": kind,
        "choices": list(choices or []),
        "required": required,
    }


# --- Stage 1 --------------------------------------------------------------------------------

STAGE_1_GUIDANCE = """\
Before any model exists, decide two things: **can** this problem be solved by an algorithm, and
**should** it be? Name the problem, the people who have it and the people it touches, and keep
them in the stakeholder register.

### Can it be solved by an algorithm?

- **Can we encode all relevant features?**
- **Can we define a metric for success?** And do the stakeholders agree on it?

Examples from the lecture:

- **Digit recognition.** Features: the image pixels. Success: test-set accuracy. *Seems like a
  clear yes.*
- **Predicting online virality.** Features: ...the state of the world? *Might be a no* — what
  makes a post go viral is not something we can write down as input features.
- **Predicting the effectiveness of classroom interventions.** Success: different stakeholders —
  teachers, parents, administrators, government officials — may not agree on what "effective"
  means. *Might be a no.*

### Should it be solved by an algorithm?

- **Are we comfortable with a machine making this decision for us?**
- **Who is "we" in the above?** The team, the people who deploy the system, or the people the
  decision is about? Their answers can differ.

Examples from the lecture:

- **Digit recognition** leads to faster mail sorting, which is probably a good thing. *Seems like
  a clear yes.*
- **Autonomous weapons** — drones and robots getting involved in combat? Thousands of AI
  researchers have pledged not to help build them: *no.*

### You are not alone

You will not always have the background to answer all of these questions. Include domain experts
(subject-matter experts) who may be able to point out unforeseen consequences, and invite them to
review this stage.

"We should not build this" is a legitimate, approvable outcome of this stage.
"""

STAGE_1_QUESTIONS = [
    _q(
        "problem-statement",
        "What problem are we trying to solve, and for whom?",
        LONG_TEXT,
        "Describe the problem in plain words: who has it today, who would use the system and "
        "who would be affected by its decisions. Record each group in the stakeholder register.",
    ),
    _q(
        "encode-relevant-features",
        "Can we encode all relevant features?",
        YES_NO_UNSURE,
        "Digit recognition: the features are the image pixels — a clear yes. Predicting online "
        "virality: the features would be... the state of the world? — might be a no. Say which "
        "features matter and whether we can actually measure them.",
    ),
    _q(
        "define-success-metric",
        "Can we define a metric for success?",
        YES_NO_UNSURE,
        "Digit recognition: test-set accuracy. Some problems have no single number that "
        "captures success; say so if that is the case here.",
    ),
    _q(
        "success-metric",
        "Which metric for success do we propose?",
        SHORT_TEXT,
        'One line, e.g. "test-set accuracy" or "recall on the positive class at 1% false '
        'positives". Write "none" if we cannot define one.',
    ),
    _q(
        "stakeholders-agree-on-metric",
        "Do the stakeholders agree on that metric for success?",
        YES_NO_UNSURE,
        "Predicting the effectiveness of classroom interventions: teachers, parents, "
        "administrators and government officials may not agree on what success means. Who did "
        "we ask, and what did they say?",
    ),
    _q(
        "comfortable-with-machine-deciding",
        "Are we comfortable with a machine making this decision for us?",
        YES_NO_UNSURE,
        "Digit recognition leads to faster mail sorting — probably a good thing, a clear yes. "
        "Autonomous weapons: thousands of AI researchers say no.",
    ),
    _q(
        "who-is-we",
        'Who is "we" — whose comfort with a machine deciding counts?',
        LONG_TEXT,
        "The team, the organisation deploying the system, or the people the decision is about? "
        "Name the groups and where their answers differ.",
    ),
    _q(
        "stakeholders-consulted",
        "Which kinds of stakeholders have we consulted so far?",
        MULTIPLE_CHOICE,
        "Tick every kind you have actually talked to; the stakeholder register holds the details.",
        choices=[
            "Direct users",
            "Affected communities",
            "Operators",
            "Decision makers",
            "Domain experts",
            "Regulators",
            "None yet",
        ],
    ),
    _q(
        "domain-experts-included",
        "Which domain experts have we included, and what do they bring?",
        LONG_TEXT,
        "You won't always have the background to answer all of these questions. Include "
        "domain or subject-matter experts who may be able to point out unforeseen "
        "consequences — and invite them to review this stage.",
    ),
]

# --- Stage 2 --------------------------------------------------------------------------------

STAGE_2_GUIDANCE = """\
### Does deep learning make sense?

- **Can we acquire enough training data?**
- **Are we OK with not understanding why the model makes the decisions it does?** (Model
  interpretability.)

Examples from the lecture:

- **Digit recognition.** MNIST gives us tens of thousands of training examples, and it is fine if
  predictions are not explainable as long as they are highly accurate. *Seems like a clear yes.*
- **Personal health recommendations.** We can only gather a few datapoints from a single
  person's life. *Deep learning might be a no;* other, less data-hungry ML approaches might be
  viable.
- **Automatic brain tumour segmentation.** Think it through: how much labelled data is there, who
  labels it, and does a radiologist need to know why the model outlined a region?
- **Bail determination.** If a machine denies someone bail, should it be required to explain why?
  *Deep learning might be a no;* other, more interpretable ML models might be viable.

Record the approach you chose and the alternatives you rejected, with reasons — including a
simple rule, or no algorithm at all. "We should not build this" is a legitimate, approvable
outcome of this stage.
"""

STAGE_2_QUESTIONS = [
    _q(
        "deep-learning-makes-sense",
        "Does deep learning make sense for this problem?",
        YES_NO_UNSURE,
        "Digit recognition: a clear yes. Personal health recommendations or bail determination: "
        "might be a no. Weigh the two questions below.",
    ),
    _q(
        "enough-training-data",
        "Can we acquire enough training data?",
        YES_NO_UNSURE,
        "MNIST gives tens of thousands of training examples. Personal health recommendations "
        "can only gather a few datapoints from a single person's life — less data-hungry "
        "methods might be viable.",
    ),
    _q(
        "ok-without-interpretability",
        "Are we OK with not understanding why the model makes the decisions it does?",
        YES_NO_UNSURE,
        "Model interpretability. Digit recognition: fine, as long as accuracy is high. Bail "
        "determination: if a machine denies someone bail, should it be required to explain "
        "why? Then more interpretable models might be viable. Brain tumour segmentation: "
        "what does a clinician need to know?",
    ),
    _q(
        "approach-chosen",
        "Which approach have we chosen?",
        SINGLE_CHOICE,
        'Choose "Undecided" if the questions above are still open; choose the non-algorithmic '
        "option if a person or a social process should keep this decision.",
        choices=[
            "Deep learning",
            "Classical (non-deep) machine learning",
            "Rule-based algorithm",
            "Non-algorithmic (people or a social process decide)",
            "Undecided",
        ],
    ),
    _q(
        "alternatives-rejected",
        "Which alternatives did we consider, and why did we reject them?",
        LONG_TEXT,
        "E.g. a simpler, more interpretable model, a hand-written rule, or no algorithm at all.",
    ),
]

# --- Stage 3 --------------------------------------------------------------------------------

STAGE_3_GUIDANCE = """\
### Is our data representative?

Does it contain feature values with the same frequency that we expect to see those values when
the model is deployed? Check the attributes that matter for the people affected — e.g. **race,
ethnicity, gender**, age, language, region — and say what you compared against.

### Was our data collected ethically?

Did we obtain **consent**, where appropriate? For example, you probably shouldn't build a face
recognition service by scraping millions of photos from social media (as Clearview AI did).

### Sources and licences

Say where each part of the data comes from, under which licence or terms you may use it, when it
was collected, and how many examples there are.
"""

STAGE_3_QUESTIONS = [
    _q(
        "data-representative",
        "Is our data representative of the population the model will be deployed on?",
        YES_NO_UNSURE,
        "Does it contain feature values with the same frequency we expect to see when "
        "deploying — e.g. race, ethnicity, gender? What did we compare against?",
    ),
    _q(
        "collected-ethically",
        "Was the data collected ethically, with consent where appropriate?",
        YES_NO_UNSURE,
        "E.g. you probably shouldn't build a face recognition service by scraping millions of "
        "photos from social media. Who agreed to what?",
    ),
    _q(
        "sensitive-information",
        "Which kinds of sensitive information does the data contain?",
        MULTIPLE_CHOICE,
        "Tick all that apply; each one raises the bar for consent and protection.",
        choices=[
            "Personal identifiers (names, faces, contact details)",
            "Demographic attributes (e.g. race, ethnicity, gender)",
            "Health information",
            "Location",
            "Content people created (posts, photos, messages)",
            "None of these",
        ],
    ),
    _q(
        "data-sources-and-licences",
        "Where does the data come from, and under which licences or terms may we use it?",
        LONG_TEXT,
        "List every source: public datasets, data we collect ourselves, data from a partner. "
        "For each, its licence or the agreement that lets us use it.",
    ),
    _q(
        "data-source-url",
        "Link to the main data source or its licence",
        URL,
        "E.g. the dataset's home page or its licence text.",
        required=False,
    ),
    _q(
        "dataset-size",
        "How many examples does the dataset contain?",
        NUMBER,
        "For comparison, MNIST has tens of thousands of training examples.",
    ),
    _q(
        "collection-date",
        "When was the data collected (or its latest snapshot taken)?",
        DATE,
        "Data ages: the world the model is deployed in may no longer look like it.",
        required=False,
    ),
]

# --- Stage 4 --------------------------------------------------------------------------------

STAGE_4_GUIDANCE = """\
### What is the objective (loss) function?

**Does it reflect all of our desired outcomes and values?** Minimising average test-set error
sounds good at face value, but it can lead to **systematic underperformance on minority
subpopulations** within the data: a model can be right for most people and consistently wrong
for a few. This is the subject of **algorithmic fairness**.

### How do we label the training examples?

- **Do these labels account for all possibilities?**
- **Are these labels consistent with the value system(s) of our stakeholders?**

E.g. a **"gender" attribute with only "male" and "female" options** leaves people out, and
encodes a value judgement that not every stakeholder shares.
"""

STAGE_4_QUESTIONS = [
    _q(
        "objective-loss",
        "What is the objective (loss) function, and what does it reward?",
        LONG_TEXT,
        "Name the loss and any weighting or regularisation, in words a stakeholder can follow.",
    ),
    _q(
        "loss-reflects-values",
        "Does the objective reflect all of our desired outcomes and values?",
        YES_NO_UNSURE,
        "Which outcomes and values from stage 1 does the loss capture, and which does it leave "
        "out?",
    ),
    _q(
        "average-error-hides-subgroups",
        "Could minimising average error hide systematic underperformance on minority "
        "subpopulations?",
        YES_NO_UNSURE,
        "Algorithmic fairness: minimising average test-set error sounds good at face value but "
        "can leave the model consistently wrong for a minority subpopulation. Which subgroups "
        "do we measure separately?",
    ),
    _q(
        "labelling-process",
        "How are the training examples labelled, and by whom?",
        LONG_TEXT,
        "Describe the labelling instructions, who applied them, and how disagreements between "
        "labellers are resolved.",
    ),
    _q(
        "label-source",
        "Who produced most of the labels?",
        SINGLE_CHOICE,
        "",
        choices=[
            "They came with the dataset",
            "Our team",
            "Crowd workers",
            "Domain experts",
            "Derived automatically",
            "A mix of these",
        ],
    ),
    _q(
        "labels-cover-all-possibilities",
        "Do the labels account for all possibilities?",
        YES_NO_UNSURE,
        'E.g. a "gender" attribute with only "male" and "female" options does not.',
    ),
    _q(
        "labels-match-stakeholder-values",
        "Are the labels consistent with the value systems of our stakeholders?",
        YES_NO_UNSURE,
        "Labels encode judgements. Would the people described by them, and the people using "
        "the predictions, accept those judgements?",
    ),
]

# --- Stage 5 --------------------------------------------------------------------------------

STAGE_5_GUIDANCE = """\
### Test extensively

- **What does the model classify correctly?**
- **What does it classify incorrectly?**
- **Are there "edge cases" to be aware of?**

### In different situations, incorrect predictions have different consequences

An incorrect prediction for a **dog photo** when curating an image collection costs little. An
incorrect reading of the digits on a **speed-limit sign** in an autonomous vehicle can cost a
life. Work out what each kind of error costs, and for whom, where your model will be used.

### What is an acceptable margin of error?

Decide it before you look at the results — overall, and **for each subgroup** you identified in
stages 3 and 4 — and say whether the model meets it.
"""

STAGE_5_QUESTIONS = [
    _q(
        "classified-correctly",
        "What does the model classify correctly?",
        LONG_TEXT,
        "Which kinds of input, and which subgroups, does it handle well? Give numbers.",
    ),
    _q(
        "classified-incorrectly",
        "What does the model classify incorrectly?",
        LONG_TEXT,
        "Look at the errors themselves, not only at their rate: what do they have in common?",
    ),
    _q(
        "edge-cases",
        'Which "edge cases" should we be aware of, and how does the model handle them?',
        LONG_TEXT,
        "Rare, unusual or out-of-distribution inputs; inputs the training data never covered.",
    ),
    _q(
        "error-costs",
        "What does an incorrect prediction cost, and for whom, in each situation the model is "
        "used in?",
        LONG_TEXT,
        "A mis-tagged dog photo when curating images costs little; a misread speed-limit sign "
        "in an autonomous vehicle can cost a life.",
    ),
    _q(
        "acceptable-error-rate",
        "What overall error rate is acceptable (in %)?",
        NUMBER,
        "The acceptable margin of error, decided from the costs above.",
    ),
    _q(
        "subgroup-margins",
        "What margin of error is acceptable for each subgroup?",
        LONG_TEXT,
        "For each subgroup from stages 3 and 4: the acceptable error and the measured error.",
    ),
    _q(
        "within-acceptable-margin",
        "Does the model stay within the acceptable margin of error, overall and for every "
        "subgroup?",
        YES_NO_UNSURE,
        "An average within the margin can still hide a subgroup outside it.",
    ),
    _q(
        "test-report-url",
        "Link to the test report or evaluation notebook",
        URL,
        "",
        required=False,
    ),
]

# --- Stage 6 --------------------------------------------------------------------------------

STAGE_6_GUIDANCE = """\
### Deploy and monitor

- **Does our model solve the problem?** The problem from stage 1, for the people named there —
  measured how, in deployment rather than on a test set?
- **Are there unintended consequences?** Who is affected in ways nobody planned for? Domain
  experts and affected communities often see these first.

Plan for things going wrong before they do: what you monitor, who is alerted, and how the model
is rolled back or switched off.
"""

STAGE_6_QUESTIONS = [
    _q(
        "solves-the-problem",
        "Does our model solve the problem?",
        YES_NO_UNSURE,
        "The problem from stage 1, for the people named there — not just the test-set metric.",
    ),
    _q(
        "how-measured",
        "How do we measure whether it solves the problem in deployment?",
        LONG_TEXT,
        "The metric, the data it is computed on, and how often.",
    ),
    _q(
        "unintended-consequences",
        "Are there unintended consequences?",
        YES_NO_UNSURE,
        "Observed or foreseeable: changed behaviour of users, harms to people who never use the "
        "system, misuse. Domain experts may point out ones we did not foresee.",
    ),
    _q(
        "monitoring-and-alerts",
        "What do we monitor, and who is alerted when something goes wrong?",
        LONG_TEXT,
        "E.g. error rates per subgroup, drift in the input data, complaints. Name a person or "
        "role for each alert.",
    ),
    _q(
        "rollback-plan",
        "How do we roll back or switch the model off?",
        LONG_TEXT,
        "Who can decide it, how quickly it takes effect, and what replaces the model meanwhile.",
    ),
    _q(
        "deployment-setting",
        "How is the model deployed?",
        SINGLE_CHOICE,
        "",
        choices=[
            "Not deployed (prototype or course demo only)",
            "Pilot with a small group of users",
            "Internal use",
            "Public release",
        ],
    ),
    _q(
        "deployment-date",
        "Planned (or actual) deployment date",
        DATE,
        "",
        required=False,
    ),
]

# --- Stage 7 --------------------------------------------------------------------------------

STAGE_7_GUIDANCE = """\
### Be willing to be wrong, and to do better

Look back over the whole cycle and ask again:

- **Deep learning** may not be the right approach.
- **Machine learning** may not be the right approach.
- **Any algorithm** may not be the right approach.
- The problem might need a **social solution, not a technical one**.

### You are not alone

Include domain (subject-matter) experts who may be able to point out unforeseen consequences, and
record what they pointed out.

From here the team loops back to an earlier stage for a new cycle, concludes (deployed and
monitored), or stops because this is not a problem to solve with ML — a legitimate outcome.
"""

STAGE_7_QUESTIONS = [
    _q(
        "what-we-learned",
        "What did we learn in this cycle?",
        LONG_TEXT,
        "About the problem, the stakeholders, the data and the model — including what we got "
        "wrong.",
    ),
    _q(
        "deep-learning-right-approach",
        "Is deep learning the right approach?",
        YES_NO_UNSURE,
        "Be willing to be wrong: DL may not be the right approach.",
    ),
    _q(
        "ml-right-approach",
        "Is machine learning the right approach?",
        YES_NO_UNSURE,
        "ML may not be the right approach.",
    ),
    _q(
        "any-algorithm-right-approach",
        "Is any algorithm the right approach?",
        YES_NO_UNSURE,
        "Any algorithm may not be the right approach.",
    ),
    _q(
        "needs-social-solution",
        "Does the problem need a social solution rather than a technical one?",
        YES_NO_UNSURE,
        "E.g. a change of policy, process or resources instead of (or as well as) a model.",
    ),
    _q(
        "expert-findings",
        "What did domain experts point out that we had not foreseen?",
        LONG_TEXT,
        "Include domain experts who may be able to point out unforeseen consequences; write "
        'down what they said and what we changed. Write "none consulted" if that is the case.',
    ),
    _q(
        "stages-to-revisit",
        "Which stages should we revisit?",
        MULTIPLE_CHOICE,
        "This informs the outcome you choose for the cycle: loop back, conclude, or stop.",
        choices=[*STAGE_TITLES, "None"],
    ),
]

# --- Rubrics -----------------------------------------------------------------------------------
# How reviewers score each stage with their decision (a course grades only once it turns grading
# on). The criteria are the lecture's hard questions for the stage; every criterion has the same
# four levels so scores read alike across stages.

LEVELS = [
    {"points": 0, "label": "Missing", "description": "Not addressed."},
    {"points": 1, "label": "Superficial", "description": "Named, but not argued or evidenced."},
    {"points": 2, "label": "Adequate", "description": "Argued with evidence for the main cases."},
    {
        "points": 3,
        "label": "Thorough",
        "description": "Argued with evidence, including edge cases and who could be harmed.",
    },
]


def _criterion(key: str, title: str, description: str, *, allow_na: bool = False) -> dict:
    return {
        "key": key,
        "title": title,
        "description": description,
        "allow_na": allow_na,
        "levels": [dict(level) for level in LEVELS],
    }


RUBRICS: dict[str, dict[str, Any]] = {
    "problem-and-stakeholders": {
        "criteria": [
            _criterion(
                "stakeholders",
                "Stakeholders identified",
                "Direct users, affected communities, operators and decision makers named with "
                "their interests, possible harms and benefits, and whether they were consulted.",
            ),
            _criterion(
                "can-be-done",
                "Can it be done by an algorithm?",
                "Can all relevant features be encoded, is there a metric for success, and do the "
                "stakeholders agree on it?",
            ),
            _criterion(
                "should-be-done",
                "Should it be done?",
                "Who would be comfortable with a machine making this decision, and who is "
                '"we"? Willingness not to build it.',
            ),
        ]
    },
    "algorithmic-approach": {
        "criteria": [
            _criterion(
                "approach-fits",
                "The approach fits the problem",
                "Does deep learning make sense here, or would a simpler model or no model do? "
                "Alternatives considered and rejected with reasons.",
            ),
            _criterion(
                "enough-data",
                "Enough training data",
                "Can the team acquire enough examples for the approach chosen?",
            ),
            _criterion(
                "explainability",
                "Living without knowing why",
                "Is it acceptable not to know why the model decides, for these stakeholders?",
                allow_na=True,
            ),
        ]
    },
    "compile-data": {
        "criteria": [
            _criterion(
                "representative",
                "Data reflects where the model is used",
                "Is the data representative of the people and situations the model will meet, "
                "and of the values the stakeholders hold?",
            ),
            _criterion(
                "consent",
                "Collected ethically, with consent",
                "Was the data collected ethically and with consent, and may the team use it?",
            ),
            _criterion(
                "labels",
                "Labels cover all possibilities",
                "Do the labels cover every case and match the stakeholders' values?",
                allow_na=True,
            ),
        ]
    },
    "build-and-train": {
        "criteria": [
            _criterion(
                "loss",
                "The objective reflects our values",
                "Does the objective / loss reflect all outcomes and values that matter, not just "
                "average error?",
            ),
            _criterion(
                "error-costs",
                "Costs of errors weighed",
                "Are false positives and false negatives weighed by what they cost the people "
                "affected?",
            ),
        ]
    },
    "test-extensively": {
        "criteria": [
            _criterion(
                "testing",
                "Tested beyond average accuracy",
                "What the model gets right and wrong, edge cases that matter, results per "
                "subgroup.",
            ),
            _criterion(
                "error-margin",
                "Acceptable margin of error",
                "Is the margin of error that is acceptable stated, and agreed with stakeholders?",
            ),
        ]
    },
    "deploy-and-monitor": {
        "criteria": [
            _criterion(
                "solves-problem",
                "Measured to solve the problem",
                "Does the deployed model solve the problem, measured how?",
            ),
            _criterion(
                "monitoring",
                "Monitoring and roll-back",
                "Unintended consequences watched for, who is alerted, and how to roll back.",
            ),
        ]
    },
}

# --- The template ---------------------------------------------------------------------------


def _stage(
    order: int,
    key: str,
    summary: str,
    guidance: str,
    questions: list[dict[str, Any]],
    *,
    expert_approval: bool = False,
    requires_stakeholders: bool = False,
    allows_not_pursued: bool = False,
    is_iteration: bool = False,
    risk_min_severity: int = 0,
) -> dict[str, Any]:
    staff, expert = 1, (1 if expert_approval else 0)
    return {
        "order": order,
        "key": key,
        "title": STAGE_TITLES[order - 1],
        "summary": summary,
        "guidance": guidance,
        "min_approvals": staff + expert,
        "min_staff_approvals": staff,
        "min_expert_approvals": expert,
        # Blind review for the expert part of the gate: an expert's judgement counts because it
        # is independent, so experts decide before they read anyone else's (on every stage: a
        # whole-project expert reviews stages whose gate needs no expert too).
        "independent_review": "experts",
        "requires_stakeholders": requires_stakeholders,
        "allows_not_pursued": allows_not_pursued,
        "is_iteration": is_iteration,
        "risk_min_severity": risk_min_severity,
        "rubric": RUBRICS.get(key, {}),
        "questions": questions,
    }


DEFAULT_TEMPLATE: dict[str, Any] = {
    "slug": "lecture-default",
    "version": 1,
    "name": "ML system life cycle (lecture default)",
    "description": (
        "The seven stages of the life cycle of a machine-learning system from the lecture: "
        "identify a problem and its stakeholders, identify an algorithmic approach, compile "
        "data, build and train the model, test extensively, deploy and monitor, iterate. ML "
        'systems are never "just math": at every stage the team answers the lecture\'s hard '
        "questions, is willing to be wrong, and includes domain experts who can point out "
        "unforeseen consequences."
    ),
    "stages": [
        _stage(
            1,
            "problem-and-stakeholders",
            "Can this problem be solved by an algorithm, and should it be? Name the problem, "
            "the people it touches, and who would be comfortable with a machine deciding.",
            STAGE_1_GUIDANCE,
            STAGE_1_QUESTIONS,
            expert_approval=True,
            requires_stakeholders=True,
            allows_not_pursued=True,
        ),
        _stage(
            2,
            "algorithmic-approach",
            "Does deep learning make sense? Enough training data, and can we live without "
            "knowing why the model decides? Choose an approach and say what you rejected.",
            STAGE_2_GUIDANCE,
            STAGE_2_QUESTIONS,
            allows_not_pursued=True,
        ),
        _stage(
            3,
            "compile-data",
            "Is the data representative of where the model will be used, was it collected "
            "ethically and with consent, and may we use it?",
            STAGE_3_GUIDANCE,
            STAGE_3_QUESTIONS,
            expert_approval=True,
        ),
        _stage(
            4,
            "build-and-train",
            "Does the objective reflect all our outcomes and values, not just average error? "
            "Do the labels cover all possibilities and match our stakeholders' values?",
            STAGE_4_GUIDANCE,
            STAGE_4_QUESTIONS,
        ),
        _stage(
            5,
            "test-extensively",
            "What does the model get right and wrong, which edge cases matter, what do errors "
            "cost, and what margin of error is acceptable — overall and per subgroup?",
            STAGE_5_GUIDANCE,
            STAGE_5_QUESTIONS,
            expert_approval=True,
            # Lecture: a serious harm is measured per subgroup before testing passes.
            risk_min_severity=4,
        ),
        _stage(
            6,
            "deploy-and-monitor",
            "Does the model solve the problem, measured how? Watch for unintended "
            "consequences, and know who is alerted and how to roll back.",
            STAGE_6_GUIDANCE,
            STAGE_6_QUESTIONS,
            expert_approval=True,
        ),
        _stage(
            7,
            "iterate",
            "Be willing to be wrong: is DL, ML or any algorithm the right approach, or does the "
            "problem need a social solution? Loop back, conclude, or stop.",
            STAGE_7_GUIDANCE,
            STAGE_7_QUESTIONS,
            is_iteration=True,
        ),
    ],
}


# --- Evidence and artefacts -----------------------------------------------------------------

_ANY_FILE = ["pdf", "image", "svg", "csv", "notebook", "text"]

# Which questions accept evidence files: the claims a reviewer should not take on trust.
DEFAULT_EVIDENCE_SLOTS: dict[str, dict[str, Any]] = {
    "problem-and-stakeholders/problem-statement": {"max_files": 3, "types": ["pdf", "image"]},
    "problem-and-stakeholders/stakeholders-consulted": {
        "max_files": 3,
        "types": ["pdf", "text", "image"],
    },
    "compile-data/data-representative": {"max_files": 5, "types": _ANY_FILE},
    "compile-data/collected-ethically": {"max_files": 3, "types": ["pdf", "text", "image"]},
    "compile-data/data-sources-and-licences": {"max_files": 3, "types": ["pdf", "text"]},
    "build-and-train/objective-loss": {"max_files": 3, "types": ["notebook", "pdf", "image"]},
    "build-and-train/labelling-process": {"max_files": 3, "types": ["pdf", "text", "csv"]},
    "test-extensively/classified-correctly": {"max_files": 5, "types": _ANY_FILE},
    "test-extensively/classified-incorrectly": {"max_files": 5, "types": _ANY_FILE},
    "test-extensively/subgroup-margins": {"max_files": 5, "types": _ANY_FILE},
    "test-extensively/within-acceptable-margin": {"max_files": 5, "types": _ANY_FILE},
    "deploy-and-monitor/monitoring-and-alerts": {"max_files": 3, "types": _ANY_FILE},
    "deploy-and-monitor/how-measured": {"max_files": 3, "types": _ANY_FILE},
}

# Where each section of the three artefacts comes from ("<stage key>/<question key>", in order).
# Sections filled from registers (stakeholders, risks) or decisions (sign-offs) are not listed.
DEFAULT_ARTEFACT_MAP: dict[str, dict[str, list[str]]] = {
    "model_card": {
        "model_details": [
            "algorithmic-approach/approach-chosen",
            "algorithmic-approach/alternatives-rejected",
        ],
        "intended_uses": [
            "problem-and-stakeholders/problem-statement",
            "deploy-and-monitor/deployment-setting",
        ],
        "out_of_scope_uses": [
            "problem-and-stakeholders/comfortable-with-machine-deciding",
            "algorithmic-approach/ok-without-interpretability",
        ],
        "training_data": [
            "compile-data/data-sources-and-licences",
            "compile-data/dataset-size",
            "compile-data/data-representative",
        ],
        "training_procedure": [
            "build-and-train/objective-loss",
            "build-and-train/labelling-process",
        ],
        "evaluation": [
            "test-extensively/classified-correctly",
            "test-extensively/classified-incorrectly",
            "test-extensively/acceptable-error-rate",
        ],
        "subgroup_performance": [
            "test-extensively/subgroup-margins",
            "test-extensively/within-acceptable-margin",
        ],
        "bias_risks_limitations": [
            "build-and-train/average-error-hides-subgroups",
            "test-extensively/error-costs",
            "deploy-and-monitor/unintended-consequences",
        ],
        "monitoring": [
            "deploy-and-monitor/monitoring-and-alerts",
            "deploy-and-monitor/rollback-plan",
        ],
    },
    "datasheet": {
        "motivation": ["problem-and-stakeholders/problem-statement"],
        "composition": [
            "compile-data/dataset-size",
            "compile-data/data-representative",
            "compile-data/sensitive-information",
        ],
        "collection": [
            "compile-data/collected-ethically",
            "compile-data/collection-date",
            "compile-data/data-source-url",
        ],
        "preprocessing": ["build-and-train/labelling-process", "build-and-train/label-source"],
        "uses": [
            "algorithmic-approach/approach-chosen",
            "algorithmic-approach/enough-training-data",
        ],
        "distribution": ["compile-data/data-sources-and-licences"],
        "maintenance": ["compile-data/collection-date", "iterate/stages-to-revisit"],
    },
    "impact_assessment": {
        "intended_uses": [
            "problem-and-stakeholders/problem-statement",
            "deploy-and-monitor/deployment-setting",
            "problem-and-stakeholders/success-metric",
        ],
        "restricted_uses": [
            "problem-and-stakeholders/comfortable-with-machine-deciding",
            "algorithmic-approach/ok-without-interpretability",
            "iterate/needs-social-solution",
        ],
        "harms_and_mitigations": [
            "deploy-and-monitor/unintended-consequences",
            "test-extensively/error-costs",
            "deploy-and-monitor/rollback-plan",
        ],
    },
}

DEFAULT_TEMPLATE["evidence_slots"] = DEFAULT_EVIDENCE_SLOTS
DEFAULT_TEMPLATE["artefact_map"] = DEFAULT_ARTEFACT_MAP


# --- Installing it --------------------------------------------------------------------------


def validate_template_data(data: Mapping[str, Any]) -> None:
    """Raise ValueError if ``data`` is not a well-formed template (before anything is written)."""
    stages = data["stages"]
    orders = [stage["order"] for stage in stages]
    if orders != list(range(1, len(stages) + 1)):
        raise ValueError(f"stage orders must be 1..{len(stages)} in sequence, got {orders}")
    stage_keys = [stage["key"] for stage in stages]
    if len(set(stage_keys)) != len(stage_keys):
        raise ValueError(f"stage keys must be unique, got {stage_keys}")
    for stage in stages:
        where = f"stage {stage['key']!r}"
        staff, expert = stage["min_staff_approvals"], stage["min_expert_approvals"]
        if stage["min_approvals"] < max(1, staff + expert):
            raise ValueError(f"{where}: min_approvals must be at least max(1, staff + expert)")
        question_keys = [question["key"] for question in stage["questions"]]
        if len(set(question_keys)) != len(question_keys):
            raise ValueError(f"{where}: question keys must be unique, got {question_keys}")
        for question in stage["questions"]:
            kind, choices = question["kind"], question.get("choices") or []
            if kind not in QUESTION_KINDS:
                raise ValueError(f"{where}, question {question['key']!r}: unknown kind {kind!r}")
            if (kind in CHOICE_KINDS) != bool(choices):
                raise ValueError(
                    f"{where}, question {question['key']!r}: choice questions need choices, "
                    "other kinds must have none"
                )


def _has_field(model: Any, name: str) -> bool:
    return any(field.name == name for field in model._meta.get_fields())


def _fit_independent_review(stage_model: Any, fields: dict[str, Any]) -> None:
    """Migrations before lifecycle 0010 knew independent review as a yes/no flag that meant
    "everyone"; 0010 converts the flag and sets the default template's stages from this data."""
    field = stage_model._meta.get_field("independent_review")
    if field.get_internal_type() == "BooleanField" and "independent_review" in fields:
        fields["independent_review"] = fields["independent_review"] in (True, "everyone")


def install_default_template(
    apps: Any = None,
    *,
    data: Mapping[str, Any] | None = None,
    using: str | None = None,
) -> Any:
    """Create the template described by ``data`` (``DEFAULT_TEMPLATE`` by default) with its
    stages and questions, and return the ``LifecycleTemplate``.

    Idempotent: if a template with the same slug and version exists, it is returned unchanged
    and nothing is written. ``apps`` is the historical app registry inside a migration; without
    it the current models are used.
    """
    data = copy.deepcopy(DEFAULT_TEMPLATE if data is None else dict(data))
    validate_template_data(data)
    if apps is None:
        from django.apps import apps as global_apps

        apps = global_apps
    db = using or DEFAULT_DB_ALIAS
    template_model = apps.get_model("lifecycle", "LifecycleTemplate")
    stage_model = apps.get_model("lifecycle", "StageDefinition")
    question_model = apps.get_model("lifecycle", "Question")

    templates = template_model._default_manager.db_manager(db)
    existing = templates.filter(slug=data["slug"], version=data["version"]).first()
    if existing is not None:
        return existing

    try:
        with transaction.atomic(using=db):
            template = templates.create(
                slug=data["slug"],
                version=data["version"],
                name=data["name"],
                description=data.get("description", ""),
                # Older migrations install through models that predate these fields.
                **{
                    field: data[field]
                    for field in ("evidence_slots", "artefact_map")
                    if field in data and _has_field(template_model, field)
                },
            )
            questions = []
            for stage_data in data["stages"]:
                stage_fields = {
                    k: v
                    for k, v in stage_data.items()
                    if k != "questions"
                    and (k not in ("risk_min_severity", "rubric") or _has_field(stage_model, k))
                }
                _fit_independent_review(stage_model, stage_fields)
                stage = stage_model._default_manager.db_manager(db).create(
                    template=template, **stage_fields
                )
                for order, question in enumerate(stage_data["questions"], start=1):
                    questions.append(
                        question_model(
                            stage=stage,
                            order=order,
                            key=question["key"],
                            prompt=question["prompt"],
                            help_text=question.get("help_text", ""),
                            kind=question["kind"],
                            choices=list(question.get("choices") or []),
                            required=question.get("required", True),
                        )
                    )
            question_model._default_manager.db_manager(db).bulk_create(questions)
    except IntegrityError:
        # A concurrent installer may have won the race for (slug, version); anything else is a
        # real error in the data and is raised as it is.
        existing = templates.filter(slug=data["slug"], version=data["version"]).first()
        if existing is None:
            raise
        return existing
    return template
