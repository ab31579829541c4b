"""Scheduler heartbeats: the leading scheduler of each engine writes one row; health checks read it."""

import datetime as dt

from django.db import models
from django.utils import timezone

from tasks_app import conf
from tasks_app.exceptions import Unhealthy

SCHEDULERS = ("beat", "apscheduler")


def record(scheduler: str, leader: str, started_at: dt.datetime, jobs: int = 0, paused: str = "") -> None:
    """Say the leader is alive; ``paused`` says why it sends no fires now (empty: it does)."""
    fields = {
        "leader": leader,
        "started_at": started_at,
        "beat_at": timezone.now(),
        "jobs": jobs,
        "paused": paused[:300],
    }
    if not SchedulerHeartbeat.objects.filter(scheduler=scheduler).update(**fields):  # one statement when it exists
        SchedulerHeartbeat.objects.update_or_create(scheduler=scheduler, defaults=fields)


def statuses(now: dt.datetime | None = None) -> dict[str, dict]:
    """Each scheduler's ``{"ok", "leader", "seconds_since_beat", "jobs", "up_since"}`` (one query).

    Not ok, with an ``error`` for a person, when it never ran, its last beat is older than
    ``SCHEDULER_STALE_SECONDS``, or its leader is paused (then ``paused`` says why).
    """
    now = now or timezone.now()
    rows = {row.scheduler: row for row in SchedulerHeartbeat.objects.filter(scheduler__in=SCHEDULERS)}
    result = {}
    for name in SCHEDULERS:
        row = rows.get(name)
        if row is None:
            result[name] = {"ok": False, "error": f"no {name} has run yet"}
            continue
        age = max((now - row.beat_at).total_seconds(), 0.0)
        result[name] = {
            "ok": age <= conf.get("SCHEDULER_STALE_SECONDS"),
            "leader": row.leader,
            "seconds_since_beat": round(age, 1),
            "jobs": row.jobs,
            "up_since": row.started_at.isoformat(),
        }
        if not result[name]["ok"]:
            result[name]["error"] = f"last beat {age:.0f} s ago from {row.leader}"
        elif row.paused:
            result[name].update(ok=False, paused=row.paused, error=f"{row.leader} is paused: {row.paused}")
    return result


def status(scheduler: str) -> dict:
    """The scheduler's live leader, as ``statuses()`` has it; raises ``Unhealthy`` when there is none."""
    result = dict(statuses()[scheduler])
    if not result.pop("ok"):
        raise Unhealthy(result["error"])
    return result


class SchedulerHeartbeat(models.Model):
    """The leading scheduler of an engine (Celery beat, runapscheduler) saying it is alive."""

    scheduler = models.CharField(max_length=20, unique=True)
    leader = models.CharField(max_length=200, help_text="host:pid of the leader.")
    started_at = models.DateTimeField()
    beat_at = models.DateTimeField()
    jobs = models.PositiveIntegerField(default=0, help_text="Jobs in its schedule at the last beat.")
    paused = models.CharField(
        max_length=300,
        blank=True,
        default="",
        help_text="Why the leader sends no fires now (the broker is unreachable, say); empty while it does.",
    )

    def __str__(self):
        return f"{self.scheduler} led by {self.leader}"
