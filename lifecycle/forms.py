"""Forms validate shape only; completeness and state are the services' business."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, cast

from crispy_forms.bootstrap import StrictButton
from crispy_forms.helper import FormHelper
from crispy_forms.layout import HTML, Div, Field, Fieldset, Layout, LayoutObject, Submit
from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from .answers import YES_NO_UNSURE
from .models import (
    STAKEHOLDER_FIELDS,
    Outcome,
    Question,
    QuestionKind,
    Stakeholder,
    StakeholderKind,
)

CHOICE_SUFFIX = "__choice"
JUSTIFICATION_SUFFIX = "__justification"


def _label(question: Question) -> str:
    return question.prompt


def add_service_errors(form: forms.BaseForm, errors: Mapping[str, Iterable[str]]) -> None:
    """Show a service's InvalidAnswers next to the fields they name; the rest at the top."""
    for key, messages in errors.items():
        field = key if key in form.fields else None
        for message in messages:
            form.add_error(field, message)


class QuestionExtras(LayoutObject):
    """Under a question: the slot where autosave says it was not saved, then the feedback on
    it (``form.feedback``, markup rendered beforehand by a template, so escaped). Read when the
    form renders, so a view may set the feedback after building the form. Not crispy's HTML:
    that runs its text as a template, and a reviewer's comment may hold "{{"."""

    def __init__(self, form: StageAnswersForm, key: str) -> None:
        self.form = form
        self.key = key
        self.fields: list[Any] = []

    def render(self, *args: Any, **kwargs: Any) -> SafeString:
        slot = format_html(
            '<div class="invalid-feedback d-block autosave-error" id="autosave-error-{}" '
            'aria-live="polite"></div>',
            self.key,
        )
        extra = self.form.feedback.get(self.key, "")
        return mark_safe(slot + extra)


