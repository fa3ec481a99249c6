"""The risk register's form (shape only; lifecycle.risks validates against the project)."""

from __future__ import annotations

from typing import Any

from crispy_forms.helper import FormHelper
from crispy_forms.layout import Fieldset, Layout, Submit
from django import forms

from .models import Likelihood, Project, Severity
from .risks import link_choices


class RiskForm(forms.Form):
    title = forms.CharField(max_length=200, help_text="The harm, in a sentence.")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    stakeholders = forms.TypedMultipleChoiceField(
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Stakeholders it harms",
    )
    likelihood = forms.TypedChoiceField(choices=Likelihood.choices, coerce=int)
    severity = forms.TypedChoiceField(choices=Severity.choices, coerce=int)
    owner = forms.TypedChoiceField(coerce=int, required=False, empty_value=None, label="Owner")
    mitigation = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    data_link = forms.ChoiceField(required=False, label="Data decision (stage 3)")
    test_link = forms.ChoiceField(
        required=False, label="Test that measures it per subgroup (stage 5)"
    )
    monitor_link = forms.ChoiceField(required=False, label="Monitor and alert (stage 6)")

    def __init__(
        self, *args: Any, project: Project, submit_label: str = "Add risk", **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["stakeholders"].choices = [  # type: ignore[attr-defined]
            (s.pk, s.name) for s in project.stakeholders.all()
        ]
        self.fields["owner"].choices = [("", "—")] + [  # type: ignore[attr-defined]
            (m.pk, m.name) for m in project.members.all()
        ]
        for link, choices in link_choices(project).items():
            self.fields[link].choices = [("", "— not linked yet —"), *choices]  # type: ignore[attr-defined]
        self.helper = FormHelper()
        self.helper.layout = Layout(
            Fieldset(
                "",
                "title",
                "description",
                "stakeholders",
                "likelihood",
                "severity",
                "owner",
                "mitigation",
                "data_link",
                "test_link",
                "monitor_link",
            ),
            Submit("save", submit_label),
        )

    def service_fields(self) -> dict[str, Any]:
        return dict(self.cleaned_data)

    @staticmethod
    def initial_for(risk: Any) -> dict[str, Any]:
        return {
            "title": risk.title,
            "description": risk.description,
            "stakeholders": [s.pk for s in risk.stakeholders.all()],
            "likelihood": risk.likelihood,
            "severity": risk.severity,
            "owner": risk.owner_id,
            "mitigation": risk.mitigation,
            "data_link": risk.data_link,
            "test_link": risk.test_link,
            "monitor_link": risk.monitor_link,
        }
