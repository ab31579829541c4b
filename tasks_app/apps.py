from django.apps import AppConfig


class TasksAppConfig(AppConfig):
    name = "tasks_app"
    verbose_name = "taskhub"
    default_auto_field = "django.db.models.BigAutoField"
    handler_import_error: str | None = None

    def ready(self):
        from tasks_app import checks, conf, heartbeat, json_limits, signals  # noqa: F401  (receivers, checks)
        from tasks_app.registry import HandlerError, registry

        json_limits.limits = conf.kwargs_limits  # the settings' limits, read at each check

        try:
            registry.load_modules(conf.get("HANDLER_MODULES"))
        except HandlerError as exc:  # reported by the system check taskhub.E001, in one line
            self.handler_import_error = str(exc)
