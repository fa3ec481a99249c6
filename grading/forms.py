"""Forms of grading's rubric side: they check shape; the services check the rest."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from crispy_forms.bootstrap import StrictButton
from crispy_forms.helper import FormHelper
from crispy_forms.layout import Layout
from django import forms

from accounts.models import User

from .models import Scorers, TeamSees


class GradingSettingsForm(forms.Form):
    scorers = forms.ChoiceField(
        choices=Scorers.choices,
        widget=forms.RadioSelect,
        label="Who scores the rubric with their decision",
    )
    team_sees = forms.ChoiceField(
        choices=TeamSees.choices,
        widget=forms.RadioSelect,
        label="What the team sees once a grade is released",
        help_text="Reviewers' scores are never shown before a moderator releases a grade.",
    )
    moderator = forms.ModelChoiceField(
        queryset=User.objects.none(),
        required=False,
        label="Moderating TA",
        empty_label="Only the instructors",
        help_text="A TA of this course who sets final grades besides the instructors.",
    )

    def __init__(self, *args: Any, tas: Any, stages: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        moderator = self.fields["moderator"]
        assert isinstance(moderator, forms.ModelChoiceField)
        moderator.queryset = tas
        moderator.label_from_instance = lambda u: f"{u.name} <{u.email}>"  # type: ignore[assignment]
        self.stage_keys = [key for key, _ in stages]
        for key, title in stages:
            self.fields[f"weight-{key}"] = forms.DecimalField(
                label=f"Weight of “{title}” in the project total",
                min_value=Decimal(0),
                max_value=Decimal(100),
                decimal_places=2,
                initial=Decimal(1),
            )
        self.helper = FormHelper()
        self.helper.form_id = "grading-settings-form"
        self.helper.layout = Layout(
            "scorers",
            "team_sees",
            "moderator",
            *[f"weight-{key}" for key in self.stage_keys],
            StrictButton("Save the grading settings", type="submit", css_class="btn-primary"),
        )

    def weights(self) -> dict[str, Decimal]:
        return {key: self.cleaned_data[f"weight-{key}"] for key in self.stage_keys}


class GradeForm(forms.Form):
    points = forms.DecimalField(label="Grade (points)", decimal_places=2, max_digits=7)
    comment = forms.CharField(
        label="Comment to the team",
        required=False,
        max_length=10_000,
        widget=forms.Textarea(attrs={"rows": 4}),
    )
    release = forms.BooleanField(
        required=False,
        label="Release to the team",
        help_text="The team sees the grade (as the course's setting says) once it is released.",
    )

    def __init__(self, *args: Any, maximum: Decimal, button: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.maximum = maximum
        points = self.fields["points"]
        points.help_text = f"From 0 to {maximum}."
        points.widget.attrs.update({"min": "0", "max": str(maximum), "step": "0.01"})
        self.helper = FormHelper()
        self.helper.form_id = "grade-form"
        self.helper.layout = Layout(
            "points",
            "comment",
            "release",
            StrictButton(button, type="submit", css_class="btn-primary"),
        )

    def clean_points(self) -> Decimal:
        points = self.cleaned_data["points"]
        if points < 0 or points > self.maximum:
            raise forms.ValidationError(f"A grade is from 0 to {self.maximum} points.")
        return points
