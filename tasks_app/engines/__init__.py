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


def project_jobs(job_ids) -> None:
    """Bring every engine's schedule in line with these jobs as they are stored now."""
    from tasks_app.models import Job

    jobs = {job.pk: job for job in Job.objects.filter(pk__in=job_ids)}
    for job_id in job_ids:
        job = jobs.get(job_id)
        for engine in all_engines():
            try:
                if job is not None and job.enabled and job.engine == engine.name:
                    engine.schedule(job)
                else:
                    engine.unschedule(job_id)
            except Exception:  # one engine's trouble must not block the save or the others
                log.exception("projecting a job failed", extra={"job": job_id, "engine": engine.name})
