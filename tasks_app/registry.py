"""Handlers held by name: the registry that jobs point into.

What it is: a plain-Python map from a stable handler name (and its aliases) to a
``HandlerSpec`` -- the async callable, its run defaults (timeout, retries, backoff) and a
strict, pydantic-built check of the JSON kwargs a job may pass to it. Handler modules
register with the ``handler`` decorator::

    from tasks_app.registry import handler

    @handler(timeout=30, retries=2, aliases=("old_name",))
    async def number_sum(x: int, y: int) -> int:
        return x + y

A ``BaseHandler`` subclass registers the same way, for families of jobs that share options.

What it is not: it imports no Django and no engine, stores nothing, schedules nothing and
never calls a handler. The app loads the configured modules (``load_modules``), the models
validate ``Job.kwargs`` with ``validate_kwargs``, and the runner awaits ``spec.func``.

Limits: kwargs are checked as JSON against the annotations (strict: ``"1"`` is no ``int``,
a ``datetime`` needs a time zone); keys that only a ``**kwargs`` parameter takes are passed
through unchecked (the check itself is ``tasks_app.kwargs_schema``). Registering the same
function object again replaces its spec; any other clash of names or aliases is an error.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import re
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pydantic
from pydantic import ValidationError

# KwargsError lives with the kwargs schema that raises it; callers import it from here as before.
from tasks_app.kwargs_schema import (
    KwargsError,
    build_model,
    example_value,
    json_text,
    translate_errors,
    type_text,
)

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_.-]{0,99}")
CONTEXT = "context"
_ASYNC_HINT = "wrap blocking code with anyio.to_thread.run_sync"


class HandlerError(Exception):
    """A handler cannot be registered (or its module cannot be imported)."""


class UnknownHandler(LookupError):
    """No handler is registered under that name or alias."""


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


class Registry:
    def __init__(self):
        self._specs: dict[str, HandlerSpec] = {}
        self._aliases: dict[str, str] = {}
        self.handler = self.handler  # one bound decorator per registry: `handler is registry.handler`

    def handler(self, func=None, /, *, name=None, timeout=None, retries=0, retry_backoff=1.0,
                description=None, aliases=()):
        """Register an async function or BaseHandler subclass; bare or with options."""
        if isinstance(func, str):
            raise HandlerError(f"use @handler(name={func!r}), not @handler({func!r})")
        options = dict(name=name, timeout=timeout, retries=retries, retry_backoff=retry_backoff,
                       description=description, aliases=aliases)

        def register(target):
            self._add(_make_spec(target, options))
            return target

        return register if func is None else register(func)

    def get(self, name: str) -> HandlerSpec:
        if not isinstance(name, str) or not (name in self._specs or name in self._aliases):
            raise UnknownHandler(f"unknown handler {name!r}")
        return self._specs[self._aliases.get(name, name)]

    def __contains__(self, name) -> bool:
        return isinstance(name, str) and (name in self._specs or name in self._aliases)

    def names(self) -> list[str]:
        return sorted(self._specs)

    def specs(self) -> list[HandlerSpec]:
        return [self._specs[name] for name in self.names()]

    def load_modules(self, modules: Iterable[str]) -> None:
        """Import each handler module; a comma-separated string is accepted too."""
        if isinstance(modules, str):
            modules = modules.split(",")
        for module in filter(None, (m.strip() for m in modules)):
            try:
                importlib.import_module(module)
            except Exception as exc:
                reason = " ".join(f"{type(exc).__name__}: {exc}".split())
                raise HandlerError(f"cannot import handler module {module!r}: {reason}") from exc

    def unregister(self, name: str) -> None:
        spec = self.get(name)
        del self._specs[spec.name]
        for alias in spec.aliases:
            self._aliases.pop(alias, None)

    def clear(self) -> None:
        self._specs.clear()
        self._aliases.clear()

    def _add(self, spec: HandlerSpec) -> None:
        current = self._specs.get(spec.name)
        if current is not None and current.target is spec.target:
            self.unregister(spec.name)  # the same function again (its module imported twice): last options win
        for key in (spec.name, *spec.aliases):
            if key in self:
                owner = self.get(key)
                raise HandlerError(f"handler name {key!r} is already used by {_where(owner.target)} "
                                   f"(handler {owner.name!r}); cannot register {_where(spec.target)}")
        self._specs[spec.name] = spec
        self._aliases.update(dict.fromkeys(spec.aliases, spec.name))


registry = Registry()
handler = registry.handler


# --- building a spec -------------------------------------------------------------------------


def _make_spec(target, options: dict) -> HandlerSpec:
    if isinstance(target, type):
        func, signature_of, options = _class_parts(target, options)
    else:
        func = signature_of = target
        options = {**options, "name": _given(options["name"], getattr(target, "__name__", ""))}
        options["description"] = options["description"] or _first_line(getattr(target, "__doc__", ""))
    name = options["name"]
    if not inspect.iscoroutinefunction(signature_of):
        raise HandlerError(f"handler {name!r} must be an async def function "
                           f"(got {_kind(signature_of)}); {_ASYNC_HINT}")
    _check_options(**options)
    params, takes_context, accepts_extra = _signature(name, signature_of, skip_self=func is not target)
    return HandlerSpec(
        name=name, func=func, timeout=options["timeout"], retries=options["retries"],
        retry_backoff=options["retry_backoff"], description=options["description"],
        aliases=tuple(options["aliases"]), takes_context=takes_context,
        module=getattr(target, "__module__", "") or "", target=target, params=params,
        accepts_extra=accepts_extra, model=build_model(name, params, accepts_extra, error=HandlerError),
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
        "description": options["description"] or cls.description
        or _first_line(cls.__doc__) or _first_line(cls.run.__doc__),
        "aliases": options["aliases"] or cls.aliases,
    }
    return run_handler, cls.run, merged


def _check_options(name, timeout, retries, retry_backoff, description, aliases) -> None:
    if isinstance(aliases, str) or not isinstance(aliases, (tuple, list, set, frozenset)):
        raise HandlerError(f"handler {name!r}: aliases must be a tuple of names, not {aliases!r}")
    for key in (name, *aliases):
        if not isinstance(key, str) or not NAME_PATTERN.fullmatch(key):
            raise HandlerError(f"invalid handler name {key!r}: use 1-100 of a-z 0-9 _ . - "
                               f"starting with a letter")
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
    for p in list(inspect.signature(func).parameters.values())[1 if skip_self else 0:]:
        if p.kind is p.VAR_POSITIONAL:
            raise HandlerError(f"handler {name!r} must not take *{p.name}: it is called with keywords only")
        if p.kind is p.POSITIONAL_ONLY:
            raise HandlerError(f"handler {name!r}: parameter {p.name!r} must not be positional-only")
        if p.kind is p.VAR_KEYWORD:
            accepts_extra = True
        elif p.name == CONTEXT:
            takes_context = True
        else:
            params.append(_param(p, hints.get(p.name, Any)))
    return tuple(params), takes_context, accepts_extra


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


def _where(target) -> str:
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"
