from __future__ import annotations

from django import forms

from .models import DEFAULT_TOKEN_DAYS, MAX_TOKEN_DAYS, Scope, WebhookEvent


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=100, help_text="Where the token is used, e.g. “training notebook”."
    )
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[Scope.READ],
        help_text="Grant only what the program needs. Reading is needed for any request.",
    )
    days = forms.IntegerField(
        label="Expires after (days)",
        min_value=1,
        max_value=MAX_TOKEN_DAYS,
        initial=DEFAULT_TOKEN_DAYS,
    )


class WebhookForm(forms.Form):
    url = forms.URLField(
        label="Payload URL",
        max_length=500,
        assume_scheme="https",
        help_text="An https:// address on the public internet.",
    )
    events = forms.MultipleChoiceField(
        choices=WebhookEvent.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=list(WebhookEvent.values),
    )
