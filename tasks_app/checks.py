"""System checks for what can be known at start-up: handler modules, stored handlers, the engines' own
checks (``BaseEngine.check``), and Celery time limits against the broker's visibility timeout."""

from django.apps import apps
from django.core.checks import Error, register
from django.db import DatabaseError

from tasks_app.engines import all_engines
from tasks_app.engines.celery.messages import hard_time_limit, visibility_timeout
from tasks_app.handlers.registry import registry
from tasks_app.models import Job


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

    try:
        stored = set(Job.objects.values_list("handler", flat=True).distinct())
    except DatabaseError:  # not migrated yet
        return []
    return [
        Error(
            f"jobs name the handler '{name}', which is not registered",
            hint="Register it, add an alias for its old name, or change those jobs.",
            id="taskhub.E002",
        )
        for name in sorted(stored)
        if name not in registry
    ]


@register("taskhub")
def engines_configured(app_configs, **kwargs):
    """Each configured engine's own checks (``BaseEngine.check``)."""
    return [message for engine in all_engines() for message in engine.check()]


@register("taskhub", "database")
def visibility_timeout_exceeds_time_limits(app_configs, databases=None, **kwargs):
    if not databases:
        return []
    from taskhub.celery import app  # the project's Celery app: built on first import, so only when checked

    visibility = visibility_timeout(app)
    if visibility is None:
        return []
    try:
        jobs = list(Job.objects.filter(engine="celery"))
    except DatabaseError:
        return []
    too_long = [
        (job.name, limit)
        for job in jobs
        if job.handler in _registered() and (limit := hard_time_limit(job)) and limit >= visibility
    ]
    return [
        Error(
            f"job '{name}' may run {limit:g} s (its hard time limit), longer than the broker's "
            f"visibility_timeout ({visibility} s): Redis would deliver it again while it runs",
            hint="Raise TASKHUB_VISIBILITY_TIMEOUT or lower the job's timeout.",
            id="taskhub.E005",
        )
        for name, limit in too_long
    ]


def _registered():
    return registry
