"""What the runner writes, made storable; and which database errors are worth waiting out.

A handler's result, error and progress message (and text from outside, like a worker name or a
Celery task id) may hold what Postgres refuses: a NUL, a surrogate code point (not UTF-8), NaN or
an infinity in JSON, an int too long for ``json``. ``row`` escapes them before a write (a NUL as
the six characters ``\\u0000``, a surrogate as ``\\udXXX``, NaN as ``"NaN"``) and cuts text to its
column. ``is_outage`` tells a database that is away (worth waiting for) from one that refuses the
value (no retry changes that: the runner records the run as failed instead).

What it is not: no policy. The runner decides what to write and what to do on an error.
"""

import json
import math

from django.db import InterfaceError, OperationalError, models

# SQLSTATE classes of a database that is away or busy: connection exception, transaction rollback
# (deadlock, serialization), insufficient resources, operator intervention (shutdown), system error.
_OUTAGE_CLASSES = ("08", "40", "53", "57", "58")


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` means the database is away (retry later), not that it refused the value."""
    if isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):  # DataError, IntegrityError, a UnicodeEncodeError, ...
        return False
    sqlstate = getattr(exc.__cause__, "sqlstate", None)  # None: no answer from the server at all
    return sqlstate is None or sqlstate[:2] in _OUTAGE_CLASSES  # 54001 "stack depth limit exceeded" is not


def row(model: type[models.Model], values: dict) -> dict:
    """``values`` of ``model``'s fields with every text and JSON value made storable."""
    storable = {}
    for name, value in values.items():
        field = model._meta.get_field(name)
        if isinstance(field, models.JSONField):
            value = json_value(value)
        elif isinstance(value, str):
            value = text(value, field.max_length)
        storable[name] = value
    return storable


def text(value: str, max_length: int | None = None) -> str:
    """``value`` with a NUL and any surrogate escaped, cut to ``max_length``."""
    value = value.replace("\x00", "\\u0000")
    if not value.isascii():
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")  # only surrogates need it
    return value[:max_length] if max_length else value


def json_value(value):
    """A copy of ``value`` that Postgres can store as JSON; a value ``json`` cannot write is stored as its repr.

    Iterative, so a deeply nested value costs no recursion here (storing it may still be refused).
    """
    try:
        return _copy(value)
    except _NotJSON:
        try:
            shown = repr(value)
        except Exception:  # a repr that raises or recurses too deep
            shown = f"<{type(value).__name__} that cannot be shown>"
        return text(shown)


class _NotJSON(Exception):
    pass


def _copy(value):
    root = [None]
    stack = [(value, root, 0)]
    while stack:
        item, parent, slot = stack.pop()
        if isinstance(item, dict):
            copy = {}
            for key, member in item.items():
                key = _key(key)
                copy[key] = None  # keeps the keys' order
                stack.append((member, copy, key))
        elif isinstance(item, (list, tuple)):
            copy = [None] * len(item)
            stack.extend((member, copy, index) for index, member in enumerate(item))
        else:
            copy = _scalar(item)
        parent[slot] = copy
    return root[0]


def _key(key) -> str:
    """The key as ``json`` writes it (``None`` -> ``"null"``, ``1`` -> ``"1"``)."""
    if isinstance(key, str):
        return text(key)
    if key is None or isinstance(key, bool):
        return json.dumps(key)
    if isinstance(key, (int, float)):
        return str(_scalar(key))
    raise _NotJSON


def _scalar(item):
    if item is None or isinstance(item, bool):
        return item
    if isinstance(item, str):
        return text(item)
    if isinstance(item, int):
        try:
            str(item)
        except ValueError:  # more digits than Python converts
            return f"<int of {item.bit_length()} bits>"
        return item
    if isinstance(item, float):
        return item if math.isfinite(item) else {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}[str(item)]
    raise _NotJSON
