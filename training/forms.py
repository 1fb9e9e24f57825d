"""The forms that bring a model trained elsewhere into a project (the models page)."""
from __future__ import annotations

from django import forms
from django.conf import settings

from inference.architectures import ARCHITECTURES, COCO_CLASSES, coco_class_for, coco_weights_found


class WeightsUploadForm(forms.Form):
    weights = forms.FileField(help_text="A state dict: .safetensors, or a torch file (loaded with weights_only).")
    architecture = forms.ChoiceField(required=False, choices=[("", "found from the file")] +
                                     [(name, name) for name in sorted(ARCHITECTURES)])
    class_names = forms.CharField(
        required=False, label="Class names",
        help_text="Comma-separated, in class-id order; leave empty to use the names stored in the weights.")
    note = forms.CharField(max_length=255, required=False)
    activate = forms.BooleanField(required=False, label="Make it the active model")

    def clean_weights(self):
        weights = self.cleaned_data["weights"]
        if weights.size > settings.MAX_WEIGHTS_BYTES:
            raise forms.ValidationError(f"The file is {weights.size / 1e6:.0f} MB; the limit is "
                                        f"{settings.MAX_WEIGHTS_BYTES / 1e6:.0f} MB.")
        return weights

    def clean_class_names(self) -> list[str] | None:
        names = [name.strip() for name in self.cleaned_data["class_names"].split(",") if name.strip()]
        return names or None


class CocoStartForm(forms.Form):
    """A version from torchvision's COCO weights: the architectures whose file this server has, and which
    COCO class each of the project's classes is (its own name's by default)."""
    architecture = forms.ChoiceField(choices=[])
    activate = forms.BooleanField(required=False, label="Make it the active model")

    def __init__(self, *args, class_names: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        found = coco_weights_found(settings.COCO_WEIGHTS_DIR)
        self.fields["architecture"].choices = [(name, name) for name in ARCHITECTURES if name in found]
        choices = [("", "none: learn it from reviews")] + [(name, name) for name in COCO_CLASSES]
        self.class_fields = []
        for number, name in enumerate(class_names):
            key = f"class_{number}"
            self.fields[key] = forms.ChoiceField(choices=choices, required=False, label=name,
                                                 initial=coco_class_for(name))
            self.class_fields.append((name, key))

    def classes(self) -> dict[str, str]:
        """Project class name -> the COCO class chosen for it ("" for none)."""
        return {name: self.cleaned_data.get(key) or "" for name, key in self.class_fields}
