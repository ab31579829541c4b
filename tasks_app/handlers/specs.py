"""Building a handler's spec: reading a decorated function or class into a ``HandlerSpec``.

What it is: the step behind ``Registry.handler``. ``make_spec`` takes the decorated target
and the decorator's options, merges a ``BaseHandler`` subclass's class attributes with them
(decorator options win), checks the options and the name rules, and reads the signature --
annotations resolved, the reserved ``context`` keyword and a ``**kwargs`` noted -- into
``Param`` objects and the strict kwargs model (``tasks_app.handlers.kwargs_schema.build_model``).

What it is not: it holds no handlers and looks none up (that is ``tasks_app.handlers.registry``,
whose types it builds; the registry imports this module only when it registers), and it
imports no Django. Every problem is a ``HandlerError`` naming the handler.
"""

from __future__ import annotations

import inspect
import json
import math
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pydantic
from pydantic import ValidationError

from tasks_app.exceptions import HandlerError, KwargsError
from tasks_app.handlers.context import RunContext
from tasks_app.handlers.kwargs_schema import build_model, example_value, json_text, translate_errors, type_text

CONTEXT = "context"


@dataclass(frozen=True)
class Param:
    """One keyword a handler accepts. ``default``: None when required; as JSON, else its repr()."""

    name: str
    annotation_text: str
    required: bool
    default: Any
    annotation: Any = field(default=Any, repr=False, compare=False)


@dataclass(frozen=True)
class HandlerSpec:
    name: str
    func: Callable[..., Any]
    timeout: float | None = None
    retries: int = 0
    retry_backoff: float = 1.0
    description: str = ""
    aliases: tuple[str, ...] = ()
    takes_context: bool = False
    module: str = ""
    target: Any = field(default=None, repr=False, compare=False)  # the decorated function or class
    params: tuple[Param, ...] = field(default=(), repr=False, compare=False)
    accepts_extra: bool = field(default=False, repr=False, compare=False)  # the signature has **kwargs
    model: type[pydantic.BaseModel] | None = field(default=None, repr=False, compare=False)

    def parameters(self) -> list[Param]:
        return list(self.params)

    def example_kwargs(self) -> dict:
        """A JSON-able kwargs object that passes ``validate_kwargs``: defaults, else samples."""
        example = {p.name: example_value(p) for p in self.params}
        try:
            self.validate_kwargs(example)
        except KwargsError as exc:  # a default that is no JSON of its type (a repr, `x: int = None`)
            optional = {p.name for p in self.params if not p.required}
            example = {k: v for k, v in example.items() if k not in (exc.errors.keys() & optional)}
        return example

    def validate_kwargs(self, kwargs: Any) -> dict:
        """Check ``kwargs`` strictly as JSON; return the converted kwargs to call with."""
        if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
            raise KwargsError({"__all__": "kwargs must be a JSON object"})
        errors = {CONTEXT: "is supplied by taskhub, not by kwargs"} if CONTEXT in kwargs else {}
        text = json_text({k: v for k, v in kwargs.items() if k != CONTEXT})
        try:
            validated = self.model.model_validate_json(text, strict=True)
        except ValidationError as exc:
            errors = translate_errors(exc, {p.name: p.annotation for p in self.params}) | errors
        if errors:
            raise KwargsError(errors)
        given = validated.model_fields_set
        converted = {f.alias: getattr(validated, n) for n, f in type(validated).model_fields.items() if n in given}
        return converted | (validated.model_extra or {})


class BaseHandler:
    """Class-based handlers for families of jobs: subclass, set class attributes, implement async run."""

    name: str | None = None
    timeout: float | None = None
    retries: int = 0
    retry_backoff: float = 1.0
    description: str = ""
    aliases: tuple[str, ...] = ()

    async def run(self, **params):
        raise NotImplementedError


NAME_PATTERN = re.compile(r"[a-z][a-z0-9_.-]{0,99}")
_ASYNC_HINT = "wrap blocking code with anyio.to_thread.run_sync"


def make_spec(target, options: dict) -> HandlerSpec:
    if isinstance(target, type):
        func, signature_of, options = _class_parts(target, options)
    else:
        func = signature_of = target
        options = {**options, "name": _given(options["name"], getattr(target, "__name__", ""))}
        options["description"] = options["description"] or _first_line(getattr(target, "__doc__", ""))
    name = options["name"]
    if not inspect.iscoroutinefunction(signature_of):
        raise HandlerError(f"handler {name!r} must be an async def function (got {_kind(signature_of)}); {_ASYNC_HINT}")
    _check_options(**options)
    params, takes_context, accepts_extra = _signature(name, signature_of, skip_self=func is not target)
    return HandlerSpec(
        name=name,
        func=func,
        timeout=options["timeout"],
        retries=options["retries"],
        retry_backoff=options["retry_backoff"],
        description=options["description"],
        aliases=tuple(options["aliases"]),
        takes_context=takes_context,
        module=getattr(target, "__module__", "") or "",
        target=target,
        params=params,
        accepts_extra=accepts_extra,
        model=build_model(name, params, accepts_extra, error=HandlerError),
    )


