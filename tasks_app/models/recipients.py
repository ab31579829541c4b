"""A job's own alert recipients: e-mail addresses, written as one comma-separated line.

``normalize`` turns what people and declarations give (a line with commas, semicolons or
spaces, or a list) into the stored form, ``a@example.com, b@example.com``; the field's
validator refuses any address Django's ``EmailValidator`` refuses, naming it.
"""

import re

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

SEPARATORS = re.compile(r"[\s,;]+")


def split(value) -> list[str]:
    if isinstance(value, list | tuple):
        value = ",".join(str(item) for item in value)
    return [address for address in SEPARATORS.split(value or "") if address]


def normalize(value):
    """The stored line; a value of another type as it is, for the field's own check to refuse."""
    return ", ".join(split(value)) if isinstance(value, str | list | tuple | None) else value


def validate_emails(value) -> None:
    bad = []
    for address in split(value):
        try:
            validate_email(address)
        except ValidationError:
            bad.append(address)
    if bad:
        listed = ", ".join(f"'{address}'" for address in bad[:3]) + (" …" if len(bad) > 3 else "")
        raise ValidationError(f"Not a valid e-mail address: {listed}.", code="invalid")
