"""The engines by name (``TASKHUB["ENGINES"]``), and projecting jobs into them."""

import logging
from functools import cache

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from tasks_app import conf

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
    from tasks_app.models import Job
    from tasks_app.models.problems import with_problems

    jobs = {job.pk: job for job in Job.objects.filter(pk__in=job_ids)}
    broken = with_problems(job for job in jobs.values() if job.enabled)
    for job, reason in broken:
        log.warning("job cannot be scheduled; left out of the engines", extra={"job": job.name, "reason": reason})
        del jobs[job.pk]
    for engine in all_engines():
        mine = [job for job in jobs.values() if job.enabled and job.engine == engine.name]
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
