"""Forms of the template editor. They check shape only; the document's rules (unique keys, a
satisfiable gate, Iterate targets) are the services' (lifecycle.template_data), and their
errors come back keyed by field path, which ``add_document_errors`` puts next to the field."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, cast

from django import forms

from .default_template import QUESTION_KINDS
from .models import Dismissal, IndependentReview, QuestionKind, RiskTier

KIND_CHOICES = [(k, QuestionKind(k).label) for k in QUESTION_KINDS]


class StartForm(forms.Form):
    source = forms.ChoiceField(
        label="Start from",
        choices=[
            ("current", "This course's current version"),
            ("default", "The lecture default"),
            ("course", "Another course's template (one you teach)"),
            ("empty", "Nothing: an empty template"),
        ],
    )
    source_course = forms.TypedChoiceField(
        label="Course to copy", coerce=int, required=False, empty_value=None
    )

    def __init__(self, *args: Any, courses: list[Any] = (), **kwargs: Any) -> None:  # type: ignore[assignment]
        super().__init__(*args, **kwargs)
        source_course = cast(forms.TypedChoiceField, self.fields["source_course"])
        source_course.choices = [("", "—")] + [(c.pk, c.title) for c in courses]


class StageForm(forms.Form):
    # The stage page shows three forms: ids of their own keep every label on its field.
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "stage_%s")
        super().__init__(*args, **kwargs)

    key = forms.SlugField(max_length=60)
    title = forms.CharField(max_length=200)
    summary = forms.CharField(max_length=300, required=False)
    guidance = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 10}), required=False, help_text="Markdown."
    )
    min_approvals = forms.IntegerField(min_value=1, max_value=20)
    min_staff_approvals = forms.IntegerField(min_value=0, max_value=20)
    min_expert_approvals = forms.IntegerField(min_value=0, max_value=20)
    dismissal = forms.ChoiceField(choices=Dismissal.choices, label="A new revision dismisses")
    independent_review = forms.ChoiceField(
        choices=IndependentReview.choices,
        initial=IndependentReview.OFF,
        label="Independent review",
        help_text="The template's default; a course can override it on its review settings page.",
    )
    requires_stakeholders = forms.BooleanField(required=False)
    allows_not_pursued = forms.BooleanField(
        required=False, label="Allows “we should not build this”"
    )
    is_iteration = forms.BooleanField(required=False, label="This is the Iterate stage")
    risk_min_severity = forms.IntegerField(
        min_value=0,
        max_value=5,
        required=False,
        initial=0,
        label="Risks traced from severity",
        help_text="Every risk of at least this severity (1-5) needs a mitigation and a linked "
        "test before the stage passes. 0 or empty: no such rule.",
    )
    loop_targets = forms.CharField(
        required=False,
        help_text="Iterate stage only: keys of earlier stages it may loop back to, comma-separated "
        "(empty: any earlier stage).",
    )

    rubric = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 12, "class": "font-monospace"}),
        label="Rubric (JSON)",
        help_text='How reviewers score this stage with their decision: {"criteria": [{"key": '
        '"stakeholders", "title": "…", "allow_na": false, "levels": [{"points": 0, "label": '
        '"Missing"}, …]}]}. Empty: the stage is not graded. Criterion keys are unique, every '
        "criterion has at least one level, points are numbers of at least 0.",
    )

    def clean_rubric(self) -> dict[str, Any]:
        text = (self.cleaned_data.get("rubric") or "").strip()
        if not text:
            return {}
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise forms.ValidationError(f"Not JSON: {error}") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("A rubric is a JSON object with a list of criteria.")
        return value

    def values(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data["loop_targets"] = [
            t.strip() for t in data.get("loop_targets", "").split(",") if t.strip()
        ]
        data["risk_min_severity"] = data.get("risk_min_severity") or 0
        return data


class QuestionForm(forms.Form):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "question_%s")
        super().__init__(*args, **kwargs)

    key = forms.SlugField(max_length=60)
    prompt = forms.CharField(max_length=500)
    help_text = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    kind = forms.ChoiceField(choices=KIND_CHOICES)
    choices = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text="Choice questions: one option per line.",
    )
    required = forms.BooleanField(required=False, initial=True)
    owner_expertise = forms.SlugField(
        max_length=60,
        required=False,
        label="Owner (expertise)",
        help_text="A reviewer with this expertise tag must approve the stage, e.g. “ethics”.",
    )

    def values(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data["choices"] = [c.strip() for c in data.get("choices", "").splitlines() if c.strip()]
        return data


class CriterionForm(forms.Form):
    """One rubric criterion, without JSON: its levels one per line, "points | label |
    description" (label and description optional)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "criterion_%s")
        super().__init__(*args, **kwargs)

    key = forms.SlugField(max_length=60)
    title = forms.CharField(max_length=200)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    allow_na = forms.BooleanField(required=False, label="Reviewers may score it “not applicable”")
    levels = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="One level per line: points | label | description, e.g. “2 | Adequate | "
        "Argued with evidence”. Points are numbers of at least 0.",
    )

    def clean_levels(self) -> list[dict[str, Any]]:
        levels = []
        for number, line in enumerate(self.cleaned_data["levels"].splitlines(), start=1):
            if not line.strip():
                continue
            points_text, _, rest = line.partition("|")
            label, _, description = rest.partition("|")
            try:
                points: float | int = float(points_text.strip())
            except ValueError:
                raise forms.ValidationError(
                    f"Line {number}: {points_text.strip()!r} is not a number of points."
                ) from None
            if points == int(points):
                points = int(points)
            levels.append(
                {"points": points, "label": label.strip(), "description": description.strip()}
            )
        if not levels:
            raise forms.ValidationError("A criterion needs at least one level.")
        return levels


