"""``TaskhubBackend``: Django's task framework enqueuing onto taskhub's engines.

An enqueued task is a run (``JobRun``, trigger ``api``, ``requested_by`` the backend) of a paused
job that stands for the task on this backend's engine, queue and priority (created on first use,
``jobs.job_for``); the engine delivers it through its one ``deliver``
(at ``run_after`` when it is set) and the runner calls the task function. The run's id is the
result's id, so ``get_result`` works from any process that reaches the database.

Limits: a result's ``args`` come back bound to parameter names (``kwargs``); a plain ``def`` task
that outlives its job's timeout is recorded ``timed_out`` but its thread runs to its end.
"""

import datetime as dt
import inspect
import json
import logging

from django.core import checks
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_tasks.backends.base import BaseTaskBackend
from django_tasks.base import Task, TaskResult, TaskResultStatus
from django_tasks.exceptions import InvalidTaskError, TaskResultDoesNotExist
from django_tasks.signals import task_enqueued

from tasks_app import conf
from tasks_app.django_tasks import jobs, registration, results
from tasks_app.engines import get_engine
from tasks_app.exceptions import EngineUnavailable
from tasks_app.handlers.registry import KwargsError, registry
from tasks_app.models import JobRun, Trigger
from tasks_app.models.job import name_validator

log = logging.getLogger("tasks_app.django_tasks")


class TaskhubBackend(BaseTaskBackend):
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict) -> None:
        super().__init__(alias, params)
        self.engine = self.options.get("ENGINE", "apscheduler")

    def validate_task(self, task: Task) -> None:
        super().validate_task(task)
        allowed = _task_modules()
        if task.func.__module__ not in allowed:
            listed = ", ".join(allowed) or "none"
            raise InvalidTaskError(
                f"Task {task.module_path!r} is not in a module listed in TASKHUB_TASK_MODULES ({listed})."
            )
        if not name_validator.regex.match(task.queue_name):
            raise InvalidTaskError(f"Queue name {task.queue_name!r}: {name_validator.message}")

    def enqueue(self, task: Task, args, kwargs) -> TaskResult:
        self.validate_task(task)
        if task.module_path not in registration.tasks:
            raise InvalidTaskError(
                f"Task {task.module_path!r} is not registered: is its module in TASKHUB_TASK_MODULES?"
            )
        result = TaskResult(  # the framework's own check: TypeError/ValueError for arguments that are no JSON
            task=task,
            id="",
            status=TaskResultStatus.READY,
            enqueued_at=None,
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=args,
            kwargs=kwargs,
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        json.dumps([result.args, result.kwargs], allow_nan=False)  # ValueError: NaN and infinities are no JSON
        bound = _bound(task, args, kwargs)
        try:
            registry.get(task.module_path).validate_kwargs(bound)
        except KwargsError as exc:
            raise TypeError(f"{task.module_path}: {exc}") from None
        run = self._queue(task, bound)
        object.__setattr__(result, "id", str(run.pk))
        object.__setattr__(result, "enqueued_at", run.created_at)
        transaction.on_commit(lambda: _deliver(run))
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult:
        try:
            run = JobRun.objects.select_related("job").get(pk=int(result_id))
        except (TypeError, ValueError, JobRun.DoesNotExist):
            raise TaskResultDoesNotExist(result_id) from None
        task = registration.tasks.get(run.job.handler)
        if task is None:
            raise TaskResultDoesNotExist(result_id)
        return results.from_run(run, task, self.alias)

    def check(self, **kwargs):
        engines = conf.get("ENGINES")
        if self.engine not in engines:
            yield checks.Error(
                f"TASKS[{self.alias!r}]['OPTIONS']['ENGINE'] is {self.engine!r}; use one of {', '.join(engines)}",
                id="taskhub.E020",
            )

    def _queue(self, task: Task, kwargs: dict) -> JobRun:
        job = jobs.job_for(task, self.engine, self.alias)
        due = task.run_after or timezone.now()
        for _ in range(5):  # one run per (job, slot): two enqueues in the same microsecond take the next one
            try:
                with transaction.atomic():
                    return JobRun.objects.create(
                        job=job,
                        engine=job.engine,
                        trigger=Trigger.API,
                        scheduled_for=due,
                        next_attempt_at=task.run_after,
                        kwargs=kwargs,
                        requested_by=f"django tasks ({self.alias})",
                    )
            except IntegrityError:
                due += dt.timedelta(microseconds=1)
        raise InvalidTaskError(f"cannot queue {task.module_path!r}: its slot is taken")


def _deliver(run: JobRun) -> None:
    try:
        get_engine(run.engine).deliver(run)
    except EngineUnavailable as exc:  # queued all the same: the engine's scheduler hands it over once it can
        log.warning(
            "task queued; its engine cannot take it now",
            extra={"run": run.pk, "engine": run.engine, "reason": str(exc)},
        )


def _bound(task: Task, args, kwargs) -> dict:
    """The arguments by parameter name, as the runner passes them; ``TypeError`` when they do not fit."""
    signature = inspect.signature(task.func)
    arguments = signature.bind(*([None] if task.takes_context else []), *args, **kwargs).arguments
    bound = {}
    for index, (name, value) in enumerate(arguments.items()):
        if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            bound.update(value)
        elif not (task.takes_context and index == 0):  # the context, which the runner supplies
            bound[name] = value
    return bound


def _task_modules() -> list[str]:
    modules = conf.get("TASK_MODULES")
    return [m.strip() for m in (modules.split(",") if isinstance(modules, str) else modules) if m.strip()]
