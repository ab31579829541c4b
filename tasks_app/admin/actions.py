"""Admin actions on jobs and runs: small functions over the queryset methods and the runner.

Bulk changes go through ``JobQuerySet`` (``enable``, ``pause``, ...) so they bump the change
marker; runs are requested through ``run_requests`` only. Each action says what happened in one
message; ``queue_runs`` is shared with the "Run now" button of the job page.
"""

import logging

from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from tasks_app.engines import request_run
from tasks_app.engines.base import EngineUnavailable
from tasks_app.models import Engine, RunStatus, Trigger
from tasks_app.runner import run_requests

log = logging.getLogger("tasks_app.admin.jobs")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _report(modeladmin, request, changed: int, verb: str, unchanged_note: str) -> None:
    if changed:
        modeladmin.message_user(request, f"{_count(changed, 'job')} {verb}.", messages.SUCCESS)
    else:
        modeladmin.message_user(request, f"No job {verb}: {unchanged_note}.", messages.WARNING)


# -- jobs ------------------------------------------------------------------------------------
@admin.action(permissions=["change"], description="Enable selected jobs")
def enable(modeladmin, request, queryset):
    _report(modeladmin, request, queryset.enable(), "enabled", "the selected jobs were already enabled")


@admin.action(permissions=["change"], description="Pause selected jobs")
def pause(modeladmin, request, queryset):
    _report(modeladmin, request, queryset.pause(), "paused", "the selected jobs were already paused")


@admin.action(permissions=["run_job"], description="Run selected jobs now")
def run_now(modeladmin, request, queryset):
    queue_runs(modeladmin, request, ((job, None) for job in queryset))


@admin.action(permissions=["add"], description="Duplicate selected jobs (the copies are paused)")
def duplicate(modeladmin, request, queryset):
    try:
        copies = queryset.duplicate()
    except ValidationError as exc:  # a stored job that no longer validates (e.g. its handler is gone)
        modeladmin.message_user(request, f"Nothing duplicated: {'; '.join(exc.messages)}", messages.ERROR)
        return
    names = ", ".join(copy.name for copy in copies)
    modeladmin.message_user(request, f"{_count(len(copies), 'job')} duplicated (paused): {names}.", messages.SUCCESS)


def _switch(engine: Engine):
    @admin.action(permissions=["change"], description=f"Switch selected jobs to {engine.label}")
    def switch(modeladmin, request, queryset):
        _report(
            modeladmin,
            request,
            queryset.switch_engine(engine.value),
            f"switched to {engine.label}",
            f"the selected jobs already use {engine.label}",
        )

    switch.__name__ = f"switch_to_{engine.value}"
    return switch


switch_to_celery = _switch(Engine.CELERY)
switch_to_apscheduler = _switch(Engine.APSCHEDULER)


def queue_runs(modeladmin, request, requests, trigger=Trigger.RUN_NOW) -> None:
    """Request a run per ``(job, kwargs)``; one success message for the queued, one warning for the refused.

    ``kwargs`` None means the job's own.
    """
    queued, refused, waiting = [], [], []
    for job, kwargs in requests:
        try:
            run = request_run(job, trigger=trigger, kwargs=kwargs)
        except run_requests.RunRefused as exc:
            refused.append(str(exc))
        except EngineUnavailable as exc:
            waiting.append(f"{job.name} (run #{exc.run.pk}) is queued, but {exc}")
        except Exception as exc:  # the engine could not take it (a broker down): say so, not a 500
            log.exception("run request failed", extra={"job": job.name, "trigger": trigger})
            refused.append(f"{job.name}: {type(exc).__name__}: {exc}")
        else:
            queued.append((job.name, run.pk))
    noun = "retry" if trigger == Trigger.RETRY else "run"
    if len(queued) == 1:
        [(name, pk)] = queued
        modeladmin.message_user(request, f"{noun.capitalize()} of {name} queued (run #{pk}).", messages.SUCCESS)
    elif queued:
        listed = ", ".join(f"{name} (run #{pk})" for name, pk in queued)
        modeladmin.message_user(request, f"{len(queued)} {noun}s queued: {listed}.", messages.SUCCESS)
    if refused:
        modeladmin.message_user(request, f"Not run: {'; '.join(refused)}.", messages.WARNING)
    if waiting:
        modeladmin.message_user(request, f"Waiting: {'; '.join(waiting)}.", messages.WARNING)


# -- runs ------------------------------------------------------------------------------------
@admin.action(permissions=["run_job"], description="Cancel selected runs (queued or running)")
def cancel(modeladmin, request, queryset):
    count = run_requests.request_cancel(queryset)  # it touches only queued and running runs
    if count:
        modeladmin.message_user(
            request,
            f"Cancel requested for {_count(count, 'run')}: queued ones are cancelled, "
            f"running ones stop at their next heartbeat.",
            messages.SUCCESS,
        )
    else:
        modeladmin.message_user(
            request, "No run cancelled: none of the selected runs is queued or running.", messages.WARNING
        )


@admin.action(permissions=["run_job"], description="Retry selected failed runs (as a new run)")
def retry(modeladmin, request, queryset):
    failed = list(queryset.filter(status__in=[RunStatus.FAILED, RunStatus.TIMED_OUT]).select_related("job"))
    if not failed:
        modeladmin.message_user(
            request, "No run retried: only failed or timed-out runs can be retried.", messages.WARNING
        )
        return
    queue_runs(modeladmin, request, ((run.job, run.kwargs) for run in failed), Trigger.RETRY)
