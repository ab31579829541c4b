"""What JSON values taskhub takes in: what Postgres can store and Python can walk, within set limits.

What it is: ``check_json`` refuses kwargs holding a NUL or a surrogate code point (Postgres
stores neither), NaN or an infinity (JSON has neither), nesting deeper or JSON longer than the
limits (``json`` and Django recurse; a huge value costs every process that reads it), and returns
their compact JSON text. ``unstorable_text`` says what in a string Postgres refuses.

What it is not: no Django and no handlers. The app sets ``limits`` from its settings
(``TASKHUB["KWARGS_MAX_DEPTH"]``, ``["KWARGS_MAX_BYTES"]``); ``kwargs_schema`` turns ``Unstorable``
into a ``KwargsError``.
"""

import json
import math
import re

from tasks_app.exceptions import Unstorable


def limits() -> tuple[int, int]:
    """(max depth, max bytes of JSON) of kwargs; the app replaces this with its settings' values."""
    return 32, 65536


def check_json(kwargs: dict, *, max_depth: int, max_bytes: int) -> str:
    """The compact JSON text of ``kwargs``, or ``Unstorable`` for what Postgres cannot store or code cannot walk.

    Refused: a NUL character or a surrogate code point in any key or string, nesting deeper than
    ``max_depth`` objects and lists (the kwargs object is level 1), more than ``max_bytes`` of
    UTF-8 JSON, NaN, infinities and anything ``json`` cannot write. The walk is iterative and
    stops early, so a value nested 100,000 deep or a huge one costs no recursion and little time.
    """
    too_large = f"kwargs are too large (at most {max_bytes} bytes of JSON)"
    bad_names = list(filter(None, map(unstorable_text, filter(_is_str, kwargs))))
    errors = {"__all__": f"a parameter name may not contain {bad_names[-1]}"} if bad_names else {}
    stack = [(value, 2, name) for name, value in kwargs.items()]
    size = 0  # a lower bound of the JSON's length, to stop early on a huge value
    while stack and not errors:
        value, depth, name = stack.pop()
        keys = [key for key in value if isinstance(key, str)] if isinstance(value, dict) else []
        size += len(value) + sum(map(len, keys)) if isinstance(value, (str, dict, list, tuple)) else 1
        if size > max_bytes:
            errors["__all__"] = too_large
        elif isinstance(value, str) and (bad := unstorable_text(value)):
            errors[name] = f"may not contain {bad}"
        elif isinstance(value, float) and not math.isfinite(value):
            errors[name] = "may not be NaN or an infinity (JSON has neither)"
        elif isinstance(value, (dict, list, tuple)) and depth > max_depth:
            errors[name] = f"is nested too deeply (at most {max_depth} levels)"
        elif bad := next(filter(None, map(unstorable_text, keys)), None):
            errors[name] = f"has a key with {bad}"
        elif isinstance(value, (dict, list, tuple)):
            stack.extend((item, depth + 1, name) for item in (value.values() if isinstance(value, dict) else value))
    if errors:
        raise Unstorable(errors)
    try:
        text = json.dumps(kwargs, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise Unstorable({"__all__": f"kwargs must be JSON-serializable: {exc}"}) from None
    if len(text.encode()) > max_bytes:
        raise Unstorable({"__all__": too_large})
    return text


_SURROGATE = re.compile("[\\ud800-\\udfff]")


def unstorable_text(text: str) -> str | None:
    """What in ``text`` Postgres cannot store (a NUL; a surrogate code point, which is not UTF-8), or None."""
    if "\x00" in text:
        return "the NUL character (\\u0000)"
    if not text.isascii() and (found := _SURROGATE.search(text)):
        return f"a surrogate code point (\\u{ord(found.group()):04x})"
    return None


def _is_str(value) -> bool:
    return isinstance(value, str)
