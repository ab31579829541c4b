"""Why a stored job cannot be scheduled: the one test the engines, the admin and the checks share.

Validation keeps such rows out, but a row can still arrive broken: written by raw SQL, a
data migration or an older version, or broken later by a handler renamed without an alias
or a time zone gone from tzdata. Engines skip these rows (and log them once); the admin,
the dashboard and ``sync_jobs`` name them with the reason. Not here: kwargs that do not
fit the handler — such a job is scheduled and each of its runs fails with the reason.
"""

import datetime as dt
import functools

from django.db.models import Q
from django.utils import timezone

from tasks_app.handlers import registry
from tasks_app.models.choices import ScheduleType
from tasks_app.scheduling import slots


def schedule_problem(job) -> str | None:
    """One line saying why the engines cannot schedule ``job`` as stored, or None if they can."""
    if job.handler not in registry.registry:
        return f"handler '{job.handler}' is not registered"
    naive = isinstance(job.run_at, dt.datetime) and timezone.is_naive(job.run_at)
    return _schedule_verdict(
        job.schedule_type, job.cron_expression, job.timezone, job.interval_seconds, job.run_at is None, naive
    )


def with_problems(jobs) -> list[tuple[object, str]]:
    """``(job, reason)`` for each of ``jobs`` that cannot be scheduled, in order."""
    return [(job, problem) for job in jobs if (problem := schedule_problem(job))]


# Jobs sharing a schedule share a verdict: 10,000 jobs on a few schedules cost a few slot walks.
# (Only a cron's verdict depends on the clock, by whether it fires within 10 years of now.)
@functools.lru_cache(maxsize=4096)
def _schedule_verdict(schedule_type, cron_expression, zone, interval_seconds, no_run_at, naive_run_at) -> str | None:
    try:
        slots.validate_timezone(zone)
        if schedule_type == ScheduleType.CRON:
            slots.validate_cron(cron_expression, zone)
        elif schedule_type == ScheduleType.INTERVAL:
            slots.interval_fire_times(interval_seconds, timezone.now(), 1)
        elif schedule_type == ScheduleType.ONCE:
            if no_run_at or naive_run_at:
                raise slots.ScheduleError("a one-off job needs an aware run_at")
        else:
            raise slots.ScheduleError(f"unknown schedule type '{schedule_type}'; expected cron, interval or once")
    except slots.ScheduleError as exc:
        return str(exc)
    except Exception as exc:  # the slot function is total; anything else is still this row's problem
        return f"{type(exc).__name__}: {exc}"
    return None


def broken(jobs, limit: int | None = None) -> tuple[list[tuple[object, str]], int]:
    """The jobs of queryset ``jobs`` that cannot be scheduled, as ``(job, reason)`` (up to ``limit``), and how many.

    Cheap for any table: a job's verdict depends only on its handler, schedule type, cron
    expression and time zone (the database's constraints hold the other fields in range), so
    the distinct combinations are judged once each and only the broken ones' jobs are read.
    """
    fields = ("handler", "schedule_type", "cron_expression", "timezone")
    reasons = {}
    for combo in jobs.order_by().values_list(*fields).distinct():
        sample = jobs.model(**dict(zip(fields, combo)), interval_seconds=60, run_at=timezone.now())
        if problem := schedule_problem(sample):
            reasons[combo] = problem
    if not reasons:
        return [], 0
    matching = jobs.filter(Q.create([Q(**dict(zip(fields, combo))) for combo in reasons], connector=Q.OR))
    rows = matching.order_by("name")[:limit] if limit is not None else matching.order_by("name")
    found = [(job, reasons[tuple(getattr(job, f) for f in fields)]) for job in rows]
    return found, matching.count() if limit is not None else len(found)