class StageAnswersForm(forms.Form):
    """One field per question (two for yes/no/unsure). Nothing is required here: drafts may be
    half-written, and the submit service names what is missing. ``feedback`` is markup shown
    under a question (the reviewers' reasons and open threads), keyed by question key."""

    draft_version = forms.IntegerField(widget=forms.HiddenInput, min_value=0)

    def __init__(
        self,
        *args: Any,
        questions: Iterable[Question],
        disabled: bool = False,
        feedback: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.questions = list(questions)
        self.feedback = dict(feedback or {})
        layout: list[Any] = []
        for number, question in enumerate(self.questions, start=1):
            layout.append(self._add_question(number, question, disabled))
        self.helper = FormHelper()
        self.helper.form_tag = False
        self.helper.disable_csrf = True
        self.helper.layout = Layout(Field("draft_version"), *layout)

    def _add_question(self, number: int, q: Question, disabled: bool) -> Any:
        required_mark = " *" if q.required else ""
        label = f"{number}. {_label(q)}{required_mark}"
        common: dict[str, Any] = {
            "required": False,
            "disabled": disabled,
            "help_text": q.help_text,
        }
        key = q.key
        if q.kind == QuestionKind.YES_NO_UNSURE:
            self.fields[key + CHOICE_SUFFIX] = forms.ChoiceField(
                label=label,
                choices=[(c, c.capitalize()) for c in YES_NO_UNSURE],
                widget=forms.RadioSelect,
                **common,
            )
            self.fields[key + JUSTIFICATION_SUFFIX] = forms.CharField(
                label="Justification",
                required=False,
                disabled=disabled,
                widget=forms.Textarea(attrs={"rows": 3, "data-markdown": "1"}),
                help_text="Why? What does your answer rest on? (Markdown)",
            )
            return Div(
                Field(key + CHOICE_SUFFIX, wrapper_class="mb-1"),
                Field(key + JUSTIFICATION_SUFFIX),
                *self._after(key),
                css_class="question border-start border-3 ps-3 mb-4",
                css_id=f"q-{key}",
            )
        if q.kind == QuestionKind.SHORT_TEXT:
            field: forms.Field = forms.CharField(max_length=500, **common)
        elif q.kind == QuestionKind.LONG_TEXT:
            field = forms.CharField(
                max_length=50_000,
                widget=forms.Textarea(attrs={"rows": 5, "data-markdown": "1"}),
                **common,
            )
        elif q.kind == QuestionKind.SINGLE_CHOICE:
            field = forms.ChoiceField(
                choices=[(c, c) for c in q.choices], widget=forms.RadioSelect, **common
            )
        elif q.kind == QuestionKind.MULTIPLE_CHOICE:
            field = forms.MultipleChoiceField(
                choices=[(c, c) for c in q.choices],
                widget=forms.CheckboxSelectMultiple,
                **common,
            )
        elif q.kind == QuestionKind.NUMBER:
            field = forms.DecimalField(
                max_value=Decimal("1e15"),
                min_value=Decimal("-1e15"),
                widget=forms.NumberInput(attrs={"step": "any"}),
                **common,
            )
        elif q.kind == QuestionKind.URL:
            field = forms.URLField(max_length=2000, assume_scheme="https", **common)
        else:
            field = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), **common)
        field.label = label
        self.fields[key] = field
        return Div(
            Field(key),
            *self._after(key),
            css_class="question border-start border-3 ps-3 mb-4",
            css_id=f"q-{key}",
        )

    def _after(self, key: str) -> list[Any]:
        return [QuestionExtras(self, key)]

    def question_fields(self, question: Question) -> list[str]:
        if question.kind == QuestionKind.YES_NO_UNSURE:
            return [question.key + CHOICE_SUFFIX, question.key + JUSTIFICATION_SUFFIX]
        return [question.key]

    def valid_answers(self) -> tuple[dict[str, Any], dict[str, list[str]]]:
        """After is_valid(), whatever it said: the answers of the questions whose fields are
        all valid, and the messages of the others keyed by question key (autosave saves the
        first and keeps the second in the form)."""
        errors: dict[str, list[str]] = {}
        for q in self.questions:
            messages = [
                str(m) for name in self.question_fields(q) for m in self.errors.get(name, [])
            ]
            if messages:
                errors[q.key] = messages
        answers = {k: v for k, v in self.answers().items() if k not in errors}
        return answers, errors

    def question_blocks(self) -> list[dict[str, Any]]:
        """What templates/lifecycle/partials/stage_form.html prints: per question, its fields
        with their values, options and errors already worked out. The stage page renders the
        form from these in one template, without crispy's and the widgets' templates per field
        (they were half of the page's time); the markup is crispy's bootstrap5 markup."""
        blocks = []
        for question in self.questions:
            key = question.key
            if question.kind == QuestionKind.YES_NO_UNSURE:
                names = [key + CHOICE_SUFFIX, key + JUSTIFICATION_SUFFIX]
                wrappers = ["mb-3 mb-1", "mb-3"]
            else:
                names, wrappers = [key], ["mb-3"]
            fields = [
                self._field_view(name, css) for name, css in zip(names, wrappers, strict=True)
            ]
            extras = QuestionExtras(self, key).render()
            blocks.append({"key": key, "fields": fields, "extras": extras})
        return blocks

    def _field_view(self, name: str, wrapper_class: str) -> dict[str, Any]:
        field = self.fields[name]
        bound = self[name]
        widget = field.widget
        errors = list(bound.errors) if self.is_bound else []
        value = bound.value()
        view: dict[str, Any] = {
            "name": name,
            "id": "id_" + name,
            "label": field.label,
            "help_text": field.help_text,
            "errors": errors,
            "disabled": field.disabled,
            "wrapper_class": wrapper_class,
        }
        describedby = []
        if field.help_text:
            describedby.append(f"id_{name}_helptext")
        if errors:
            describedby.append(f"id_{name}_error")
        view["describedby"] = " ".join(describedby)
        if isinstance(widget, (forms.RadioSelect, forms.CheckboxSelectMultiple)):
            values = value if isinstance(value, (list, tuple)) else [value]
            chosen = {str(v) for v in values if v not in (None, "")}
            view["kind"] = "choices"
            view["input_type"] = "checkbox" if widget.allow_multiple_selected else "radio"
            view["options"] = [
                {"value": str(v), "label": label, "checked": str(v) in chosen, "n": i}
                for i, (v, label) in enumerate(
                    cast(list[Any], cast(forms.ChoiceField, field).choices)
                )
            ]
            return view
        text = widget.format_value(value)
        view["value"] = "" if text is None else text
        if isinstance(widget, forms.Textarea):
            view["kind"] = "textarea"
            view["rows"] = widget.attrs.get("rows", 10)
            view["maxlength"] = getattr(field, "max_length", None)
            return view
        view["kind"] = "input"
        if isinstance(widget, forms.NumberInput):
            view["input_type"], view["css"] = "number", "numberinput"
            view["attrs"] = ' step="any" min="-1E+15" max="1E+15"'
        elif isinstance(widget, forms.URLInput):
            view["input_type"], view["css"] = "url", "urlinput"
        elif isinstance(widget, forms.DateInput):
            view["input_type"], view["css"] = "date", "dateinput"
        else:
            view["input_type"], view["css"] = "text", "textinput"
        view["maxlength"] = getattr(field, "max_length", None)
        return view

    @staticmethod
    def initial_from_answers(
        answers: Mapping[str, Any], questions: Iterable[Question], version: int
    ) -> dict[str, Any]:
        initial: dict[str, Any] = {"draft_version": version}
        for q in questions:
            value = answers.get(q.key)
            if value is None:
                continue
            if q.kind == QuestionKind.YES_NO_UNSURE and isinstance(value, Mapping):
                initial[q.key + CHOICE_SUFFIX] = value.get("choice", "")
                initial[q.key + JUSTIFICATION_SUFFIX] = value.get("justification", "")
            else:
                initial[q.key] = value
        return initial

    def answers(self) -> dict[str, Any]:
        """The cleaned form as answers keyed by question (blank ones as blanks, so that
        clearing a field clears the draft)."""
        data = self.cleaned_data
        answers: dict[str, Any] = {}
        for q in self.questions:
            if q.kind == QuestionKind.YES_NO_UNSURE:
                choice = data.get(q.key + CHOICE_SUFFIX) or ""
                justification = data.get(q.key + JUSTIFICATION_SUFFIX) or ""
                answers[q.key] = (
                    {"choice": choice, "justification": justification}
                    if choice or justification.strip()
                    else None
                )
                continue
            value = data.get(q.key)
            if isinstance(value, Decimal):
                value = str(value)
            elif isinstance(value, dt.date):
                value = value.isoformat()
            answers[q.key] = value if value not in (None, "", []) else None
        return answers

    def add_answer_errors(self, errors: Mapping[str, list[str]]) -> None:
        """Show the service's errors next to their fields."""
        by_key = {q.key: q for q in self.questions}
        for key, messages in errors.items():
            q = by_key.get(key)
            if q is None:
                for message in messages:
                    self.add_error(None, message)
                continue
            field = key + CHOICE_SUFFIX if q.kind == QuestionKind.YES_NO_UNSURE else key
            if q.kind == QuestionKind.YES_NO_UNSURE and any("Justify" in m for m in messages):
                field = key + JUSTIFICATION_SUFFIX
            for message in messages:
                if field in self.fields:
                    self.add_error(field, message)


