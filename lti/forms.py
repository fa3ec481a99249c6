from __future__ import annotations

from typing import Any

from django import forms

NEW = "new"


class LinkContextForm(forms.Form):
    """Link the platform's course to one of the instructor's boards, or make a new one."""

    course = forms.ChoiceField(label="Board", widget=forms.RadioSelect)
    title = forms.CharField(
        label="Title of the new board", max_length=200, required=False, strip=True
    )

    def __init__(self, *args: Any, courses: list[Any], default_title: str = "", **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.courses = {str(c.pk): c for c in courses}
        course_field: Any = self.fields["course"]
        course_field.choices = [(str(c.pk), f"{c.title} ({c.code})") for c in courses] + [
            (NEW, "A new board for this course")
        ]
        self.fields["title"].initial = default_title


class DeepLinkForm(forms.Form):
    course = forms.ChoiceField(label="Board", widget=forms.RadioSelect)

    def __init__(self, *args: Any, courses: list[Any], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.courses = {str(c.pk): c for c in courses}
        course_field: Any = self.fields["course"]
        course_field.choices = [(str(c.pk), f"{c.title} ({c.code})") for c in courses]
