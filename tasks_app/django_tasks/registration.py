"""The ``@task`` functions of the allow-listed modules (``TASKHUB_TASK_MODULES``), registered as handlers.

Each module-level ``django_tasks.Task`` of a listed module becomes the handler named by its dotted
path (``myapp.tasks.send_report``): an async wrapper with the task function's signature, so a job's
kwargs are checked against it like any handler's, and the runner awaits it on the process's loop. A
plain ``def`` task runs in a worker thread; a task with ``takes_context`` gets the framework's
``TaskContext`` (its ``task_result`` is the run, its ``attempt`` the run's attempt).

What it is not: it queues nothing and reads no run (``backend``, ``results``).
"""

import functools
import importlib
import inspect

import anyio
from django.db import close_old_connections
from django_tasks.base import Task, TaskContext, TaskResult, TaskResultStatus
from django_tasks.utils import normalize_json

from tasks_app.handlers.context import RunContext
from tasks_app.handlers.registry import HandlerError, registry

# The registered tasks by handler name (their dotted path).
tasks: dict[str, Task] = {}


def register_modules(modules) -> list[str]:
    """Import each listed module and register its tasks; their names. A comma-separated string works too."""
    if isinstance(modules, str):
        modules = modules.split(",")
    names = []
    for name in filter(None, (m.strip() for m in modules)):
        try:
            module = importlib.import_module(name)
        except Exception as exc:
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())
            raise HandlerError(f"cannot import task module {name!r}: {reason}") from exc
        for value in vars(module).values():
            if isinstance(value, Task) and value.func.__module__ == module.__name__:
                names.append(register(value))
    return names


def register(task: Task) -> str:
    name = task.module_path
    registry.handler(name=name)(_as_handler(task))  # its description: the docstring, which wraps() keeps
    tasks[name] = task
    return name


def unregister(name: str) -> None:
    registry.unregister(name)
    tasks.pop(name, None)


def _as_handler(task: Task):
    """An async function with the task's parameters (``context: RunContext`` for a task that takes context)."""
    func = task.func
    signature = inspect.signature(func)
    params = list(signature.parameters.values())
    if task.takes_context:
        params = params[1:] + [inspect.Parameter("context", inspect.Parameter.KEYWORD_ONLY, annotation=RunContext)]

    @functools.wraps(func)
    async def run_task(**kwargs):
        if task.takes_context:
            context = TaskContext(task_result=_running_result(task, kwargs.pop("context"), kwargs))
            call = functools.partial(func, context, **kwargs)
        else:
            call = functools.partial(func, **kwargs)
        if inspect.iscoroutinefunction(func):
            value = await call()
        else:
            value = await anyio.to_thread.run_sync(_in_thread, call)
        return normalize_json(value)

    run_task.__signature__ = signature.replace(parameters=params)
    run_task.__annotations__ = {**func.__annotations__, "context": RunContext}
    if not task.takes_context:
        run_task.__annotations__.pop("context")
    return run_task


def _in_thread(call):
    """A plain ``def`` task in a worker thread, its database connection checked around it."""
    close_old_connections()
    try:
        return call()
    finally:
        close_old_connections()


def _running_result(task: Task, context: RunContext, kwargs: dict) -> TaskResult:
    return TaskResult(
        task=task,
        id=str(context.run_id),
        status=TaskResultStatus.RUNNING,
        enqueued_at=None,
        started_at=None,
        finished_at=None,
        last_attempted_at=None,
        args=[],
        kwargs=kwargs,
        backend=task.backend,
        errors=[],
        worker_ids=[context.engine] * context.attempt,
    )
