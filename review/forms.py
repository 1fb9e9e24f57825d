"""Forms of the project settings pages: they parse what a browser sends; the services decide what is allowed."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils.text import capfirst

from review.models import LabelClass, NotificationSettings, Project, Role
from review.serializers import MAX_CLASS_NAMES


@contextmanager
def refusal_reported(request: HttpRequest, failure: str) -> Iterator[None]:
    """Turn a refused change into an error message: `with refusal_reported(request, "It was not done"): ...`."""
    try:
        yield
    except ValidationError as exc:
        messages.error(request, f"{failure}: {' '.join(exc.messages)}")


def cleaned_or_refused(form: forms.Form) -> dict:
    """The form's cleaned data, or a ValidationError whose messages read "Field label: what is wrong"."""
    if not form.is_valid():
        raise ValidationError([message if field == "__all__" else
                               f"{form.fields[field].label or field.replace('_', ' ').capitalize()}: {message}"
                               for field, errors in form.errors.items() for message in errors])
    return form.cleaned_data


def _help(model, field: str) -> str:
    return model._meta.get_field(field).help_text


def _verbose(model, field: str) -> str:
    return capfirst(model._meta.get_field(field).verbose_name)


class ProjectCreateForm(forms.Form):
    name = forms.CharField(max_length=200)
    class_names = forms.CharField(
        required=False, label="Classes",
        help_text="Comma-separated, in the order the model numbers them; more can be added later.")

    def clean_class_names(self) -> list[str]:
        names = [name.strip() for name in self.cleaned_data["class_names"].split(",") if name.strip()]
        if len(names) > MAX_CLASS_NAMES:
            raise forms.ValidationError(f"At most {MAX_CLASS_NAMES} classes at once.")
        return names


class ProjectSettingsForm(forms.Form):
    name = forms.CharField(max_length=200, help_text=_help(Project, "name"))
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    holdout_fraction = forms.FloatField(min_value=0.0, max_value=0.9, label="Held-out fraction",
                                        help_text=_help(Project, "holdout_fraction"))
    retrain_after_reviews = forms.IntegerField(min_value=0, label="Fine-tune after this many reviews",
                                               help_text=_help(Project, "retrain_after_reviews"))
    infer_on_upload = forms.BooleanField(required=False, label="Predict new uploads",
                                         help_text=_help(Project, "infer_on_upload"))
    promote_only_clear_gains = forms.BooleanField(required=False, label="Promote only clear gains",
                                                  help_text=_help(Project, "promote_only_clear_gains"))
    tag_loss_limit = forms.FloatField(required=False, min_value=0.0, max_value=1.0,
                                      label="Refuse a clear loss on a tag of more than",
                                      widget=forms.NumberInput(attrs={"step": "0.01", "placeholder": "off"}),
                                      help_text=_help(Project, "tag_loss_limit"))
    score_threshold = forms.FloatField(min_value=0.01, max_value=0.99, label="Review threshold",
                                       widget=forms.NumberInput(attrs={"step": "0.01"}),
                                       help_text=_help(Project, "score_threshold"))


class LabelClassForm(forms.Form):
    name = forms.CharField(max_length=100)
    colour = forms.RegexField(r"^#[0-9a-fA-F]{6}$", required=False, help_text=_help(LabelClass, "colour"),
                              error_messages={"invalid": "The colour must look like #1f77b4."})


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.ANNOTATOR)


class ProjectDeleteForm(forms.Form):
    confirm_name = forms.CharField(label="Type the project's name to confirm")

    def __init__(self, *args, project: Project, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project

    def clean_confirm_name(self) -> str:
        if self.cleaned_data["confirm_name"].strip() != self.project.name:
            raise forms.ValidationError("That is not this project's name; nothing was deleted.")
        return self.cleaned_data["confirm_name"]


class AccountForm(forms.Form):
    email = forms.EmailField(required=False, label="E-mail address",
                             help_text="Where the e-mails below go; empty: none are sent. A new address counts "
                                       "once you open the link e-mailed to it.")
    email_mentions = forms.BooleanField(required=False, label=_verbose(NotificationSettings, "email_mentions"))
    email_send_backs = forms.BooleanField(required=False, label=_verbose(NotificationSettings, "email_send_backs"))
    email_assignments = forms.BooleanField(required=False, label=_verbose(NotificationSettings, "email_assignments"))
    email_jobs = forms.BooleanField(required=False, label=_verbose(NotificationSettings, "email_jobs"))