class StakeholderForm(forms.ModelForm):
    class Meta:
        model = Stakeholder
        fields = list(STAKEHOLDER_FIELDS)
        widgets = {
            "interests": forms.Textarea(attrs={"rows": 2}),
            "possible_harms": forms.Textarea(attrs={"rows": 2}),
            "possible_benefits": forms.Textarea(attrs={"rows": 2}),
            "consultation": forms.Textarea(attrs={"rows": 2}),
        }
        help_texts = {
            "name": "A person, role or group, e.g. 'triage nurses' or 'families of patients'.",
            "consultation": "Interviews, a survey, a workshop… and what you learned.",
        }

    def __init__(self, *args: Any, submit_label: str = "Add stakeholder", **kwargs: Any):
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["kind"]).choices = StakeholderKind.choices
        self.helper = FormHelper()
        self.helper.layout = Layout(
            Fieldset(
                "",
                "name",
                "kind",
                "interests",
                "possible_harms",
                "possible_benefits",
                "consulted",
                "consultation",
            ),
            Submit("save", submit_label),
        )

    def service_fields(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in self.Meta.fields}


class LoopBackForm(forms.Form):
    to_order = forms.TypedChoiceField(label="Loop back to stage", coerce=int)
    reason = forms.CharField(
        label="What did you learn, and why go back there?",
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=5000,
    )

    def __init__(
        self, *args: Any, stages: Iterable[tuple[int, str]], action: str = "", **kwargs: Any
    ) -> None:
        # The Iterate panel shows this form beside ConcludeForm: both have a "reason".
        kwargs.setdefault("auto_id", "loop_%s")
        super().__init__(*args, **kwargs)
        to_order = cast(forms.TypedChoiceField, self.fields["to_order"])
        to_order.choices = [(o, f"{o}. {t}") for o, t in stages]
        self.helper = FormHelper()
        self.helper.form_action = action
        self.helper.form_id = "loop-back-form"
        self.helper.layout = Layout(
            "to_order",
            "reason",
            StrictButton("Start a new cycle", type="submit", name="loop", css_class="btn-primary"),
        )


