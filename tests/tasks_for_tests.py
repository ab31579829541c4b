"""Django ``@task`` functions for the tests of ``tasks_app.django_tasks`` (listed in TASKHUB_TASK_MODULES there)."""

import asyncio
import os

from django_tasks import TaskContext, task


@task
def add(x: int, y: int) -> int:
    """Adds two numbers, in a worker thread."""
    return x + y


@task
async def async_echo(value: dict) -> dict:
    await asyncio.sleep(0)
    return {"echo": value, "pid": os.getpid()}


@task
def explode(message: str) -> None:
    raise KeyError(message)


@task(takes_context=True)
def with_context(context: TaskContext, tag: str) -> dict:
    return {"tag": tag, "id": context.task_result.id, "attempt": context.attempt, "pid": os.getpid()}


@task
async def nap(seconds: float) -> str:
    """Sleeps: longer than its job's timeout in the tests."""
    await asyncio.sleep(seconds)
    return "woke"
