"""Forms for signing in, passwords and the profile. They validate shape; layout is crispy's.

The templates write the <form> element (CSRF token, ``next``), so every helper has
``form_tag = False`` and carries only the fields and the buttons.
"""

from __future__ import annotations

from typing import Any

from crispy_forms.helper import FormHelper
from crispy_forms.layout import Div, Field, Fieldset, Layout, Submit
from django import forms
from django.contrib.auth import authenticate, password_validation
from django.contrib.auth.forms import (
    AdminUserCreationForm,
    AuthenticationForm,
    PasswordChangeForm,
    PasswordResetForm,
    SetPasswordForm,
    UserChangeForm,
)
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from .models import EmailFrequency, User


def _helper(*fields: Any, submit: str) -> FormHelper:
    helper = FormHelper()
    helper.form_tag = False
    helper.layout = Layout(
        *fields,
        Div(Submit("submit", submit, css_class="btn-primary"), css_class="d-grid mt-3"),
    )
    return helper


class SignInForm(AuthenticationForm):
    """E-mail and password. Django's ``authenticate`` gets the request, so the sign-in throttle
    (django-axes, accounts/throttle.py) counts every failure and refuses a locked sign-in."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": (
            "That e-mail address and password do not match an account. Check both and try "
            "again, or reset your password."
        ),
    }

    username = forms.CharField(
        label="E-mail",
        widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"}),
    )

    def __init__(self, request: HttpRequest | None = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(request, *args, **kwargs)
        self.helper = _helper(Field("username"), Field("password"), submit="Sign in")


class ConfirmPasswordForm(forms.Form):
    """The signed-in person's password again, before a sensitive action (accounts/reauth.py).
    Checked through ``authenticate`` with the request, so the sign-in throttle counts a wrong
    one like a wrong sign-in."""

    error_messages = {
        "wrong_password": "That is not your password. Type it again, or sign out and reset it.",
    }

    password = forms.CharField(
        label="Your password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autofocus": True, "autocomplete": "current-password"}),
    )

    def __init__(self, *args: Any, request: HttpRequest, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request = request
        self.user = user
        self.helper = _helper(Field("password"), submit="Confirm")

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        confirmed = authenticate(self.request, username=self.user.email, password=password)
        if confirmed is None or confirmed.pk != self.user.pk:
            raise ValidationError(self.error_messages["wrong_password"], code="wrong_password")
        return password


class ProfileForm(forms.Form):
    """What a person says about themselves. Not a ModelForm on request.user: a ModelForm
    writes the submitted values into its instance while validating, so an invalid POST would
    show the rejected name in the navbar."""

    display_name = forms.CharField(
        label="Display name",
        max_length=User._meta.get_field("display_name").max_length,
        required=False,
        help_text="How teammates and reviewers see you. Leave empty to use the first part of "
        "your e-mail address.",
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
    )
    affiliation = forms.CharField(
        max_length=User._meta.get_field("affiliation").max_length,
        required=False,
        help_text=User._meta.get_field("affiliation").help_text,
        widget=forms.TextInput(attrs={"autocomplete": "organization"}),
    )
    expertise = forms.CharField(
        required=False,
        help_text=User._meta.get_field("expertise").help_text,
        widget=forms.Textarea(attrs={"rows": 4}),
    )
    # Not required: a form posted without it (an older page, a script) keeps the choice.
    email_frequency = forms.ChoiceField(
        label="Notification e-mails",
        choices=EmailFrequency.choices,
        required=False,
        widget=forms.RadioSelect,
        help_text="In-app notifications are always immediate: the bell in the menu shows them "
        "as they happen. This chooses only how e-mails reach you — one per notification, or one "
        "daily digest summarising the day's notifications.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.helper = _helper(
            Field("display_name"),
            Field("affiliation"),
            Field("expertise"),
            Fieldset("Notifications", Field("email_frequency"), css_id="notification-preferences"),
            submit="Save profile",
        )


class NewPasswordForm(forms.Form):
    """A password chosen twice and checked by Django's validators against who the person says
    they are: for sign-up and for accepting a review invitation."""

    password1 = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validation.password_validators_help_text_html(),
    )
    password2 = forms.CharField(
        label="Password again",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="The same password, to catch a typo.",
    )

    def check_new_password(self, *, email: str, display_name: str) -> None:
        first = self.cleaned_data.get("password1")
        second = self.cleaned_data.get("password2")
        if first and second and first != second:
            self.add_error(
                "password2",
                ValidationError(
                    "The two passwords differ. Type the same password twice.", code="mismatch"
                ),
            )
        elif second:
            # The similarity validator compares with what the person told us about themselves.
            try:
                password_validation.validate_password(
                    second, User(email=email, display_name=display_name)
                )
            except ValidationError as error:
                self.add_error("password2", error)


class SignUpForm(NewPasswordForm):
    """A new account: e-mail, name, the password twice, and optionally a course join code
    (carried from an invitation link, or typed)."""

    error_messages = {
        "email_taken": "An account with this e-mail address exists already. Sign in instead, "
        "or reset your password if you have forgotten it.",
    }

    email = forms.EmailField(
        label="E-mail",
        max_length=User._meta.get_field("email").max_length,
        widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"}),
    )
    display_name = forms.CharField(
        label="Display name",
        max_length=User._meta.get_field("display_name").max_length,
        help_text="How teammates and reviewers see you, e.g. 'Ada Lovelace'.",
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
    )
    code = forms.CharField(
        label="Course join code (optional)",
        max_length=16,
        required=False,
        help_text="From your course staff or your invitation e-mail. You can also join a course "
        "later.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.helper = _helper(
            Field("email"),
            Field("display_name"),
            Field("password1"),
            Field("password2"),
            Field("code", css_class="text-uppercase font-monospace"),
            submit="Create account",
        )

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip().lower()
        if User.objects.filter(email__iexact=email).exists():
            raise ValidationError(self.error_messages["email_taken"], code="email_taken")
        return email

    def clean_display_name(self) -> str:
        return self.cleaned_data["display_name"].strip()

    def clean_code(self) -> str:
        return self.cleaned_data["code"].strip().upper()

    def clean(self) -> dict[str, Any]:
        super().clean()
        self.check_new_password(
            email=self.cleaned_data.get("email") or "",
            display_name=self.cleaned_data.get("display_name") or "",
        )
        return self.cleaned_data

    def add_email_taken_error(self) -> None:
        self.add_error(
            "email", ValidationError(self.error_messages["email_taken"], code="email_taken")
        )


class PasswordChangeLayoutForm(PasswordChangeForm):
    """The old password is checked through ``authenticate`` with the request, so the sign-in
    throttle counts a wrong one: an open session is no unthrottled password oracle."""

    def __init__(self, *args: Any, request: HttpRequest, **kwargs: Any) -> None:
        self.request = request
        super().__init__(*args, **kwargs)
        self.helper = _helper(
            Field("old_password"),
            Field("new_password1"),
            Field("new_password2"),
            submit="Change password",
        )

    def clean_old_password(self) -> str:
        old_password = self.cleaned_data["old_password"]
        confirmed = authenticate(self.request, username=self.user.email, password=old_password)
        if confirmed is None or confirmed.pk != self.user.pk:
            raise ValidationError(
                self.error_messages["password_incorrect"], code="password_incorrect"
            )
        return old_password


class PasswordResetLayoutForm(PasswordResetForm):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["email"].label = "E-mail"
        self.fields["email"].widget.attrs["autofocus"] = True
        self.helper = _helper(Field("email"), submit="Send reset link")


class SetPasswordLayoutForm(SetPasswordForm):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["new_password1"].widget.attrs["autofocus"] = True
        self.helper = _helper(
            Field("new_password1"), Field("new_password2"), submit="Set new password"
        )


# --- Admin --------------------------------------------------------------------------------


def _clean_unique_email(form: forms.ModelForm) -> str:
    """The manager lower-cases addresses and sign-in matches them case-insensitively, so the
    admin must neither store upper case nor create a second account differing only in case."""
    email = (form.cleaned_data.get("email") or "").strip().lower()
    others = User.objects.filter(email__iexact=email)
    if form.instance.pk is not None:
        others = others.exclude(pk=form.instance.pk)
    if email and others.exists():
        raise ValidationError("A user with this e-mail address already exists.", code="unique")
    return email


class AdminUserAddForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email",)

    def clean_email(self) -> str:
        return _clean_unique_email(self)


class AdminUserChangeForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"

    def clean_email(self) -> str:
        return _clean_unique_email(self)