class ConcludeForm(forms.Form):
    """The outcome a team records itself: deployed and monitored. ("Not pursued" is a proposal
    the reviewers approve: NotPursuedProposalForm.)"""

    outcome = forms.ChoiceField(choices=Outcome.choices, widget=forms.RadioSelect)
    reason = forms.CharField(
        label="Why? What did you learn?",
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=5000,
    )

    def __init__(
        self,
        *args: Any,
        outcomes: Iterable[str] = tuple(Outcome.values),
        action: str = "",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("auto_id", "conclude_%s")
        super().__init__(*args, **kwargs)
        outcomes = list(outcomes)
        outcome_field = cast(forms.ChoiceField, self.fields["outcome"])
        outcome_field.choices = [(o, OUTCOME_LABELS[Outcome(o)]) for o in outcomes]
        self.helper = FormHelper()
        self.helper.form_action = action
        self.helper.form_id = "conclude-form"
        button = StrictButton(
            "Record the outcome",
            type="submit",
            name="conclude",
            css_class="btn-outline-dark",
        )
        self.helper.layout = Layout(
            "outcome",
            "reason",
            button,
        )


OUTCOME_LABELS = {
    Outcome.DEPLOYED: "Deployed and monitored: the Iterate stage is approved, we are done",
    Outcome.NOT_PURSUED: "Not pursued: we should not build this",
}


# --- The team workspace: joining courses, starting projects, inviting students --------------


class JoinCourseForm(forms.Form):
    code = forms.CharField(
        label="Join code",
        max_length=16,
        help_text="The 8-character code your course staff gave you, e.g. K7PQ2MXA.",
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "autocapitalize": "characters", "spellcheck": "false"}
        ),
    )

    def __init__(self, *args: Any, action: str = "", inline: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.helper = FormHelper()
        self.helper.form_action = action
        self.helper.form_id = "join-form"
        if inline:
            self.fields["code"].help_text = ""
        self.helper.layout = Layout(
            Field("code", css_class="text-uppercase font-monospace"),
            StrictButton("Join the course", type="submit", css_class="btn-primary"),
        )

    def clean_code(self) -> str:
        return self.cleaned_data["code"].strip().upper()


class TeammateChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.name} ({obj.email})"


