"""System checks for what can be known at start-up."""

from django.apps import apps
from django.core.checks import Error, register
from django.db import DatabaseError


@register("taskhub")
def handler_modules_import(app_configs, **kwargs):
    problem = apps.get_app_config("tasks_app").handler_import_error
    if problem:
        return [Error(problem, hint="Check TASKHUB_HANDLER_MODULES / TASKHUB['HANDLER_MODULES'].", id="taskhub.E001")]
    return []


@register("taskhub", "database")
def jobs_name_registered_handlers(app_configs, databases=None, **kwargs):
    if not databases:
        return []
    from tasks_app.models import Job
    from tasks_app.registry import registry

    try:
        stored = set(Job.objects.values_list("handler", flat=True).distinct())
    except DatabaseError:  # not migrated yet
        return []
    return [
        Error(f"jobs name the handler '{name}', which is not registered",
              hint="Register it, add an alias for its old name, or change those jobs.", id="taskhub.E002")
        for name in sorted(stored) if name not in registry
    ]


# Each Celery setting taskhub's guarantees rest on, with why.
CELERY_REQUIREMENTS = {
    "task_acks_late": (True, "a task is acknowledged after it ran, so a dead worker's task is re-delivered"),
    "task_reject_on_worker_lost": (True, "a task whose pool process died is re-queued, not lost"),
    "worker_prefetch_multiplier": (1, "a busy worker does not hold messages other workers could run"),
    "task_serializer": ("json", "messages are JSON only"),
    "accept_content": (["json"], "a worker never unpickles a message"),
}


@register("taskhub")
def celery_reliability_settings(app_configs, **kwargs):
    from taskhub.celery import app

    errors = []
    for name, (wanted, why) in CELERY_REQUIREMENTS.items():
        value = app.conf.get(name)
        if (list(value) if isinstance(value, (list, tuple, set)) else value) != wanted:
            errors.append(Error(f"Celery setting {name} is {value!r}; taskhub needs {wanted!r}: {why}",
                                id="taskhub.E003"))
    visibility = _visibility_timeout(app)
    from tasks_app import conf

    if visibility is not None and conf.get("MAX_RETRY_DELAY_SECONDS") >= visibility:
        errors.append(Error(
            f"TASKHUB['MAX_RETRY_DELAY_SECONDS'] ({conf.get('MAX_RETRY_DELAY_SECONDS')}) must be below the broker's "
            f"visibility_timeout ({visibility}): a retry waiting longer is re-delivered and runs twice",
            id="taskhub.E004"))
    return errors


@register("taskhub", "database")
def visibility_timeout_exceeds_time_limits(app_configs, databases=None, **kwargs):
    if not databases:
        return []
    from taskhub.celery import app
    from tasks_app.engines.celery import hard_time_limit
    from tasks_app.models import Job

    visibility = _visibility_timeout(app)
    if visibility is None:
        return []
    try:
        jobs = list(Job.objects.filter(engine="celery"))
    except DatabaseError:
        return []
    too_long = [(job.name, limit) for job in jobs if job.handler in _registered() and (limit := hard_time_limit(job))
                and limit >= visibility]
    return [Error(f"job '{name}' may run {limit:g} s (its hard time limit), longer than the broker's "
                  f"visibility_timeout ({visibility} s): Redis would deliver it again while it runs",
                  hint="Raise TASKHUB_VISIBILITY_TIMEOUT or lower the job's timeout.", id="taskhub.E005")
            for name, limit in too_long]


def _visibility_timeout(app):
    if not str(app.conf.broker_url or "").startswith(("redis://", "rediss://", "sqs://")):
        return None
    return (app.conf.broker_transport_options or {}).get("visibility_timeout", 3600)


def _registered():
    from tasks_app.registry import registry

    return registry
