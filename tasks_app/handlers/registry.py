"""Handlers held by name: the registry that jobs point into.

What it is: a plain-Python map from a stable handler name (and its aliases) to a
``HandlerSpec`` -- the async callable, its run defaults (timeout, retries, backoff) and a
strict, pydantic-built check of the JSON kwargs a job may pass to it. Handler modules
register with the ``handler`` decorator::

    from tasks_app.handlers.registry import handler

    @handler(timeout=30, retries=2, aliases=("old_name",))
    async def number_sum(x: int, y: int) -> int:
        return x + y

A ``BaseHandler`` subclass registers the same way, for families of jobs that share options.

What it is not: it imports no Django and no engine, stores nothing, schedules nothing and
never calls a handler. The app loads the configured modules (``load_modules``), the models
validate ``Job.kwargs`` with ``validate_kwargs``, and the runner awaits ``spec.func``.

Limits: kwargs are checked as JSON against the annotations (strict: ``"1"`` is no ``int``,
a ``datetime`` needs a time zone); keys that only a ``**kwargs`` parameter takes are passed
through unchecked (the check itself is ``tasks_app.handlers.kwargs_schema``; reading a handler into
its spec is ``tasks_app.handlers.specs``). Registering the same function object again
replaces its spec; any other clash of names or aliases is an error.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from tasks_app.exceptions import HandlerError, UnknownHandler
from tasks_app.handlers.kwargs_schema import KwargsError
from tasks_app.handlers.specs import CONTEXT, BaseHandler, HandlerSpec, Param, make_spec

__all__ = [
    "CONTEXT",
    "BaseHandler",
    "HandlerError",
    "HandlerSpec",
    "KwargsError",
    "Param",
    "Registry",
    "UnknownHandler",
    "handler",
    "registry",
]

# Handler modules that moved, by their old names: a deployment's TASKHUB_HANDLER_MODULES keeps working.
MOVED_MODULES = {"tasks_app.handlers": "tasks_app.handlers.bundled"}


class Registry:
    def __init__(self):
        self._specs: dict[str, HandlerSpec] = {}
        self._aliases: dict[str, str] = {}
        self.handler = self.handler  # one bound decorator per registry: `handler is registry.handler`

    def handler(
        self, func=None, /, *, name=None, timeout=None, retries=0, retry_backoff=1.0, description=None, aliases=()
    ):
        """Register an async function or BaseHandler subclass; bare or with options."""
        if isinstance(func, str):
            raise HandlerError(f"use @handler(name={func!r}), not @handler({func!r})")
        options = dict(
            name=name,
            timeout=timeout,
            retries=retries,
            retry_backoff=retry_backoff,
            description=description,
            aliases=aliases,
        )

        def register(target):
            self._add(make_spec(target, options))
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
            module = MOVED_MODULES.get(module, module)
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
                raise HandlerError(
                    f"handler name {key!r} is already used by {_where(owner.target)} "
                    f"(handler {owner.name!r}); cannot register {_where(spec.target)}"
                )
        self._specs[spec.name] = spec
        self._aliases.update(dict.fromkeys(spec.aliases, spec.name))


registry = Registry()
handler = registry.handler


# --- small helpers ---------------------------------------------------------------------------


def _where(target) -> str:
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"