class ProjectCreateForm(forms.Form):
    title = forms.CharField(
        max_length=200,
        help_text="What the system would do, e.g. 'Referral triage assistant'.",
    )
    summary = forms.CharField(
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="A sentence or two: the problem, and for whom.",
    )
    members = TeammateChoiceField(
        label="Teammates",
        queryset=None,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Students of this course who work on the project with you. You are on the "
        "team already.",
    )

    def __init__(self, *args: Any, teammates: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(TeammateChoiceField, self.fields["members"]).queryset = teammates
        self.helper = FormHelper()
        self.helper.layout = Layout(
            "title",
            "summary",
            "members",
            StrictButton("Start the project", type="submit", css_class="btn-primary"),
        )


class InviteStudentsForm(forms.Form):
    MAX_ADDRESSES = 200

    emails = forms.CharField(
        label="E-mail addresses",
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        help_text="One per line, or separated by commas. Each person gets an e-mail with the "
        "course's join link.",
    )

    def __init__(self, *args: Any, action: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.helper = FormHelper()
        self.helper.form_action = action
        self.helper.form_id = "invite-form"
        self.helper.layout = Layout(
            "emails",
            StrictButton("Send invitations", type="submit", css_class="btn-outline-primary"),
        )

    def clean_emails(self) -> list[str]:
        tokens = [
            token.strip("<>\"'()") for token in re.split(r"[\s,;]+", self.cleaned_data["emails"])
        ]
        addresses: list[str] = []
        invalid: list[str] = []
        for token in tokens:
            if not token:
                continue
            try:
                validate_email(token)
            except ValidationError:
                invalid.append(token)
                continue
            if token.lower() not in addresses:
                addresses.append(token.lower())
        if invalid:
            raise ValidationError(
                "These are not e-mail addresses: %(invalid)s. Correct or remove them.",
                code="invalid",
                params={"invalid": ", ".join(invalid)},
            )
        if not addresses:
            raise ValidationError("Enter at least one e-mail address.", code="required")
        if len(addresses) > self.MAX_ADDRESSES:
            raise ValidationError(
                "At most %(max)s addresses at a time.",
                code="too_many",
                params={"max": self.MAX_ADDRESSES},
            )
        return addresses


# --- "We should not build this" and team membership ---------------------------------------


class NotPursuedProposalForm(forms.Form):
    """The team's proposal that the project should not be built, guided by the lecture's
    questions. Shape only: lifecycle.proposals decides what a complete proposal is."""

    reasons = forms.MultipleChoiceField(
        label="Which of the lecture's questions does this project fail?",
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )
    reasoning = forms.CharField(
        label="Why should this not be built? What did you learn?",
        help_text="Who would be harmed, what an algorithm cannot capture, who the “we” is that "
        "would be comfortable with a machine deciding.",
        widget=forms.Textarea(attrs={"rows": 4}),
        max_length=20_000,
        required=False,
    )
    alternative = forms.CharField(
        label="What could be done instead? (optional)",
        help_text="Perhaps a social rather than a technical solution.",
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=20_000,
        required=False,
    )

    def __init__(
        self,
        *args: Any,
        reasons: Iterable[tuple[str, str]] = (),
        action: str = "",
        button: str = "Propose: we should not build this",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("auto_id", "proposal_%s")
        super().__init__(*args, **kwargs)
        cast(forms.MultipleChoiceField, self.fields["reasons"]).choices = list(reasons)
        self.helper = FormHelper()
        self.helper.form_action = action
        self.helper.form_id = "proposal-form"
        self.helper.layout = Layout(
            "reasons",
            "reasoning",
            "alternative",
            HTML(
                '<p class="form-text">Reviewers approve or request changes, like a stage; '
                "only their approval concludes the project as not pursued.</p>"
            ),
            StrictButton(button, type="submit", name="propose", css_class="btn-outline-danger"),
        )

    def answers(self) -> dict[str, Any]:
        return {k: self.cleaned_data[k] for k in ("reasons", "reasoning", "alternative")}


class TeamMemberForm(forms.Form):
    """A classmate to add to a team, or (for course staff) someone to take off one."""

    email = forms.EmailField(label="Classmate's e-mail address", max_length=254)
    # The teams on the course page's current page are offered; any team of the course is
    # accepted (the view looks it up within the course).
    project = forms.IntegerField(label="Team", required=False, widget=forms.Select)

    def __init__(
        self,
        *args: Any,
        projects: Iterable[tuple[int, str]] | None = None,
        action: str = "",
        form_id: str = "team-member-form",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("auto_id", "team_%s")
        super().__init__(*args, **kwargs)
        self.helper = FormHelper()
        self.helper.form_action = action
        self.helper.form_id = form_id
        if projects is None:
            del self.fields["project"]
            self.helper.layout = Layout(
                "email",
                StrictButton("Add to the team", type="submit", css_class="btn-outline-primary"),
            )
        else:
            field = self.fields["project"]
            cast(forms.Select, field.widget).choices = list(projects)
            field.required = True
            self.fields["email"].label = "Student's e-mail address"
            self.helper.layout = Layout(
                "project",
                "email",
                Div(
                    StrictButton(
                        "Add to the team",
                        type="submit",
                        name="action",
                        value="add",
                        css_class="btn-outline-primary btn-sm",
                    ),
                    StrictButton(
                        "Remove from the team",
                        type="submit",
                        name="action",
                        value="remove",
                        css_class="btn-outline-danger btn-sm",
                    ),
                    css_class="d-flex gap-2",
                ),
            )


class SubmitForm(forms.Form):
    """Submitting a stage. After a request for changes the team answers the reviewers: what
    changed and why, overall (required then) and, optionally, per open thread."""

    draft_version = forms.IntegerField(widget=forms.HiddenInput, min_value=0, required=False)
    response = forms.CharField(
        label="Your response to the reviewers",
        required=False,
        max_length=10_000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="What changed and why, in a few sentences. Reviewers read it at the top of "
        "the review page, beside what changed since their last decision. (Markdown)",
    )

    def __init__(
        self,
        *args: Any,
        response_required: bool = False,
        threads: Iterable[Any] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.response_required = response_required
        self.fields["response"].required = response_required
        self.thread_fields: list[tuple[Any, str]] = []
        for thread in threads:
            name = f"thread_{thread.id}"
            self.fields[name] = forms.CharField(
                label=f"On “{thread.label}” — {thread.excerpt}",
                required=False,
                max_length=10_000,
                widget=forms.Textarea(attrs={"rows": 2}),
            )
            self.thread_fields.append((thread, name))
        self.fields["response"].error_messages["required"] = (
            "The reviewers asked for changes: tell them, in a few sentences, what you changed "
            "and why."
        )

    def thread_responses(self) -> dict[int, str]:
        return {
            thread.id: self.cleaned_data[name]
            for thread, name in self.thread_fields
            if self.cleaned_data.get(name, "").strip()
        }
