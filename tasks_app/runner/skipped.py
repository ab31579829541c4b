"""Slots that will not run, on record: a ``skipped`` run with its reason for each.

``settle`` applies the misfire policy (``scheduling.misfire.plan``) to a scheduler's
past-due slots, records the skipped ones and returns those to fire; ``last_slots`` is where
each job's schedule stands on record. Every engine's catch-up goes through here.
"""

import datetime as dt
import logging

from django.db.models import Max

from tasks_app.models import JobRun, RunStatus, Trigger
from tasks_app.scheduling.misfire import plan

log = logging.getLogger("tasks_app.misfire")


def settle(job, engine: str, slots: list[dt.datetime], now: dt.datetime) -> list[dt.datetime]:
    """``plan`` the past-due ``slots``, record the skipped ones, and return those to fire."""
    due, skipped = plan(job, slots, now)
    record(job, engine, skipped)
    return due


def last_slots(jobs) -> dict[int, dt.datetime]:
    """The latest scheduled slot on record for each job (one query)."""
    rows = (
        JobRun.objects.filter(job__in=jobs, trigger=Trigger.SCHEDULE).values("job").annotate(last=Max("scheduled_for"))
    )
    return {row["job"]: row["last"] for row in rows}


def record(job, engine: str, skips) -> int:
    """Write one ``skipped`` run per slot; slots another scheduler already has are left alone."""
    runs = [
        JobRun(
            job=job,
            engine=engine,
            scheduled_for=slot,
            status=RunStatus.SKIPPED,
            reason=reason,
            finished_at=slot,
            kwargs=job.kwargs,
        )
        for slot, reason in skips
    ]
    JobRun.objects.bulk_create(runs, ignore_conflicts=True)
    if runs:
        log.info("missed slots recorded as skipped", extra={"job": job.name, "engine": engine, "count": len(runs)})
    return len(runs)
