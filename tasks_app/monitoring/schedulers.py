"""The schedulers' health checks (``beat``, ``apscheduler``) and the ``jobs`` check.

A scheduler is healthy while its leader's heartbeat is fresh and it is not paused
(``models/heartbeats.py``). The ``jobs`` check names the enabled jobs the schedulers skip
because they cannot be scheduled; it is reported, and required only when
``HEALTH_REQUIRED`` names it.
"""

from django.db import connection

from tasks_app.exceptions import Unhealthy
from tasks_app.models import Job, problems
from tasks_app.models.heartbeats import SCHEDULERS, status
from tasks_app.monitoring import health


def _check(scheduler):
    def check():
        try:
            return status(scheduler)
        finally:
            connection.close()

    return check


for _name in SCHEDULERS:
    health.check(_name)(_check(_name))


@health.check("jobs")
def _broken_jobs():
    try:
        found, count = problems.broken(Job.objects.filter(enabled=True), limit=3)
    finally:
        connection.close()
    if count:
        named = "; ".join(f"{job.name}: {reason}" for job, reason in found)
        raise Unhealthy(f"{count} enabled job(s) cannot be scheduled ({named}{'; ...' if count > 3 else ''})")
    return {"broken": 0}
