from __future__ import annotations

from django import forms


class UploadForm(forms.Form):
    """Shape only: whether a file came; what it is, evidence.checks decides from its bytes."""

    file = forms.FileField(allow_empty_file=True)
