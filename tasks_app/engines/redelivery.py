"""Queued runs whose delivery was lost, found by their age, for their engine's scheduler to hand over again.

A queued run (run now, an API trigger, a retry) is owed at ``next_attempt_at``, or at its
slot when it has none. One still queued ``REDELIVER_AFTER_SECONDS`` after that has lost its
delivery: the worker holding its delayed message died, Redis restarted without it, the send
failed, or the process that held it in memory is gone. Beat (Celery) and ``runapscheduler``
ask ``Redelivery.overdue()`` while they lead and deliver what it returns; the runner's slot
claim keeps a late original message to one effect.

Each run is handed over again once its grace has passed, then after twice the grace, four
times, and so on: a queue that is only slow (busy workers) gets a few extra messages, each
a counted duplicate claim, never a second run. What it is not: it sends nothing itself.
"""

import datetime as dt
import functools
import logging

from django.db import connection
from django.db.models.functions import Coalesce
from django.utils import timezone

from tasks_app import conf
from tasks_app.models import JobRun, RunStatus

log = logging.getLogger("tasks_app.engines")
SCAN_LIMIT = 1000  # overdue runs looked at per pass, oldest first


class Redelivery:
    def __init__(self, engine: str):
        self.engine = engine
        self.handed: dict[tuple[int, int], tuple[int, dt.datetime]] = {}  # (run, attempt) -> (times, last)

    def overdue(self, now: dt.datetime | None = None, limit: int = 100) -> list[JobRun]:
        """Up to ``limit`` queued runs of this engine to deliver again now (with their jobs)."""
        now = now or timezone.now()
        grace = dt.timedelta(seconds=conf.get("REDELIVER_AFTER_SECONDS"))
        runs = (
            JobRun.objects.filter(engine=self.engine, status=RunStatus.QUEUED)
            .annotate(due_at=Coalesce("next_attempt_at", "scheduled_for"))
            .filter(due_at__lt=now - grace)
            .select_related("job")
            .order_by("due_at")
        )[:SCAN_LIMIT]
        handed, picked = {}, []
        for run in runs:
            key = (run.pk, run.attempt)
            times, last = handed[key] = self.handed.get(key, (0, None))
            if len(picked) >= limit or (last is not None and now - last < grace * 2**times):
                continue
            handed[key] = (times + 1, now)
            picked.append(run)
            log.warning(
                "re-delivering a queued run whose delivery was lost",
                extra={
                    "run": run.pk,
                    "job": run.job.name,
                    "engine": self.engine,
                    "attempt": run.attempt,
                    "due_at": run.due_at.isoformat(),
                    "times": times + 1,
                },
            )
        self.handed = handed  # runs no longer queued (or overdue) are forgotten
        return picked

    def anything_waiting(self, stale_before: dt.datetime) -> bool:
        """Whether any run of this engine is queued, or running with a heartbeat older than ``stale_before``.

        The scheduler asks before its pick-up of queued and lost runs, every few seconds: the idle
        answer is no, in one statement whose text is made once (the pick-up's ORM queries cost about
        ten times as much Python), and then the pick-up has nothing to do — its memory of
        hand-overs is forgotten with the runs.
        """
        with connection.cursor() as cursor:
            cursor.execute(
                _waiting_sql(),
                [
                    self.engine,
                    RunStatus.QUEUED,
                    self.engine,
                    RunStatus.RUNNING,
                    connection.ops.adapt_datetimefield_value(stale_before),
                ],
            )
            waiting = cursor.fetchone()[0]
        if not waiting:
            self.handed.clear()
        return bool(waiting)

    def handed_over(self, run: JobRun, now: dt.datetime | None = None) -> None:
        """Note a hand-over made another way (a take-over's pick-up), so the next one waits a grace."""
        self.handed[(run.pk, run.attempt)] = (0, now or timezone.now())

    def forget(self) -> None:
        """Hand every overdue run over at the next pass (after an outage, the last hand-over likely failed too)."""
        self.handed.clear()


@functools.cache
def _waiting_sql() -> str:
    quote, meta = connection.ops.quote_name, JobRun._meta
    table = quote(meta.db_table)
    engine, status, heartbeat = (quote(meta.get_field(name).column) for name in ("engine", "status", "heartbeat_at"))
    queued = f"SELECT 1 FROM {table} WHERE {engine} = %s AND {status} = %s"
    lost = f"SELECT 1 FROM {table} WHERE {engine} = %s AND {status} = %s AND {heartbeat} < %s"
    return f"SELECT EXISTS ({queued}) OR EXISTS ({lost})"