def _class_parts(cls: type, options: dict):
    """The per-call runner for a BaseHandler subclass; decorator options win over class attributes."""
    name = _given(options["name"], cls.__dict__.get("name") or _snake(cls.__name__))
    if not issubclass(cls, BaseHandler):
        raise HandlerError(f"handler {name!r}: class {cls.__qualname__} must subclass BaseHandler")
    if cls.run is BaseHandler.run:
        raise HandlerError(f"handler {name!r}: class {cls.__qualname__} must implement async def run")

    async def run_handler(**kwargs):
        return await cls().run(**kwargs)

    run_handler.__qualname__ = run_handler.__name__ = cls.__qualname__
    merged = {
        "name": name,
        "timeout": options["timeout"] if options["timeout"] is not None else cls.timeout,
        "retries": options["retries"] or cls.retries,
        "retry_backoff": options["retry_backoff"] if options["retry_backoff"] != 1.0 else cls.retry_backoff,
        "description": options["description"]
        or cls.description
        or _first_line(cls.__doc__)
        or _first_line(cls.run.__doc__),
        "aliases": options["aliases"] or cls.aliases,
    }
    return run_handler, cls.run, merged


def _check_options(name, timeout, retries, retry_backoff, description, aliases) -> None:
    if isinstance(aliases, str) or not isinstance(aliases, (tuple, list, set, frozenset)):
        raise HandlerError(f"handler {name!r}: aliases must be a tuple of names, not {aliases!r}")
    for key in (name, *aliases):
        if not isinstance(key, str) or not NAME_PATTERN.fullmatch(key):
            raise HandlerError(f"invalid handler name {key!r}: use 1-100 of a-z 0-9 _ . - starting with a letter")
    problems = {
        "aliases must be distinct and differ from the name": len({name, *aliases}) != 1 + len(aliases),
        "timeout must be None or a number > 0": timeout is not None and not (_is_number(timeout) and timeout > 0),
        "retries must be an integer >= 0": not (type(retries) is int and retries >= 0),
        "retry_backoff must be a number >= 0": not (_is_number(retry_backoff) and retry_backoff >= 0),
        "description must be a string": description is not None and not isinstance(description, str),
    }
    for message, failed in problems.items():
        if failed:
            raise HandlerError(f"handler {name!r}: {message}")


def _signature(name: str, func, skip_self: bool) -> tuple[tuple[Param, ...], bool, bool]:
    """(parameters, takes_context, accepts_extra) from the signature, annotations resolved."""
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception as exc:
        raise HandlerError(f"handler {name!r}: cannot resolve annotations: {exc}") from exc
    params, takes_context, accepts_extra = [], False, False
    for p in list(inspect.signature(func).parameters.values())[1 if skip_self else 0 :]:
        if p.kind is p.VAR_POSITIONAL:
            raise HandlerError(f"handler {name!r} must not take *{p.name}: it is called with keywords only")
        if p.kind is p.POSITIONAL_ONLY:
            raise HandlerError(f"handler {name!r}: parameter {p.name!r} must not be positional-only")
        if p.kind is p.VAR_KEYWORD:
            accepts_extra = True
        elif p.name == CONTEXT:
            _check_context(name, hints.get(p.name))
            takes_context = True
        else:
            params.append(_param(p, hints.get(p.name, Any)))
    return tuple(params), takes_context, accepts_extra


def _check_context(name: str, annotation) -> None:
    """The run's context is opted into by annotation, never by the parameter's name alone."""
    allowed = {RunContext, type(None)}
    if annotation is RunContext or (
        typing.get_origin(annotation) in (typing.Union, types.UnionType)
        and RunContext in typing.get_args(annotation)
        and set(typing.get_args(annotation)) <= allowed
    ):
        return
    raise HandlerError(
        f"handler {name!r}: parameter 'context' is reserved for the run's context; write "
        "'context: RunContext' (from tasks_app import RunContext), or name the parameter otherwise"
    )


def _param(p: inspect.Parameter, annotation) -> Param:
    required = p.default is p.empty
    default = None if required else _jsonable(p.default)
    return Param(p.name, type_text(annotation), required, default, annotation)


# --- small helpers ---------------------------------------------------------------------------


def _jsonable(value):
    """The value as JSON would give it back (a tuple becomes a list), else its repr."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):
        return repr(value)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _given(value, default):
    return default if value is None else value


def _first_line(doc: str | None) -> str:
    lines = inspect.cleandoc(doc or "").strip().splitlines()
    return lines[0].strip() if lines else ""


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def _kind(obj) -> str:
    if inspect.isasyncgenfunction(obj):
        return "an async generator"
    return "a plain def" if inspect.isfunction(obj) or inspect.ismethod(obj) else type(obj).__name__
