"""The engines: by name (``TASKHUB["ENGINES"]``), projecting jobs into them, and handing them runs.

``base`` is the contract every engine keeps (``BaseEngine``: schedule, unschedule, deliver,
capability flags, check), ``celery/`` and ``apscheduler/`` the two engines, ``memory`` an
in-process one for one process and the tests. Shared by the schedulers: ``leader`` (one
leader per engine), ``listener`` (hearing job changes), ``quarantine`` (skipping jobs that
cannot be scheduled) and ``redelivery`` (runs whose delivery was lost).

Here: ``get_engine``, ``project_jobs`` (connected to ``models.changes.jobs_changed`` by
``connect_receivers`` in ``AppConfig.ready``) and ``request_run`` (run now, API triggers).

What it is not: an engine never calls a handler and never writes a run's outcome; it hands
fires and runs to the runner.
"""

import logging
from functools import cache

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from tasks_app import conf
from tasks_app.exceptions import EngineUnavailable
from tasks_app.models import Job, JobRun, Trigger
from tasks_app.models.changes import jobs_changed
from tasks_app.models.problems import with_problems
from tasks_app.runner.run_requests import queue_run

log = logging.getLogger("tasks_app.engines")


@cache
def get_engine(name: str):
    engines = conf.get("ENGINES")
    if name not in engines:
        raise LookupError(f"no engine configured for '{name}'")
    return import_string(engines[name])(name)


@receiver(setting_changed, dispatch_uid="taskhub_engines_setting_changed")
def _settings_changed(setting, **kwargs):
    if setting == "TASKHUB":
        get_engine.cache_clear()


def all_engines():
    return [get_engine(name) for name in conf.get("ENGINES")]


def project_jobs(job_ids) -> list[tuple]:
    """Bring every engine's schedule in line with these jobs as they are stored now.

    A job that cannot be scheduled (``Job.schedule_problem``) is taken out of every engine;
    the ``(job, reason)`` pairs of those are returned.
    """
    jobs = {job.pk: job for job in Job.objects.filter(pk__in=job_ids)}
    broken = with_problems(job for job in jobs.values() if job.enabled)
    for job, reason in broken:
        log.warning("job cannot be scheduled; left out of the engines", extra={"job": job.name, "reason": reason})
        del jobs[job.pk]
    for engine in all_engines():
        mine = [job for job in jobs.values() if job.enabled and job.engine == engine.name]
        try:
            engine.schedule_many(mine)  # in bulk where the engine can
        except Exception:
            log.warning("projecting jobs in bulk failed; one by one", exc_info=True, extra={"engine": engine.name})
            for job in mine:
                _guarded(engine, job.pk, engine.schedule, job)
        others = sorted(set(job_ids) - {job.pk for job in mine})
        _guarded(engine, others, engine.unschedule_many, others)
    return broken


def _guarded(engine, job, method, *args) -> None:
    """Call one engine's method; one engine's trouble must not block the save or the others."""
    try:
        method(*args)
    except Exception:
        log.exception("projecting a job failed", extra={"job": job, "engine": engine.name})


def request_run(
    job: Job,
    trigger: str = Trigger.RUN_NOW,
    kwargs: dict | None = None,
    *,
    paused_allowed: bool | None = None,
    **requester,
) -> JobRun:
    """Queue a run of ``job`` (``runner.run_requests.queue_run``, which takes ``requester``: who asked)
    and hand it to the job's engine.

    Raises ``RunRefused`` when it may not run now (``run_requests.check_runnable``: broken, or
    paused for an API client not allowed), and ``EngineUnavailable`` (with ``run`` set) when it
    is queued but nothing will execute it now.
    """
    run = queue_run(job, trigger, kwargs, paused_allowed=paused_allowed, **requester)
    try:
        get_engine(job.engine).deliver(run)
    except EngineUnavailable as exc:
        exc.run = run  # queued all the same: the caller says so instead of pretending it runs
        raise
    return run


def _project_changed(sender, job_ids, **kwargs) -> None:
    project_jobs(job_ids)


def connect_receivers() -> None:
    """Project every committed job change into the engines (called once, from ``AppConfig.ready``)."""
    jobs_changed.connect(_project_changed, dispatch_uid="taskhub_project_changed_jobs")
