"""Forms of the review pages. They validate shape only: who may do what, and in which state, is
the services' business (their errors come back onto these forms)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from crispy_forms.bootstrap import StrictButton
from crispy_forms.helper import FormHelper
from crispy_forms.layout import HTML, Field, Fieldset, Layout, LayoutObject
from django import forms
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator

from accounts.forms import NewPasswordForm
from accounts.models import User
from lifecycle.models import (
    ExpertInvitationPolicy,
    IndependentReview,
    NotPursuedGate,
    Question,
    StageDefinition,
)

from .models import DecisionOutcome, ReviewerRole

WHOLE_REVISION = ""


def _date_input() -> forms.DateInput:
    return forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


def _question_choices(questions: Iterable[Question], blank: str) -> list[tuple[str, str]]:
    return [(WHOLE_REVISION, blank)] + [
        (q.key, f"{n}. {Truncator(q.prompt).chars(90)}") for n, q in enumerate(questions, 1)
    ]


def _choice_field(form: forms.Form, name: str) -> forms.ModelChoiceField:
    return cast(forms.ModelChoiceField, form.fields[name])


class ReviewerChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.name} ({obj.email})"


class _PersonMixin:
    """Choose a person from a list, or type the e-mail address of an existing account."""

    def _clean_person(self, cleaned: dict[str, Any]) -> None:
        chosen, email = cleaned.get("reviewer"), (cleaned.get("email") or "").strip()
        if chosen and email:
            self.add_error("email", "Choose someone from the list or type an address, not both.")  # type: ignore[attr-defined]
        elif not chosen and not email:
            self.add_error("reviewer", "Choose a reviewer, or type their e-mail address below.")  # type: ignore[attr-defined]
        elif email:
            person = User.objects.filter(email__iexact=email, is_active=True).first()
            if person is None:
                self.add_error(  # type: ignore[attr-defined]
                    "email",
                    "Nobody has an account with this address. Invite them as a domain expert "
                    "instead.",
                )
            cleaned["person"] = person
        else:
            cleaned["person"] = chosen


class AssignmentForm(_PersonMixin, forms.Form):
    reviewer = ReviewerChoiceField(
        label="Reviewer",
        queryset=User.objects.none(),
        required=False,
        empty_label="— choose —",
        help_text="Course staff, and domain experts who accepted an invitation to this course.",
    )
    email = forms.EmailField(
        label="…or the e-mail address of someone with an account",
        required=False,
        widget=forms.EmailInput(attrs={"autocomplete": "off"}),
    )
    stage_definition = forms.ModelChoiceField(
        label="Reviews",
        queryset=StageDefinition.objects.none(),
        required=False,
        empty_label="The whole project (every stage)",
    )
    role = forms.ChoiceField(
        label="As",
        choices=ReviewerRole.choices,
        initial=ReviewerRole.STAFF,
        widget=forms.RadioSelect,
        help_text="Gates count course-staff and domain-expert approvals separately.",
    )
    expertise_tags = forms.CharField(
        label="Expertise",
        required=False,
        help_text="Comma-separated tags, e.g. “ethics, clinical”: questions owned by a tag need "
        "an approval from an expert who carries it.",
    )
    due_date = forms.DateField(label="Due", required=False, widget=_date_input())

    def __init__(
        self, *args: Any, candidates: Any, stages: Any, action: str = "", **kwargs: Any
    ) -> None:
        # The reviewers page shows this form beside the invitation form, which has fields of the
        # same names: each form's element ids carry its own prefix, so a label focuses its own
        # field. Only the ids: the posted field names stay as they are.
        kwargs.setdefault("auto_id", "assign-%s")
        super().__init__(*args, **kwargs)
        _choice_field(self, "reviewer").queryset = candidates
        _choice_field(self, "stage_definition").queryset = stages
        self.helper = FormHelper()
        self.helper.form_action = action
        self.helper.form_id = "assign-form"
        self.helper.layout = Layout(
            "reviewer",
            "email",
            "stage_definition",
            "role",
            "expertise_tags",
            "due_date",
            StrictButton("Assign the reviewer", type="submit", css_class="btn-primary"),
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        self._clean_person(cleaned)
        return cleaned


class ReassignForm(_PersonMixin, forms.Form):
    reviewer = ReviewerChoiceField(
        label="New reviewer", queryset=User.objects.none(), required=False, empty_label="— choose —"
    )
    email = forms.EmailField(label="…or their e-mail address", required=False)

    def __init__(self, *args: Any, candidates: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _choice_field(self, "reviewer").queryset = candidates

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        self._clean_person(cleaned)
        return cleaned


class InvitationForm(forms.Form):
    email = forms.EmailField(
        label="E-mail address", widget=forms.EmailInput(attrs={"autocomplete": "off"})
    )
    name = forms.CharField(label="Name", max_length=150, required=False)
    stage_definition = forms.ModelChoiceField(
        label="Reviews",
        queryset=StageDefinition.objects.none(),
        required=False,
        empty_label="The whole project (every stage)",
    )
    message = forms.CharField(
        label="Message",
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Why you are asking them: what consequences might the team not foresee?",
    )
    expertise_tags = forms.CharField(
        label="Expertise",
        required=False,
        help_text="Comma-separated tags, e.g. “ethics, clinical”: questions owned by a tag need "
        "an approval from an expert who carries it.",
    )
    due_date = forms.DateField(label="Due", required=False, widget=_date_input())

    def __init__(
        self,
        *args: Any,
        stages: Any,
        action: str = "",
        needs_confirmation: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("auto_id", "invite-%s")  # ids apart from the assignment form's
        super().__init__(*args, **kwargs)
        _choice_field(self, "stage_definition").queryset = stages
        self.helper = FormHelper()
        self.helper.form_action = action
        self.helper.form_id = "invite-form"
        label = "Ask staff to confirm and send" if needs_confirmation else "Send the invitation"
        self.helper.layout = Layout(
            "email",
            "name",
            "stage_definition",
            "message",
            "expertise_tags",
            "due_date",
            StrictButton(label, type="submit", css_class="btn-outline-primary"),
        )


class AcceptInvitationForm(NewPasswordForm):
    """A new person: how others see them, and a password (twice, Django's validators)."""

    # Shown, never read: a disabled field ignores whatever is posted under its name, and the
    # account gets the invitation's address (the service takes it from there, not from here).
    email = forms.EmailField(
        label="E-mail (the invited address)",
        disabled=True,
        required=False,
        help_text="You sign in with this address. The invitation belongs to it.",
    )
    display_name = forms.CharField(
        label="Your name",
        max_length=150,
        help_text="How the team and other reviewers see you, e.g. 'Dr Mei Chen'.",
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
    )

    def __init__(self, *args: Any, email: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.invited_email = email
        self.fields["email"].initial = email
        self.helper = FormHelper()
        self.helper.form_id = "accept-form"
        self.helper.layout = Layout(
            Field("email", readonly=True),
            Field("display_name", autofocus=True),
            "password1",
            "password2",
            StrictButton("Create my account and accept", type="submit", css_class="btn-primary"),
        )

    def clean(self) -> dict[str, Any]:
        super().clean()
        self.check_new_password(
            email=self.invited_email, display_name=self.cleaned_data.get("display_name", "")
        )
        return self.cleaned_data


class ConflictDeclarationForm(forms.Form):
    """Before a first decision on a project: does anything tie the expert to it?"""

    has_conflict = forms.TypedChoiceField(
        label="Conflicts of interest",
        choices=[
            ("no", "I have no conflict of interest with this project, its team or its outcome"),
            ("yes", "I have a possible conflict of interest, described below"),
        ],
        coerce=lambda value: value == "yes",
        widget=forms.RadioSelect,
    )
    details = forms.CharField(
        label="Details",
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="E.g. a personal or working tie to a team member, a financial interest in "
        "the outcome, a competing project. Course staff read this.",
    )

    def __init__(self, *args: Any, action: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.helper = FormHelper()
        self.helper.form_action = action
        self.helper.form_id = "conflict-form"
        self.helper.layout = Layout(
            "has_conflict",
            "details",
            StrictButton("Record my declaration", type="submit", css_class="btn-primary"),
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("has_conflict") and not (cleaned.get("details") or "").strip():
            self.add_error("details", "Say what the conflict is, so staff can judge it.")
        return cleaned


class ReaddressInvitationForm(forms.Form):
    email = forms.EmailField(label="New e-mail address")


class DecisionParts(LayoutObject):
    """The fragments other layers add to the decision (``reviews.decision_parts``: the
    rubric), read from ``form.parts_html`` when the form renders (markup rendered beforehand by
    a template, so escaped; not crispy's HTML, which would run it as a template)."""

    def __init__(self, form: DecisionForm) -> None:
        self.form = form
        self.fields: list[Any] = []

    def render(self, *args: Any, **kwargs: Any) -> SafeString:
        return mark_safe(self.form.parts_html)


class DecisionForm(forms.Form):
    """Approve, or request changes with a comment saying what must change; the parts other
    layers add (rubric scores) sit between the comment and the button."""

    parts_html = ""

    revision = forms.IntegerField(widget=forms.HiddenInput)
    change = forms.BooleanField(required=False, widget=forms.HiddenInput)
    outcome = forms.ChoiceField(
        label="Your decision", choices=DecisionOutcome.choices, widget=forms.RadioSelect
    )
    comment = forms.CharField(
        label="Comment",
        required=False,
        max_length=20_000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Required when you request changes: say what must change, and why (Markdown).",
    )
    question_key = forms.ChoiceField(label="About", required=False)

    def __init__(
        self, *args: Any, questions: Iterable[Question], action: str = "", **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        question_field = cast(forms.ChoiceField, self.fields["question_key"])
        # Lazy: a decision on the revision as a whole (the usual POST) validates without the
        # stage's questions, so a queryset passed here is read only when the form is shown or
        # a question is named.
        question_field.choices = lambda: _question_choices(questions, "The revision as a whole")
        self.helper = FormHelper()
        self.helper.form_action = action
        self.helper.form_id = "decision-form"
        button = "Change my decision" if self.initial.get("change") else "Record my decision"
        self.helper.layout = Layout(
            "revision",
            "change",
            "outcome",
            "comment",
            "question_key",
            DecisionParts(self),
            StrictButton(button, type="submit", css_class="btn-primary"),
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if (
            cleaned.get("outcome") == DecisionOutcome.REQUEST_CHANGES
            and not (cleaned.get("comment") or "").strip()
        ):
            self.add_error("comment", "Say what needs to change: a request for changes needs it.")
        return cleaned


class CommentForm(forms.Form):
    revision = forms.IntegerField(widget=forms.HiddenInput)
    question_key = forms.CharField(required=False, max_length=60, widget=forms.HiddenInput)
    parent = forms.IntegerField(required=False, widget=forms.HiddenInput)
    body = forms.CharField(label="Comment", max_length=20_000, widget=forms.Textarea)


class OverrideForm(forms.Form):
    justification = forms.CharField(
        label="Justification",
        max_length=10_000,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text="Why this stage passes without its quorum. It is shown on the stage for good "
        "and flagged in the audit trail and every export.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.helper = FormHelper()
        self.helper.form_id = "override-form"
        self.helper.layout = Layout(
            "justification",
            StrictButton(
                "Approve the stage by instructor override",
                type="submit",
                css_class="btn-warning",
            ),
        )


class CourseSettingsForm(forms.Form):
    allows_experts = forms.BooleanField(
        label="This course uses outside domain experts as reviewers", required=False
    )
    expert_invitations = forms.ChoiceField(
        label="Teams inviting domain experts",
        choices=ExpertInvitationPolicy.choices,
        widget=forms.RadioSelect,
    )
    team_experts_need_confirmation = forms.BooleanField(
        label="Course staff confirm an expert a team invited before the expert's decisions count",
        required=False,
        help_text="Recommended: otherwise a team can invite an address it controls and approve "
        "its own stages as their 'expert'.",
    )
    not_pursued_gate = forms.ChoiceField(
        label="Who approves a team's proposal “we should not build this”",
        choices=NotPursuedGate.choices,
        widget=forms.RadioSelect,
        required=False,
        help_text="Only an approved proposal concludes a project as not pursued.",
    )
    join_code_expires_on = forms.DateField(
        label="The join code works until (inclusive)",
        required=False,
        widget=_date_input(),
        help_text="Empty: until you rotate it.",
    )
    invitation_expiry_days = forms.IntegerField(
        label="Invitation links expire after (days)", min_value=1, max_value=90
    )
    reminder_interval_days = forms.IntegerField(
        label="Remind reviewers every (days)", min_value=1, max_value=60
    )
    reminder_limit = forms.IntegerField(
        label="Reminders before escalating to course staff",
        min_value=0,
        max_value=20,
    )
    # Blind review (issue 11): independent review for every stage (or as the template sets
    # each), one field per stage to set it apart, and anonymous reviewers towards the team.
    independent_review = forms.ChoiceField(
        label="Independent review on every stage",
        choices=[("", "As the lifecycle template sets each stage"), *IndependentReview.choices],
        required=False,
        widget=forms.RadioSelect,
        help_text="A reviewer who decides blind sees the other reviewers' decisions and comments "
        "only after deciding on the revision themselves.",
    )
    anonymous_reviewers = forms.BooleanField(
        label="Anonymous reviewers towards the team",
        required=False,
        help_text="The team sees “Reviewer A, domain expert” on its pages, its dossier and the "
        "notifications it gets; course staff and the audit trail keep the names.",
    )

    STAGE_PREFIX = "independent_review__"

    def __init__(self, *args: Any, stages: Iterable[StageDefinition] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stages = list(stages)
        short: dict[str, str] = {
            IndependentReview.OFF: "Off",
            IndependentReview.EXPERTS: "Domain experts decide blind",
            IndependentReview.EVERYONE: "Every reviewer decides blind",
        }
        stage_fields = []
        for stage in self.stages:
            name = self.STAGE_PREFIX + stage.key
            template_says = short.get(stage.independent_review, stage.independent_review)
            self.fields[name] = forms.ChoiceField(
                label=f"{stage.order}. {stage.title}",
                choices=[("", "As set for every stage above"), *short.items()],
                required=False,
                help_text=f"The template says: {template_says.lower()}.",
            )
            stage_fields.append(name)
        self.helper = FormHelper()
        self.helper.form_id = "course-settings-form"
        self.helper.layout = Layout(
            "allows_experts",
            "expert_invitations",
            "team_experts_need_confirmation",
            "not_pursued_gate",
            "invitation_expiry_days",
            "join_code_expires_on",
            "reminder_interval_days",
            "reminder_limit",
            Fieldset(
                "Blind review",
                "independent_review",
                HTML(
                    '<p class="small text-body-secondary mb-2" id="stage-blind-help">Set a stage '
                    "apart from the setting above:</p>"
                ),
                *stage_fields,
                "anonymous_reviewers",
                css_id="blind-review",
            ),
            StrictButton("Save the settings", type="submit", css_class="btn-primary"),
        )

    def clean_not_pursued_gate(self) -> str:
        # A form posted without it (an older page) keeps the course's setting.
        value = self.cleaned_data.get("not_pursued_gate")
        return value or self.initial.get("not_pursued_gate") or NotPursuedGate.STAGE

    @classmethod
    def initial_for(cls, course: Any, stages: Iterable[StageDefinition]) -> dict[str, Any]:
        initial = {name: getattr(course, name) for name in cls.base_fields}
        per_stage = course.independent_review_stages or {}
        for stage in stages:
            initial[cls.STAGE_PREFIX + stage.key] = per_stage.get(stage.key, "")
        return initial

    def settings(self) -> dict[str, Any]:
        """The cleaned data as course_update_settings takes it."""
        data = {k: v for k, v in self.cleaned_data.items() if not k.startswith(self.STAGE_PREFIX)}
        data["independent_review_stages"] = {
            stage.key: self.cleaned_data[self.STAGE_PREFIX + stage.key]
            for stage in self.stages
            if self.cleaned_data.get(self.STAGE_PREFIX + stage.key)
        }
        return data


class ProposalDecisionForm(DecisionForm):
    """Approve a "we should not build this" proposal (the project concludes once its gate is
    satisfied), or request changes to its reasoning."""

    def __init__(self, *args: Any, action: str = "", **kwargs: Any) -> None:
        super().__init__(*args, questions=[], action=action, **kwargs)
        del self.fields["question_key"]
        self.fields[
            "comment"
        ].help_text = "Required when you request changes: what does the reasoning miss?"
        self.helper.form_id = "proposal-decision-form"
        button = "Change my decision" if self.initial.get("change") else "Record my decision"
        self.helper.layout = Layout(
            "revision",
            "change",
            "outcome",
            "comment",
            StrictButton(button, type="submit", css_class="btn-primary"),
        )


# --- the reviewer quality loop: the team's rating and flag, the staff's resolution ------------
# Laid out by hand beside each review (reviews/partials/review_quality.html): their fields live
# inside the stage form and point at their own forms with form="…".


class ReviewRatingForm(forms.Form):
    helpfulness = forms.TypedChoiceField(
        coerce=int, choices=[(n, str(n)) for n in range(1, 6)], label="How helpful"
    )
    note = forms.CharField(required=False, max_length=500, label="Note")


class ReviewFlagForm(forms.Form):
    reason = forms.CharField(max_length=2000, label="Why is this review unfair?")


class FlagResolveForm(forms.Form):
    note = forms.CharField(max_length=2000, label="Resolution note", widget=forms.Textarea)
