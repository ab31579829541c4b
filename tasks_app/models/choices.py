"""The fixed vocabularies of jobs and runs: engines, schedule types, run statuses, triggers."""

from django.db import models
from django.db.models import Q


class Engine(models.TextChoices):
    CELERY = "celery", "Celery"
    APSCHEDULER = "apscheduler", "APScheduler"


class ScheduleType(models.TextChoices):
    CRON = "cron", "Cron"
    INTERVAL = "interval", "Interval"
    ONCE = "once", "Once"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    TIMED_OUT = "timed_out", "Timed out"
    CANCELLED = "cancelled", "Cancelled"
    SKIPPED = "skipped", "Skipped"


FINISHED = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.CANCELLED, RunStatus.SKIPPED)


class Trigger(models.TextChoices):
    SCHEDULE = "schedule", "Schedule"
    RUN_NOW = "run_now", "Run now"
    API = "api", "API"
    RETRY = "retry", "Retry"


def in_choices(field, choices):
    return Q(**{f"{field}__in": [value for value, _ in choices.choices]})
