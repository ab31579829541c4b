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
through unchecked. Registering the same function object again replaces its spec; any other
clash of names or aliases is an error.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pydantic
from pydantic import AwareDatetime, ConfigDict, Field, ValidationError

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_.-]{0,99}")
CONTEXT = "context"
_NONE = type(None)
_ASYNC_HINT = "wrap blocking code with anyio.to_thread.run_sync"


class HandlerError(Exception):
    """A handler cannot be registered (or its module cannot be imported)."""


class UnknownHandler(LookupError):
    """No handler is registered under that name or alias."""


class KwargsError(ValueError):
    """kwargs do not fit the handler's signature; ``errors`` maps parameter -> message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__(errors)
        self.errors = dict(sorted(errors.items()))

    def __str__(self) -> str:
        return "; ".join(f"{name}: {message}" for name, message in self.errors.items())


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
        example = {p.name: _example_value(p) for p in self.params}
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
        text = _json_text({k: v for k, v in kwargs.items() if k != CONTEXT})
        try:
            validated = self.model.model_validate_json(text, strict=True)
        except ValidationError as exc:
            errors = _translate(exc, {p.name: p.annotation for p in self.params}) | errors
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
        accepts_extra=accepts_extra, model=_build_model(name, params, accepts_extra),
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
    return Param(p.name, _type_text(annotation), required, default, annotation)


def _build_model(name: str, params: tuple[Param, ...], accepts_extra: bool):
    # Field names are positional so that any parameter name ("model_config", "json") is safe.
    fields = {
        f"p{i}": (_aware(p.annotation), Field(... if p.required else p.default, alias=p.name))
        for i, p in enumerate(params)
    }
    config = ConfigDict(extra="allow" if accepts_extra else "forbid", strict=True)
    try:
        return pydantic.create_model("Kwargs_" + re.sub(r"\W", "_", name), __config__=config, **fields)
    except Exception as exc:
        raise HandlerError(f"handler {name!r}: unsupported parameter annotation: {exc}") from exc


# --- kwargs errors ---------------------------------------------------------------------------

# pydantic error types -> our words; a rare type falls back to pydantic's own message.
_MESSAGES = {error_type: message for message, error_types in {
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
}.items() for error_type in error_types.split()}


def _json_text(kwargs: dict) -> str:
    try:
        return json.dumps(kwargs, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise KwargsError({"__all__": f"kwargs must be JSON-serializable: {exc}"}) from None


def _translate(exc: ValidationError, annotations: dict[str, Any]) -> dict[str, str]:
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
        return f"must be {_type_text(annotation)}"
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


# --- annotations -----------------------------------------------------------------------------

_SAMPLES = {bool: True, int: 1, float: 1.5, str: "text", datetime: "2030-01-01T00:00:00+00:00",
            AwareDatetime: "2030-01-01T00:00:00+00:00", date: "2030-01-01"}


def _example_value(param: Param):
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
        return Union[new]
    return Annotated[new] if origin is Annotated else origin[new]


def _type_text(tp) -> str:
    origin, args = get_origin(tp), get_args(tp)
    if tp is _NONE or tp is None:
        return "None"
    if tp is Ellipsis:
        return "..."
    if origin is Annotated:
        return _type_text(args[0])
    if origin is Literal:
        return "Literal[" + ",".join(map(repr, args)) + "]"
    if _is_union(origin):
        return " | ".join(map(_type_text, args))
    if origin is not None:
        base = getattr(origin, "__name__", str(origin))
        return f"{base}[{', '.join(map(_type_text, args))}]" if args else base
    return tp.__name__ if isinstance(tp, type) else str(tp).replace("typing.", "")


def _strip_optional(tp):
    if get_origin(tp) is Annotated:
        return _strip_optional(get_args(tp)[0])
    if _is_union(get_origin(tp)):
        rest = [a for a in get_args(tp) if a is not _NONE]
        return rest[0] if len(rest) == 1 else Union[tuple(rest)]
    return tp


def _is_union(origin) -> bool:
    return origin is Union or origin is types.UnionType


def _is_mapping(tp) -> bool:
    return isinstance(tp, type) and issubclass(tp, Mapping)


def _is_sequence(tp) -> bool:
    return isinstance(tp, type) and issubclass(tp, (Sequence, Set)) and not issubclass(tp, (str, bytes))


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
