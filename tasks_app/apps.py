"""The app's start-up: settings wired into the handler layer, handler modules loaded, receivers connected."""

from django.apps import AppConfig


class TasksAppConfig(AppConfig):
    name = "tasks_app"
    verbose_name = "taskhub"
    default_auto_field = "django.db.models.BigAutoField"
    handler_import_error: str | None = None

    def ready(self):
        # Imported here, not at the top: the app registry must be ready before models load.
        from tasks_app import checks, conf  # noqa: F401  (registers the system checks)
        from tasks_app.django_tasks import registration
        from tasks_app.engines import connect_receivers
        from tasks_app.exceptions import HandlerError
        from tasks_app.handlers import json_limits
        from tasks_app.handlers.registry import registry
        from tasks_app.models import signals  # noqa: F401  (a saved or deleted job bumps the marker)
        from tasks_app.monitoring import schedulers  # noqa: F401  (registers the scheduler health checks)

        json_limits.limits = conf.kwargs_limits  # the settings' limits, read at each check
        connect_receivers()
        try:
            registry.load_modules(conf.get("HANDLER_MODULES"))
            registration.register_modules(conf.get("TASK_MODULES"))  # Django @task functions: handlers too
        except HandlerError as exc:  # reported by the system check taskhub.E001, in one line
            self.handler_import_error = str(exc)
