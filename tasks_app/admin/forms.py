"""The job form of the admin: widgets and help only; validation stays in ``Job.clean``."""

import functools
import json
import zoneinfo

from django import forms
from django.contrib.admin import widgets as admin_widgets
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput
from django.template.loader import render_to_string
from django.utils.html import format_html, format_html_join

from tasks_app import conf
from tasks_app.handlers.registry import registry
from tasks_app.models import Job


@functools.cache
def timezone_names() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones()))


class DatalistInput(forms.TextInput):
    """A text input that suggests ``options()`` (a callable, read when rendered) but accepts any text."""

    def __init__(self, options, attrs=None):
        super().__init__(attrs)
        self.options = options

    def render(self, name, value, attrs=None, renderer=None):
        list_id = f"{(attrs or {}).get('id') or name}_list"
        html = super().render(name, value, {**(attrs or {}), "list": list_id}, renderer)
        options = format_html_join("", '<option value="{}">', ((option,) for option in self.options()))
        return html + format_html('<datalist id="{}">{}</datalist>', list_id, options)


def handler_choices(current: str = "") -> list[tuple[str, str]]:
    """Every registered handler, labelled "name — description"; a stored name no longer registered stays visible."""
    choices = [("", "---------")]
    choices += [
        (spec.name, f"{spec.name} — {spec.description}" if spec.description else spec.name) for spec in registry.specs()
    ]
    if current and current not in dict(choices):
        label = f"alias of {registry.get(current).name}" if current in registry else "not registered"
        choices.append((current, f"{current} — {label}"))
    return choices


def handler_help(selected: str = "") -> str:
    """A table of each handler's parameters (types, defaults) and an example kwargs object."""
    handlers = [
        {
            "name": spec.name,
            "description": spec.description,
            "params": [
                {"name": p.name, "type": p.annotation_text, "required": p.required, "default": json.dumps(p.default)}
                for p in spec.parameters()
            ],
            "example": json.dumps(spec.example_kwargs()),
            "selected": selected in (spec.name, *spec.aliases),
        }
        for spec in registry.specs()
    ]
    return render_to_string("admin/tasks_app/job/handler_help.html", {"handlers": handlers})


class KwargsField(forms.JSONField):
    """The kwargs box: JSON that Python's parser cannot read is a field error, and the page shows what was typed."""

    def to_python(self, value):
        try:
            return super().to_python(value)
        except RecursionError:
            max_depth, _ = conf.kwargs_limits()
            raise ValidationError(
                f"kwargs are nested too deeply (at most {max_depth} levels).", code="invalid"
            ) from None
        except ValueError as exc:  # not a JSONDecodeError: a number too long to read, say
            raise ValidationError(f"Enter a valid JSON: {str(exc).split(';')[0]}.", code="invalid") from None

    def bound_data(self, data, initial):
        # As typed: parsing again could recurse, and re-encoding could put a lone surrogate on the page.
        return super().bound_data(data, initial) if self.disabled or data is None else InvalidJSONInput(data)


class JobForm(forms.ModelForm):
    handler = forms.ChoiceField(help_text="A registered handler (see manage.py list_handlers).")

    class Meta:
        model = Job
        fields = "__all__"
        field_classes = {"run_at": forms.SplitDateTimeField, "kwargs": KwargsField}
        widgets = {
            "kwargs": forms.Textarea(
                attrs={"rows": 4, "cols": 60, "class": "vLargeTextField taskhub-json", "spellcheck": "false"}
            ),
            "timezone": DatalistInput(
                timezone_names, attrs={"class": "vTextField", "autocomplete": "off", "placeholder": "Europe/Amsterdam"}
            ),
            "run_at": admin_widgets.AdminSplitDateTime,
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "handler" in self.fields:
            current = self.instance.handler or ""
            self.fields["handler"].choices = handler_choices(current)
            selected = self.data.get(self.add_prefix("handler"), current) if self.is_bound else current
            if "kwargs" in self.fields:
                self.fields["kwargs"].help_text = handler_help(selected)

    def clean_kwargs(self):
        # An emptied box means "no parameters"; the model then checks them against the handler.
        kwargs = self.cleaned_data["kwargs"]
        return {} if kwargs is None else kwargs
