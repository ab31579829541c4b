"""Admin actions on jobs and runs: small functions over the queryset methods and the runner.

Bulk changes go through ``JobQuerySet`` (``change_to``, ``duplicate``) so they bump the change
marker; runs are requested through ``run_requests`` only. Each action says what happened in one
message and writes what it changed to the audit trail (``audit``); ``queue_runs`` and
``set_enabled`` are shared with the buttons of the job page.
"""

import logging

from django.contrib import admin, messages
from django.contrib.admin.models import ADDITION
from django.core.exceptions import ValidationError
from django.db import transaction

from tasks_app.admin import audit
from tasks_app.engines import request_run
from tasks_app.engines.base import EngineUnavailable
from tasks_app.models import Engine, Job, Trigger
from tasks_app.runner import run_requests

log = logging.getLogger("tasks_app.admin.jobs")


def counted(n: int, noun: str) -> str:
    """``1 job``, ``2 jobs``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _report(modeladmin, request, changed: int, verb: str, unchanged_note: str) -> None:
    if changed:
        modeladmin.message_user(request, f"{counted(changed, 'job')} {verb}.", messages.SUCCESS)
    else:
        modeladmin.message_user(request, f"No job {verb}: {unchanged_note}.", messages.WARNING)


# -- jobs ------------------------------------------------------------------------------------
def set_enabled(request, queryset, enabled: bool, message: str) -> list:
    """Enable or pause the jobs of ``queryset``; the ones that changed, each logged with ``message``."""
    with transaction.atomic():
        changed = queryset.change_to(enabled=enabled)
        audit.log(request, changed, message)
    return changed


@admin.action(permissions=["change"], description="Enable selected jobs")
def enable(modeladmin, request, queryset):
    changed = set_enabled(request, queryset, True, "Enabled.")
    _report(modeladmin, request, len(changed), "enabled", "the selected jobs were already enabled")


@admin.action(permissions=["change"], description="Pause selected jobs")
def pause(modeladmin, request, queryset):
    changed = set_enabled(request, queryset, False, "Paused.")
    _report(modeladmin, request, len(changed), "paused", "the selected jobs were already paused")


@admin.action(permissions=["run_job"], description="Run selected jobs now")
def run_now(modeladmin, request, queryset):
    queue_runs(modeladmin, request, ((job, None) for job in queryset))


@admin.action(permissions=["add"], description="Duplicate selected jobs (the copies are paused)")
def duplicate(modeladmin, request, queryset):
    originals = [job.pk for job in queryset]  # duplicate() turns these very objects into the copies
    try:
        with transaction.atomic():
            copies = queryset.duplicate()
            sources = Job.objects.in_bulk(originals)
            pairs = [(sources[pk], copy) for pk, copy in zip(originals, copies, strict=True)]
            audit.log_each(
                request, ((copy, f"Added as a paused copy of “{job.name}”.") for job, copy in pairs), ADDITION
            )
            audit.log_each(request, ((job, f"Duplicated as “{copy.name}” (paused).") for job, copy in pairs))
    except ValidationError as exc:  # a stored job that no longer validates (e.g. its handler is gone)
        modeladmin.message_user(request, f"Nothing duplicated: {'; '.join(exc.messages)}", messages.ERROR)
        return
    names = ", ".join(copy.name for copy in copies)
    modeladmin.message_user(request, f"{counted(len(copies), 'job')} duplicated (paused): {names}.", messages.SUCCESS)


def _switch(engine: Engine):
    @admin.action(permissions=["change"], description=f"Switch selected jobs to {engine.label}")
    def switch(modeladmin, request, queryset):
        with transaction.atomic():
            changed = queryset.change_to(engine=engine.value)
            audit.log_each(
                request,
                ((job, f"Switched engine from {job.get_engine_display()} to {engine.label}.") for job in changed),
            )
        _report(
            modeladmin,
            request,
            len(changed),
            f"switched to {engine.label}",
            f"the selected jobs already use {engine.label}",
        )

    switch.__name__ = f"switch_to_{engine.value}"
    return switch


switch_to_celery = _switch(Engine.CELERY)
switch_to_apscheduler = _switch(Engine.APSCHEDULER)


def queue_runs(modeladmin, request, requests, trigger=Trigger.RUN_NOW) -> list:
    """Request a run per ``(job, kwargs)``; one success message for the queued, one warning for the refused.

    ``kwargs`` None means the job's own. Returns the run queued for each request, or None where
    none was; a run now is logged on its job here, a retry by ``run_actions.retry``.
    """
    runs, queued, refused, waiting, paused = [], [], [], [], []
    for job, kwargs in requests:
        run = None
        try:
            run = request_run(job, trigger=trigger, kwargs=kwargs, requested_by=audit.requester(request))
        except run_requests.RunRefused as exc:
            refused.append(str(exc))
        except EngineUnavailable as exc:  # queued all the same: its engine starts it when it is back
            run = exc.run
            waiting.append(f"{job.name} (run #{run.pk}) is queued, but {exc}")
        except Exception as exc:  # the engine could not take it (a broker down): say so, not a 500
            log.exception("run request failed", extra={"job": job.name, "trigger": trigger})
            refused.append(f"{job.name}: {type(exc).__name__}: {exc}")
        else:
            queued.append((job.name, run.pk))
            paused += [] if job.enabled else [job.name]
        runs.append(run)
    if trigger == Trigger.RUN_NOW:
        audit.log_each(request, ((run.job, f"Run now: run #{run.pk} queued.") for run in runs if run))
    noun = "retry" if trigger == Trigger.RETRY else "run"
    if len(queued) == 1:
        [(name, pk)] = queued
        modeladmin.message_user(request, f"{noun.capitalize()} of {name} queued (run #{pk}).", messages.SUCCESS)
    elif queued:
        listed = ", ".join(f"{name} (run #{pk})" for name, pk in queued)
        modeladmin.message_user(request, f"{len(queued)} {noun}s queued: {listed}.", messages.SUCCESS)
    if paused:  # a person may run a paused job on purpose (run_requests.check_runnable): say what it means
        names = ", ".join(paused)
        modeladmin.message_user(
            request, f"Paused, so this {noun} only: {names} (the schedule stays paused until resumed).", messages.INFO
        )
    if refused:
        modeladmin.message_user(request, f"Not run: {'; '.join(refused)}.", messages.WARNING)
    if waiting:
        modeladmin.message_user(request, f"Waiting: {'; '.join(waiting)}.", messages.WARNING)
    return runs
