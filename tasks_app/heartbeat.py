"""Scheduler heartbeats: the leader writes one row per scheduler; health checks read it."""

import datetime as dt

from django.utils import timezone

from tasks_app import conf, health
from tasks_app.models import SchedulerHeartbeat

SCHEDULERS = ("beat", "apscheduler")


def beat(scheduler: str, leader: str, started_at: dt.datetime, jobs: int = 0) -> None:
    fields = {"leader": leader, "started_at": started_at, "beat_at": timezone.now(), "jobs": jobs}
    if not SchedulerHeartbeat.objects.filter(scheduler=scheduler).update(**fields):  # one statement when it exists
        SchedulerHeartbeat.objects.update_or_create(scheduler=scheduler, defaults=fields)


def status(scheduler: str) -> dict:
    """``{"ok", "leader", "seconds_since_beat", ...}``; raises when there is no live leader."""
    row = SchedulerHeartbeat.objects.filter(scheduler=scheduler).first()
    if row is None:
        raise health.Unhealthy(f"no {scheduler} has run yet")
    age = (timezone.now() - row.beat_at).total_seconds()
    if age > conf.get("SCHEDULER_STALE_SECONDS"):
        raise health.Unhealthy(f"last beat {age:.0f} s ago from {row.leader}")
    return {"leader": row.leader, "seconds_since_beat": round(age, 1), "jobs": row.jobs,
            "up_since": row.started_at.isoformat()}


def _check(scheduler):
    def check():
        from django.db import connection

        try:
            return status(scheduler)
        finally:
            connection.close()
    return check


for _name in SCHEDULERS:
    health.check(_name)(_check(_name))
