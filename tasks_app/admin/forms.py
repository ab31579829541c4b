"""The job form of the admin: widgets and help only; validation stays in ``Job.clean``."""

import functools
import json
import zoneinfo

from django import forms
from django.contrib.admin import widgets as admin_widgets
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from tasks_app import conf
from tasks_app.admin.text import inline_code, plain_code
from tasks_app.handlers.registry import registry
from tasks_app.models import Job, ScheduleType

TIMEZONE_HELP = {
    ScheduleType.CRON: "IANA time zone the cron expression is read in; the job's times are shown in it.",
    ScheduleType.INTERVAL: "IANA time zone the job's times are shown in (interval ticks count from 1970-01-01 UTC).",
    ScheduleType.ONCE: "IANA time zone the job's times are shown in (Run at is entered in {server}).",
}


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
        (spec.name, f"{spec.name} — {plain_code(spec.description)}" if spec.description else spec.name)
        for spec in registry.specs()
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
            "description": inline_code(spec.description),
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


def timezone_help(selected: str) -> str:
    """The time zone's help for each schedule type, only the ``selected`` one shown (the page's script switches)."""
    server = timezone.get_current_timezone_name()
    return format_html_join(
        "",
        '<span class="taskhub-zone-help" data-schedule-type="{}"{}>{}</span>',
        (
            (kind, " hidden" if kind != selected else "", text.format(server=server))
            for kind, text in TIMEZONE_HELP.items()
        ),
    )


OBJECT_HINT = 'Enter a JSON object, like {"x": 1} (or leave the box empty for none).'


def json_problem(text: str) -> str:
    """What Python's JSON parser says about ``text`` and where, e.g. "expecting value (line 1, column 1)"."""
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return f"{exc.msg[:1].lower()}{exc.msg[1:]} (line {exc.lineno}, column {exc.colno})"
    except (ValueError, RecursionError):
        pass
    return "the text cannot be read"


class KwargsField(forms.JSONField):
    """The kwargs box: text that is not JSON is one field error saying where, and the page shows what was typed."""

    def to_python(self, value):
        if isinstance(value, str) and not value.strip():
            return None  # a box left blank (or only spaces, line breaks) is an empty one: no kwargs
        try:
            return super().to_python(value)
        except ValidationError:  # Django's "Enter a valid JSON.": say what and where
            raise ValidationError(f"Not valid JSON: {json_problem(value)}. {OBJECT_HINT}", code="invalid") from None
        except RecursionError:
            max_depth, _ = conf.kwargs_limits()
            raise ValidationError(
                f"kwargs are nested too deeply (at most {max_depth} levels).", code="invalid"
            ) from None
        except ValueError as exc:  # not a JSONDecodeError: a number too long to read, say
            raise ValidationError(f"Not valid JSON: {str(exc).split(';')[0]}. {OBJECT_HINT}", code="invalid") from None

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
        if "timezone" in self.fields:
            schedule_type = self.instance.schedule_type or ScheduleType.CRON
            if self.is_bound:
                schedule_type = self.data.get(self.add_prefix("schedule_type"), schedule_type)
            self.fields["timezone"].help_text = timezone_help(schedule_type)

    def add_error(self, field, error):
        """As Django's, but once the kwargs box held no JSON, that is all there is to say about it:
        the model's check of the kwargs it had instead (none, or the stored ones) is left out."""
        if field is None and hasattr(error, "error_dict") and self.has_error("kwargs"):
            error = ValidationError({name: e for name, e in error.error_dict.items() if name != "kwargs"})
        super().add_error(field, error)

    def clean_kwargs(self):
        # An emptied box means "no parameters"; the model then checks them against the handler.
        kwargs = self.cleaned_data["kwargs"]
        return {} if kwargs is None else kwargs
