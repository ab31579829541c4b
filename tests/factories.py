"""Factories: one job or run with sensible defaults, overridden per test."""

import datetime as dt
import itertools

from django.utils import timezone

from tasks_app.models import Job

_names = itertools.count(1)


def job_factory(**overrides) -> Job:
    fields = {
        "name": f"job-{next(_names)}",
        "handler": "number_sum",
        "kwargs": {"x": 1, "y": 2},
        # Yearly ticks (multiples of 365 days since 1970): a default job never fires during a test.
        # (Hourly ticks fired at every full hour and raced the tests that ran across one.)
        "schedule_type": "interval",
        "interval_seconds": 365 * 24 * 3600,
        "engine": "apscheduler",
    }
    fields.update(overrides)
    if fields["schedule_type"] == "cron":
        fields.setdefault("cron_expression", "*/5 * * * *")
        fields.pop("interval_seconds", None) if "interval_seconds" not in overrides else None
    if fields["schedule_type"] == "once":
        fields.setdefault("run_at", timezone.now() + dt.timedelta(hours=1))
        fields.pop("interval_seconds", None) if "interval_seconds" not in overrides else None
    return Job.objects.create(**fields)
