"""A job's numeric fields take numbers only: Django's ``to_python`` would store ``1.5`` as 1,
``True`` as 1 and the text ``"60"`` as 60 without a word; here each is a field error. Its text
and time fields take text (or a time) only: Django's would store a list as its ``str()``, or
raise ``TypeError`` on ``False`` (a file of jobs can hold either)."""

import datetime as dt
import decimal
import math
import numbers

from django.db import models


def number_errors(instance) -> dict[str, str]:
    """``{field name: message}`` for each numeric field whose value Django would silently change."""
    errors = {}
    for field in instance._meta.concrete_fields:
        value = getattr(instance, field.attname)
        if value is None or field.primary_key:
            continue
        if isinstance(field, models.IntegerField) and not _whole(value):
            errors[field.name] = f"Enter a whole number (got {value!r})."
        elif isinstance(field, models.FloatField) and not _finite(value):
            errors[field.name] = f"Enter a finite number (got {value!r})."
        elif isinstance(field, models.DateTimeField) and not isinstance(value, str | dt.date):
            errors[field.name] = f"Enter a date and time (got {a_type(value)})."
        elif isinstance(field, models.CharField | models.TextField) and not isinstance(value, str):
            errors[field.name] = f"Enter text (got {a_type(value)})."
    return errors


def _whole(value) -> bool:
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, decimal.Decimal)):
        return False
    return math.isfinite(value) and value == int(value)


def _finite(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (numbers.Real, decimal.Decimal)) and math.isfinite(value)


def a_type(value) -> str:
    """``a dict``, ``an int``: a value's JSON-ish type in words, for messages."""
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"
