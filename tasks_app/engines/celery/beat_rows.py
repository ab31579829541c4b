"""Projecting a job into django-celery-beat rows (derived data; the job is the source)."""

import json
from zoneinfo import ZoneInfo

from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask

from tasks_app.engines.celery.messages import TASK, message_options


def row_prefix(job_id: int) -> str:
    return f"taskhub:{job_id}:"


def project(job) -> PeriodicTask:
    fields = {
        "task": TASK,
        "kwargs": json.dumps({"job_id": job.pk}),
        "enabled": job.enabled,
        "description": f"Managed by taskhub from job '{job.name}': edit the job, not this row.",
        "interval": None,
        "crontab": None,
        "clocked": None,
        "one_off": False,
        **_schedule(job),
    }
    options = message_options(job)
    fields.update(queue=options["queue"], priority=options["priority"])
    row = PeriodicTask.objects.filter(name__startswith=row_prefix(job.pk)).first() or PeriodicTask()
    row.name = f"{row_prefix(job.pk)}{job.name}"
    for name, value in fields.items():
        setattr(row, name, value)
    row.save()
    return row


def remove(job_ids) -> None:
    """Delete the rows of these jobs: one query for up to 500 of them."""
    job_ids = [int(job_id) for job_id in job_ids]
    for start in range(0, len(job_ids), 500):
        chunk = "|".join(map(str, job_ids[start : start + 500]))
        PeriodicTask.objects.filter(name__regex=rf"^taskhub:({chunk}):").delete()


def _schedule(job) -> dict:
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
