"""The kwargs schema of a handler: strict JSON validation of its kwargs with pydantic.

What it is: the check behind ``HandlerSpec.validate_kwargs`` and ``example_kwargs``. It
builds a strict pydantic model from a handler's parameters (``build_model``; every
``datetime`` must carry a time zone), turns kwargs into the JSON text validated against it
(``json_text``), translates pydantic's errors into one short message per parameter
(``translate_errors``, for ``KwargsError``), and gives example values and readable type
text for forms and docs (``example_value``, ``type_text``).

What it is not: no registry and no handler lookup -- it never imports ``tasks_app.handlers.registry``
(the registry imports it) nor Django. Parameters come in as plain objects with ``name``,
``annotation``, ``required`` and ``default`` (a ``registry.Param``), and the error for a
model pydantic cannot build is passed in; handler names and the reserved ``context``
keyword are the registry's business.
"""

from __future__ import annotations

import re
import types
from collections.abc import Mapping, Sequence, Set
from datetime import date, datetime
from enum import Enum
from typing import Annotated, Any, Literal, Protocol, Union, get_args, get_origin

import pydantic
from pydantic import AwareDatetime, ConfigDict, Field, ValidationError

from tasks_app.exceptions import KwargsError
from tasks_app.handlers import json_limits

_NONE = type(None)


class ParamLike(Protocol):
    """What this module reads of a parameter; ``registry.Param`` is one."""

    name: str
    annotation: Any
    required: bool
    default: Any


def build_model(
    name: str, params: Sequence[ParamLike], accepts_extra: bool, error: type[Exception]
) -> type[pydantic.BaseModel]:
    """The strict model of a handler's kwargs; ``error`` is raised for an annotation pydantic rejects."""
    # Field names are positional so that any parameter name ("model_config", "json") is safe.
    fields = {
        f"p{i}": (_aware(p.annotation), Field(... if p.required else p.default, alias=p.name))
        for i, p in enumerate(params)
    }
    config = ConfigDict(extra="allow" if accepts_extra else "forbid", strict=True)
    try:
        return pydantic.create_model("Kwargs_" + re.sub(r"\W", "_", name), __config__=config, **fields)
    except Exception as exc:
        raise error(f"handler {name!r}: unsupported parameter annotation: {exc}") from exc


def _aware(tp):
    """The annotation with every ``datetime`` replaced by pydantic's AwareDatetime."""
    if tp is datetime:
        return AwareDatetime
    origin, args = get_origin(tp), get_args(tp)
    if origin is None or origin is Literal or not args:
        return tp
    new = tuple(_aware(a) if a is not Ellipsis else a for a in args)
    if new == args:
        return tp
    if _is_union(origin):
        return Union[new]  # noqa: UP007  (a union built at run time from a tuple of types)
    return Annotated[new] if origin is Annotated else origin[new]


def json_text(kwargs: dict) -> str:
    """kwargs as the JSON text the model validates, within ``json_limits`` (else a KwargsError)."""
    max_depth, max_bytes = json_limits.limits()
    try:
        return json_limits.check_json(kwargs, max_depth=max_depth, max_bytes=max_bytes)
    except json_limits.Unstorable as exc:
        raise KwargsError(exc.errors) from None


# --- messages --------------------------------------------------------------------------------

# pydantic error types -> our words; a rare type falls back to pydantic's own message.
_MESSAGES = {
    error_type: message
    for message, error_types in {
        "missing": "missing",
        "unknown parameter": "extra_forbidden",
        "must be an integer": "int_type int_parsing int_from_float",
        "must be a number": "float_type float_parsing",
        "must be a string": "string_type",
        "must be true or false": "bool_type bool_parsing",
        "must be a list": "list_type tuple_type set_type frozen_set_type",
        "must be an object": "dict_type model_type model_attributes_type",
        "must be an ISO 8601 datetime string": "datetime_type datetime_parsing datetime_from_date_parsing",
        "must be a datetime with a time zone": "timezone_aware",
        "must be a date (YYYY-MM-DD)": "date_type date_parsing date_from_datetime_inexact",
        "must be null": "none_required",
    }.items()
    for error_type in error_types.split()
}


def translate_errors(exc: ValidationError, annotations: dict[str, Any]) -> dict[str, str]:
    """One message per parameter: the first error pydantic reports for it."""
    errors: dict[str, str] = {}
    for error in exc.errors(include_url=False):
        name, *path = error["loc"] or ("__all__",)
        errors.setdefault(str(name), _describe(annotations.get(name, Any), path, error))
    return errors


