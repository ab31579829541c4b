"""Projecting a job into django-celery-beat rows (derived data; the job is the source)."""

import json
from zoneinfo import ZoneInfo

from django.utils import timezone
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask, PeriodicTasks

from tasks_app.engines.celery.messages import TASK, message_options


def row_prefix(job_id: int) -> str:
    return f"taskhub:{job_id}:"


BATCH = 500  # jobs per statement when projecting or removing many


def project(job) -> PeriodicTask:
    return project_many([job])[0]


def project_many(jobs) -> list[PeriodicTask]:
    """The rows of these jobs, created or updated in a few statements per ``BATCH`` of jobs.

    What ``PeriodicTask.save()`` does per row is done here once: its normalising of empty
    fields, and one ``PeriodicTasks.update_changed()`` for the lot (the stock beat's reload cue).
    """
    jobs, rows, schedules = list(jobs), [], {}
    # Many jobs: one pass over every taskhub row's name beats a regex scan of the table per batch.
    where = _row_ids() if len(jobs) > BATCH else None
    for start in range(0, len(jobs), BATCH):
        rows += _project_batch(jobs[start : start + BATCH], schedules, where)
    if rows:
        PeriodicTasks.update_changed()
    return rows


def _row_ids() -> dict[int, int]:
    """``{job id: row id}`` of every taskhub row (the oldest, where a job has several)."""
    where = {}
    for pk, name in PeriodicTask.objects.filter(name__startswith="taskhub:").order_by("-pk").values_list("pk", "name"):
        job_id = name.split(":")[1]
        if job_id.isdigit():
            where[int(job_id)] = pk
    return where


def _project_batch(jobs, schedules: dict, where: dict | None) -> list[PeriodicTask]:
    if where is None:
        found = PeriodicTask.objects.filter(name__regex=_names_of(job.pk for job in jobs))
    else:
        found = PeriodicTask.objects.filter(pk__in=[where[job.pk] for job in jobs if job.pk in where])
    existing = {}
    for row in found.order_by("-pk"):
        existing[int(row.name.split(":")[1])] = row  # the oldest wins, as .first() on the prefix did
    now, rows, new, changed = timezone.now(), [], [], []
    for job in jobs:
        row = existing.get(job.pk) or PeriodicTask()
        before = _values(row)
        row.name = f"{row_prefix(job.pk)}{job.name}"
        for name, value in _fields(job, schedules).items():
            setattr(row, name, value)
        row.exchange, row.routing_key, row.headers = row.exchange or None, row.routing_key or None, row.headers or None
        rows.append(row)
        if row.pk is None:
            new.append(row)
        elif _values(row) != before:  # a re-projection (sync_jobs) writes only the rows that differ
            row.date_changed = now  # auto_now: bulk_update does not set it
            changed.append(row)
    PeriodicTask.objects.bulk_create(new)
    PeriodicTask.objects.bulk_update(changed, UPDATED)
    return rows


def _values(row: PeriodicTask) -> list:
    return [getattr(row, f"{name}_id" if name in ("interval", "crontab", "clocked") else name) for name in UPDATED]


UPDATED = [
    "name",
    "task",
    "kwargs",
    "enabled",
    "description",
    "interval",
    "crontab",
    "clocked",
    "one_off",
    "queue",
    "priority",
    "exchange",
    "routing_key",
    "headers",
    "last_run_at",
    "date_changed",
]


def _fields(job, schedules: dict) -> dict:
    options = message_options(job)
    return {
        "task": TASK,
        "kwargs": json.dumps({"job_id": job.pk}),
        "enabled": job.enabled,
        "description": f"Managed by taskhub from job '{job.name}': edit the job, not this row.",
        "interval": None,
        "crontab": None,
        "clocked": None,
        "one_off": False,
        **_schedule(job, schedules),
        "queue": options["queue"] or None,
        "priority": options["priority"],
        **({} if job.enabled else {"last_run_at": None}),
    }


def _names_of(job_ids) -> str:
    return rf"^taskhub:({'|'.join(str(int(job_id)) for job_id in job_ids)}):"


def remove(job_ids) -> None:
    """Delete the rows of these jobs: one query for up to ``BATCH`` of them (many: one pass over the names first)."""
    job_ids = [int(job_id) for job_id in job_ids]
    if len(job_ids) <= BATCH:
        if job_ids:
            PeriodicTask.objects.filter(name__regex=_names_of(job_ids)).delete()
        return
    wanted = set(job_ids)
    names = PeriodicTask.objects.filter(name__startswith="taskhub:").values_list("pk", "name")
    pks = [pk for pk, name in names if name.split(":")[1].isdigit() and int(name.split(":")[1]) in wanted]
    for start in range(0, len(pks), BATCH):
        PeriodicTask.objects.filter(pk__in=pks[start : start + BATCH]).delete()


def _schedule(job, schedules: dict) -> dict:
    """The job's schedule row, each distinct one looked up (or made) once per ``schedules`` cache."""
    if job.schedule_type == "cron":
        key = ("cron", job.cron_expression, job.timezone)
    elif job.schedule_type == "interval":
        key = ("interval", job.interval_seconds)
    else:
        key = ("once", job.run_at)
    if key not in schedules:
        schedules[key] = _schedule_row(job)
    return schedules[key]


def _schedule_row(job) -> dict:
    if job.schedule_type == "cron":
        minute, hour, day, month, weekday = job.cron_expression.split()
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=minute,
            hour=hour,
            day_of_month=day,
            month_of_year=month,
            day_of_week=weekday,
            timezone=ZoneInfo(job.timezone),
        )
        return {"crontab": crontab}
    if job.schedule_type == "interval":
        interval, _ = IntervalSchedule.objects.get_or_create(
            every=job.interval_seconds, period=IntervalSchedule.SECONDS
        )
        return {"interval": interval}
    clocked, _ = ClockedSchedule.objects.get_or_create(clocked_time=job.run_at)
    return {"clocked": clocked, "one_off": True}
