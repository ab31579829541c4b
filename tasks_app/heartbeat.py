"""Scheduler heartbeats: the leader writes one row per scheduler; health checks read it.

Also the ``jobs`` health check: the enabled jobs the schedulers skip because they cannot be
scheduled (reported, not required unless ``HEALTH_REQUIRED`` names it).
"""

import datetime as dt

from django.utils import timezone

from tasks_app import conf, health
from tasks_app.models import Job, SchedulerHeartbeat, problems

SCHEDULERS = ("beat", "apscheduler")


def beat(scheduler: str, leader: str, started_at: dt.datetime, jobs: int = 0, paused: str = "") -> None:
    """Say the leader is alive; ``paused`` says why it sends no fires now (empty: it does)."""
    fields = {"leader": leader, "started_at": started_at, "beat_at": timezone.now(), "jobs": jobs,
              "paused": paused[:300]}
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
        result[name] = {"ok": age <= conf.get("SCHEDULER_STALE_SECONDS"), "leader": row.leader,
                        "seconds_since_beat": round(age, 1), "jobs": row.jobs, "up_since": row.started_at.isoformat()}
        if not result[name]["ok"]:
            result[name]["error"] = f"last beat {age:.0f} s ago from {row.leader}"
        elif row.paused:
            result[name].update(ok=False, paused=row.paused, error=f"{row.leader} is paused: {row.paused}")
    return result


def status(scheduler: str) -> dict:
    """The scheduler's live leader, as ``statuses()`` has it; raises ``health.Unhealthy`` when there is none."""
    result = dict(statuses()[scheduler])
    if not result.pop("ok"):
        raise health.Unhealthy(result["error"])
    return result


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


@health.check("jobs")
def _broken_jobs():
    from django.db import connection

    try:
        found, count = problems.broken(Job.objects.filter(enabled=True), limit=3)
    finally:
        connection.close()
    if count:
        named = "; ".join(f"{job.name}: {reason}" for job, reason in found)
        raise health.Unhealthy(f"{count} enabled job(s) cannot be scheduled ({named}{'; ...' if count > 3 else ''})")
    return {"broken": 0}