class RuleForm(forms.Form):
    kind = forms.ChoiceField(
        choices=[
            ("min_approvals", "Minimum approvals by role"),
            ("question_owner", "An owner must approve a question"),
        ]
    )
    role = forms.ChoiceField(
        choices=[("expert", "Domain experts"), ("staff", "Course staff"), ("any", "Anyone")],
        required=False,
    )
    count = forms.IntegerField(min_value=1, max_value=20, initial=1)
    question = forms.ChoiceField(required=False)
    expertise = forms.SlugField(max_length=60, required=False)
    risk_tiers = forms.MultipleChoiceField(
        choices=RiskTier.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Applies if the risk tier is",
        help_text="None ticked: whatever the tier.",
    )
    domains = forms.CharField(
        required=False,
        label="Applies if the domain is",
        help_text="Comma-separated; empty: any domain.",
    )

    def __init__(self, *args: Any, questions: list[Mapping[str, Any]] = (), **kwargs: Any) -> None:  # type: ignore[assignment]
        kwargs.setdefault("auto_id", "rule_%s")
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["question"]).choices = [("", "—")] + [
            (q["key"], f"{q['key']}: {q['prompt'][:60]}") for q in questions
        ]

    def rule(self) -> dict[str, Any]:
        data = self.cleaned_data
        rule: dict[str, Any] = {"kind": data["kind"], "count": data["count"]}
        if data["kind"] == "min_approvals":
            rule["role"] = data.get("role") or "any"
        else:
            rule["question"] = data.get("question", "")
            rule["expertise"] = data.get("expertise", "")
        condition: dict[str, list[str]] = {}
        if data.get("risk_tiers"):
            condition["risk_tier"] = list(data["risk_tiers"])
        domains = [d.strip().lower() for d in data.get("domains", "").split(",") if d.strip()]
        if domains:
            condition["domain"] = domains
        if condition:
            rule["applies_if"] = condition
        return rule


class ImportForm(forms.Form):
    file = forms.FileField(label="Template JSON", help_text="Up to 1 MB.")


class AttributesForm(forms.Form):
    # The guided questions of the issue: the tier follows from what a wrong output can cost.
    risk_tier = forms.ChoiceField(
        choices=RiskTier.choices,
        help_text=(
            "High: could a wrong output harm someone's health, safety, liberty, livelihood or "
            "rights, or fall on a vulnerable group? Medium: could it cost people money, time or "
            "opportunities they can contest? Low: are errors cheap, noticed and easily undone?"
        ),
    )
    domain = forms.SlugField(
        max_length=60,
        required=False,
        help_text="Whose field is it? One word, e.g. health, education, finance.",
    )


def add_document_errors(
    form: forms.Form, errors: Mapping[str, list[str]], prefix: str
) -> list[str]:
    """Put each error whose path is ``prefix.<field>`` next to that field; return the rest
    (shown above the form, with their paths)."""
    rest: list[str] = []
    for path, messages in errors.items():
        name = path[len(prefix) + 1 :] if prefix and path.startswith(prefix + ".") else ""
        field, _, rest_of_path = name.partition(".")
        if name in form.fields:
            for message in messages:
                form.add_error(name, message)
        elif field in form.fields and rest_of_path:
            # A structured field (the rubric): the error names the part of it that is wrong.
            for message in messages:
                form.add_error(field, f"{rest_of_path}: {message}")
        else:
            rest.extend(f"{path or 'template'}: {m}" for m in messages)
    return rest