def _describe(annotation, path: list, error: dict) -> str:
    """Walk the error's location through the annotation, so union tags are not taken for keys."""
    annotation = _strip_optional(annotation)
    if not path:
        return _message(error)
    if _is_union(get_origin(annotation)):  # pydantic reports one error per member, tagged in the path
        return f"must be {type_text(annotation)}"
    origin, args = get_origin(annotation) or annotation, get_args(annotation)
    step, rest = path[0], path[1:]
    if _is_mapping(origin):
        if rest == ["[key]"]:
            return f"key {step!r}: {_message(error)}"
        return _at(step, _describe(args[1] if args else Any, rest, error))
    if _is_sequence(origin) and isinstance(step, int):
        fixed = origin is tuple and args and args[-1] is not Ellipsis
        item = (args[step] if step < len(args) else Any) if fixed else (args[0] if args else Any)
        return _at(step, _describe(item, rest, error))
    return "".join(f"[{s!r}]" for s in path) + f" {_message(error)}"


def _at(step, message: str) -> str:
    """``[1] must be ...``, ``[0][2] must be ...``, ``['key'] must be ...``."""
    return f"[{step!r}]" + ("" if message.startswith("[") else " ") + message


def _message(error: dict) -> str:
    if error["type"] in ("literal_error", "enum"):
        head, _, last = error["ctx"]["expected"].rpartition(" or ")
        return "must be one of " + (f"{head}, {last}" if head else last)
    msg = error["msg"]
    return _MESSAGES.get(error["type"], msg[:1].lower() + msg[1:])


# --- examples and type text ------------------------------------------------------------------

_SAMPLES = {
    bool: True,
    int: 1,
    float: 1.5,
    str: "text",
    datetime: "2030-01-01T00:00:00+00:00",
    AwareDatetime: "2030-01-01T00:00:00+00:00",
    date: "2030-01-01",
}


def example_value(param: ParamLike):
    return _sample(param.annotation) if param.required else param.default


def _sample(tp):
    origin, args = get_origin(tp), get_args(tp)
    if origin is Annotated or _is_union(origin):
        return _sample(next(a for a in args if a is not _NONE))
    if origin is Literal:
        return args[0]
    container = origin or tp
    if _is_mapping(container):
        return {}
    if _is_sequence(container):
        items = args if container is tuple and args and args[-1] is not Ellipsis else args[:1]
        return [_sample(a) for a in items]
    if isinstance(tp, type) and issubclass(tp, Enum):
        return next(iter(tp)).value
    if isinstance(tp, type) and issubclass(tp, pydantic.BaseModel):
        return {f.alias or n: _sample(f.annotation) for n, f in tp.model_fields.items() if f.is_required()}
    return _SAMPLES.get(tp) if isinstance(tp, type) else None


def type_text(tp) -> str:
    origin, args = get_origin(tp), get_args(tp)
    if tp is _NONE or tp is None:
        return "None"
    if tp is Ellipsis:
        return "..."
    if origin is Annotated:
        return type_text(args[0])
    if origin is Literal:
        return "Literal[" + ",".join(map(repr, args)) + "]"
    if _is_union(origin):
        return " | ".join(map(type_text, args))
    if origin is not None:
        base = getattr(origin, "__name__", str(origin))
        return f"{base}[{', '.join(map(type_text, args))}]" if args else base
    return tp.__name__ if isinstance(tp, type) else str(tp).replace("typing.", "")


# --- annotation helpers ----------------------------------------------------------------------


def _strip_optional(tp):
    if get_origin(tp) is Annotated:
        return _strip_optional(get_args(tp)[0])
    if _is_union(get_origin(tp)):
        rest = [a for a in get_args(tp) if a is not _NONE]
        return rest[0] if len(rest) == 1 else Union[tuple(rest)]  # noqa: UP007  (built at run time)
    return tp


def _is_union(origin) -> bool:
    return origin is Union or origin is types.UnionType


def _is_mapping(tp) -> bool:
    return isinstance(tp, type) and issubclass(tp, Mapping)


def _is_sequence(tp) -> bool:
    return isinstance(tp, type) and issubclass(tp, (Sequence, Set)) and not issubclass(tp, (str, bytes))
