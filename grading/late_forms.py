"""The late-policy page's forms: shape only; the services validate the rest (their errors are
shown next to the fields they name). Dates and times are in the site's time zone, as every
date the app shows."""

from __future__ import annotations

from typing import Any

from crispy_forms.bootstrap import StrictButton
from crispy_forms.helper import FormHelper
from crispy_forms.layout import Layout
from django import forms

from lifecycle.models import Course, Project

from .models import LatePenaltyRule

DATETIME_FORMAT = "%Y-%m-%dT%H:%M"
PROJECT_CHOICES = 300


def _datetime_field(label: str, *, required: bool, help_text: str = "") -> forms.DateTimeField:
    return forms.DateTimeField(
        label=label,
        required=required,
        help_text=help_text,
        input_formats=[DATETIME_FORMAT, "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_FORMAT),
        error_messages={"invalid": "A date and time, e.g. 2026-12-04 23:59."},
    )


class LatePolicyForm(forms.Form):
    rule = forms.ChoiceField(
        label="Late rule", choices=LatePenaltyRule.choices, widget=forms.RadioSelect
    )
    percent_per_day = forms.DecimalField(
        label="Penalty per day late (%)",
        min_value=0,
        max_value=100,
        decimal_places=2,
        help_text="A started day counts whole: one second late is one day.",
    )
    cap_percent = forms.DecimalField(
        label="Cap (%)",
        min_value=0,
        max_value=100,
        decimal_places=2,
        help_text="The most a stage can lose, however late.",
    )

    def __init__(self, *args: Any, action: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.helper = FormHelper()
        self.helper.form_action = action
        self.helper.form_id = "late-rule-form"
        self.helper.layout = Layout(
            "rule",
            "percent_per_day",
            "cap_percent",
            StrictButton("Save the late rule", type="submit", css_class="btn-primary"),
        )


class DueDatesForm(forms.Form):
    """One due date per graded stage; an empty one removes the stage's due date."""

    def __init__(self, *args: Any, stages: dict[str, str], action: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stage_keys = list(stages)
        for key, title in stages.items():
            self.fields[f"due_{key}"] = _datetime_field(title, required=False)
        self.helper = FormHelper()
        self.helper.form_action = action
        self.helper.form_id = "due-dates-form"
        self.helper.layout = Layout(
            *self.fields,
            StrictButton("Save the due dates", type="submit", css_class="btn-primary"),
        )

    def due_dates(self) -> dict[str, Any]:
        return {key: self.cleaned_data.get(f"due_{key}") for key in self.stage_keys}


class ExtensionForm(forms.Form):
    project: forms.ModelChoiceField[Project] = forms.ModelChoiceField(
        label="Team (project)", queryset=Project.objects.none()
    )
    stage_key = forms.ChoiceField(label="Stage")
    due_at = _datetime_field("New due date", required=True)
    reason = forms.CharField(
        label="Reason", max_length=500, widget=forms.Textarea(attrs={"rows": 2})
    )

    def __init__(
        self, *args: Any, course: Course, stages: dict[str, str], action: str, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        projects = course.projects.order_by("title", "pk")
        self.fields["project"].queryset = projects  # type: ignore[attr-defined]
        # The drop-down lists the first PROJECT_CHOICES teams by title; the queryset above
        # still accepts any team of the course.
        shown = list(projects.values_list("pk", "title")[:PROJECT_CHOICES])
        self.fields["project"].widget.choices = [("", "Choose a team"), *shown]
        self.fields["stage_key"].choices = list(stages.items())  # type: ignore[attr-defined]
        self.helper = FormHelper()
        self.helper.form_action = action
        self.helper.form_id = "extension-form"
        self.helper.layout = Layout(
            "project",
            "stage_key",
            "due_at",
            "reason",
            StrictButton("Grant the extension", type="submit", css_class="btn-primary"),
        )
