"""The change marker: every change to any job bumps one version row, in the same transaction.

Engines read the version cheaply (one row) and reload only what changed; after commit the
changed jobs are also projected into the engines' own stores in this process. On Postgres a
``NOTIFY taskhub_jobs`` with the changed job ids is sent too; Postgres delivers it when
the transaction commits, and never for one that rolls back.
"""

import json

from django.db import connections, router, transaction
from django.db.models import F
from django.utils import timezone

CHANNEL = "taskhub_jobs"


def bump(job_ids, using: str | None = None) -> None:
    from tasks_app.models import ChangeMarker, Job

    using = using or router.db_for_write(Job)
    markers = ChangeMarker.objects.using(using)
    if not markers.filter(pk=1).update(version=F("version") + 1, changed_at=timezone.now()):
        markers.get_or_create(pk=1, defaults={"version": 1})
    ids = sorted(job_ids)
    connection = connections[using]
    if connection.vendor == "postgresql":
        payload = json.dumps({"jobs": ids[:500]})  # NOTIFY payloads stop at 8000 bytes
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, payload])
    # After the NOTIFY: outside a transaction on_commit runs at once, and the engines come first.
    transaction.on_commit(lambda: _project(ids), using=using)


def _project(job_ids) -> None:
    from tasks_app.engines import project_jobs

    project_jobs(job_ids)


def version(using: str = "default") -> int:
    from tasks_app.models import ChangeMarker

    return ChangeMarker.objects.using(using).filter(pk=1).values_list("version", flat=True).first() or 0
