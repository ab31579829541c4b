"""What the engines' last look for overdue jobs found: when it looked, and the open overdue streaks.

An engine process's alert courier (``alerts/overdue.py``) looks every ``ALERT_OVERDUE_EVERY_SECONDS``
and keeps one open overdue streak per overdue enabled job (a silent one when the job's overdue
alerts are off); each look records itself here, one row per process kind. The dashboard and
``/metrics`` read these rows — a few queries whatever the number of jobs, growing only with the
number overdue — instead of walking every job's schedule in a web request. The price is
freshness: what they show is as of the last look, and when no engine process has looked
recently (none runs, or its courier is off) they say so rather than guess.

What it is not: the definition of overdue (``overdue.py``) nor the look itself.
"""

import dataclasses
import datetime as dt
import os
import socket

from django.db import models
from django.db.models import Count, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from tasks_app import conf
from tasks_app.models.alerts import AlertKind, AlertStreak


class OverdueLook(models.Model):
    """An engine process's last look for overdue jobs (one row per process kind: beat, apscheduler)."""

    process = models.CharField(max_length=20, unique=True)
    looked_at = models.DateTimeField(help_text="When the look began: the open overdue streaks are as of then.")
    by = models.CharField(max_length=200, help_text="host:pid of the process that looked.")
    overdue = models.PositiveIntegerField(default=0, help_text="Overdue enabled jobs it found.")

    def __str__(self):
        return f"{self.process}'s look at {self.looked_at:%Y-%m-%d %H:%M:%S}"


@dataclasses.dataclass(frozen=True)
class LastLook:
    looked_at: dt.datetime
    by: str
    age: float  # seconds
    recent: bool  # an engine process is looking: within two looks and the heartbeat's staleness
    overdue: int  # enabled jobs with an open overdue streak now


def record(process: str, looked_at: dt.datetime, overdue: int) -> None:
    """Say that ``process`` looked at ``looked_at`` and found ``overdue`` jobs overdue (one statement, mostly)."""
    fields = {"looked_at": looked_at, "by": f"{socket.gethostname()}:{os.getpid()}", "overdue": overdue}
    if not OverdueLook.objects.filter(process=process).update(**fields):
        OverdueLook.objects.update_or_create(process=process, defaults=fields)


def last_look(now: dt.datetime | None = None) -> LastLook | None:
    """The newest look by any process with how many jobs are overdue now (one query), or None when none ever looked."""
    now = now or timezone.now()
    overdue = open_streaks().order_by().values("kind").annotate(n=Count("pk")).values("n")
    row = OverdueLook.objects.annotate(open=Coalesce(Subquery(overdue[:1]), 0)).order_by("-looked_at").first()
    if row is None:
        return None
    age = max((now - row.looked_at).total_seconds(), 0.0)
    return LastLook(row.looked_at, row.by, age, age <= recent_within(), row.open)


def recent_within() -> float:
    """Seconds a look counts as current: two looks' interval, plus the time a live process may stay quiet."""
    return 2 * conf.get("ALERT_OVERDUE_EVERY_SECONDS") + conf.get("SCHEDULER_STALE_SECONDS")


def open_streaks():
    """The open overdue streaks of enabled jobs (a paused job is not overdue, even before the next look)."""
    return AlertStreak.objects.open().filter(kind=AlertKind.OVERDUE, job__enabled=True)


def longest_overdue(limit: int) -> list[AlertStreak]:
    """The ``limit`` open overdue streaks that are overdue the longest, with their jobs (one query)."""
    return list(open_streaks().select_related("job").order_by("overdue_since", "slot", "pk")[:limit])


def counts_by_engine() -> dict[str, int]:
    """Overdue jobs per engine (one query)."""
    rows = open_streaks().values_list("job__engine").annotate(n=Count("pk")).order_by()
    return dict(rows)


def overdue_names() -> list[str]:
    """The names of the overdue jobs (one query; as many rows as jobs are overdue)."""
    return list(open_streaks().order_by("job__name").values_list("job__name", flat=True))
