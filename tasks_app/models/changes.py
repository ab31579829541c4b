"""The change marker: every change to any job bumps one version row, in the same transaction.

Engines read the version cheaply (one row) and reload only what changed. On Postgres a
``NOTIFY taskhub_jobs`` with the changed job ids is sent too; Postgres delivers it when the
transaction commits, and never for one that rolls back. After commit ``jobs_changed`` is
sent with the ids: the engines' receivers (connected in ``AppConfig.ready``) project the
jobs into their own stores. The model layer knows only that jobs changed, not who listens.

A second row counts run requests (run now, API runs, retries) for a scheduler that cannot
hear a ``NOTIFY`` (SQLite): ``runs_requested`` bumps it, and a poll reads both rows at once.
"""

import json

from django.db import connections, models, router, transaction
from django.db.models import F
from django.dispatch import Signal
from django.utils import timezone

CHANNEL = "taskhub_jobs"

jobs_changed = Signal()  # sent after commit with ``job_ids`` (sorted) and ``using``


class ChangeMarker(models.Model):
    """One row whose ``version`` goes up with every change to any job, in the same transaction.

    Engines read this row to learn cheaply that something changed (Postgres also gets a
    NOTIFY on commit); see ``bump``.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    version = models.BigIntegerField(default=0)
    changed_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"version {self.version}"


JOBS, RUNS = 1, 2  # the marker rows: job changes; run requests where no NOTIFY is heard


def _advance(pk: int, using: str) -> None:
    markers = ChangeMarker.objects.using(using)
    if not markers.filter(pk=pk).update(version=F("version") + 1, changed_at=timezone.now()):
        markers.get_or_create(pk=pk, defaults={"version": 1})


def bump(job_ids, using: str | None = None) -> None:
    """Bump the marker for these jobs in the current transaction; ``jobs_changed`` follows its commit."""
    using = using or router.db_for_write(ChangeMarker)
    _advance(JOBS, using)
    ids = sorted(job_ids)
    connection = connections[using]
    if connection.vendor == "postgresql":
        payload = json.dumps({"jobs": ids[:500]})  # NOTIFY payloads stop at 8000 bytes
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, payload])
    # After the NOTIFY: outside a transaction on_commit runs at once, and the engines come first.
    transaction.on_commit(lambda: jobs_changed.send(sender=ChangeMarker, job_ids=ids, using=using), using=using)


def runs_requested(using: str | None = None) -> None:
    """Tell a polling scheduler that a run was queued for it (where no ``NOTIFY`` reaches it)."""
    _advance(RUNS, using or router.db_for_write(ChangeMarker))


def version(using: str = "default") -> int:
    return ChangeMarker.objects.using(using).filter(pk=JOBS).values_list("version", flat=True).first() or 0


def versions(using: str = "default") -> tuple[int, int]:
    """The job and the run-request versions, in one query."""
    rows = dict(ChangeMarker.objects.using(using).filter(pk__in=[JOBS, RUNS]).values_list("pk", "version"))
    return rows.get(JOBS, 0), rows.get(RUNS, 0)
