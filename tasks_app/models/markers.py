"""Small rows the processes share: the jobs' change marker and the schedulers' heartbeats."""

from django.db import models
from django.utils import timezone


class ChangeMarker(models.Model):
    """One row whose ``version`` goes up with every change to any job, in the same transaction.

    Engines read this row to learn cheaply that something changed (Postgres also gets a
    NOTIFY on commit); see ``querysets.bump``.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    version = models.BigIntegerField(default=0)
    changed_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"version {self.version}"


class SchedulerHeartbeat(models.Model):
    """The leading scheduler of an engine (Celery beat, runapscheduler) saying it is alive."""

    scheduler = models.CharField(max_length=20, unique=True)
    leader = models.CharField(max_length=200, help_text="host:pid of the leader.")
    started_at = models.DateTimeField()
    beat_at = models.DateTimeField()
    jobs = models.PositiveIntegerField(default=0, help_text="Jobs in its schedule at the last beat.")
    paused = models.CharField(max_length=300, blank=True, default="",
                              help_text="Why the leader sends no fires now (the broker is unreachable, say); empty while it does.")

    def __str__(self):
        return f"{self.scheduler} led by {self.leader}"
