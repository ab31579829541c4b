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
