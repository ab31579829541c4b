"""taskhub's own settings: the ``TASKHUB`` dict in Django settings over these defaults."""

from django.conf import settings

DEFAULTS = {
    "HANDLER_MODULES": ["tasks_app.handlers"],
    # Health checks that must pass for /healthz to answer 200; the others are reported only.
    "HEALTH_REQUIRED": ["database"],
    # Seconds a health check may take before it counts as failed (the whole answer stays under 1 s).
    "HEALTH_TIMEOUT": 0.8,
}


def get(name: str):
    return getattr(settings, "TASKHUB", {}).get(name, DEFAULTS[name])
