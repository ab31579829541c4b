"""The APScheduler job store's rows in bulk, for ``SchedulerManager.reconcile``: read, compare, write.

django-apscheduler's ``DjangoJobStore`` keeps one row per job, its pickled state; through
APScheduler, bringing 100,000 of them in line costs a look-up, an unpickled job and an
``add_job`` per row. Here the rows are read in one pass as plain dicts keeping only what is
compared (``read``, ``compact``), and written in batches exactly as ``add_job`` writes them
(``Writer``). What it is not: no scheduler of its own and no policy; the caller runs it while
its scheduler is paused and wakes it after.
"""

import datetime as dt
import pickle
import sys

from apscheduler.job import Job as StoredJob
from django_apscheduler.models import DjangoJob
from django_apscheduler.util import get_django_internal_datetime

from tasks_app.engines.apscheduler.engine import STORE_PREFIX, SlotTrigger, store_id

BATCH = 1000  # rows per statement


def compact(trigger, name: str) -> tuple | None:
    """What is compared of a stored job: its schedule and name, in a few shared strings (None: not ours)."""
    if not isinstance(trigger, SlotTrigger):
        return None
    return (
        sys.intern(trigger.schedule_type),
        sys.intern(trigger.cron_expression or ""),
        sys.intern(trigger.timezone or ""),
        trigger.interval_seconds,
        trigger.run_at,
        trigger.jitter or None,
        name,
    )


def read() -> dict[int, tuple | None]:
    """``{job id: compact(trigger, name)}`` of taskhub's rows, in one query; an unreadable row maps to None."""
    found = {}
    rows = DjangoJob.objects.filter(id__startswith=STORE_PREFIX).values_list("id", "job_state")
    for row_id, state in rows.iterator(chunk_size=2000):
        job_id = row_id[len(STORE_PREFIX) :]
        if not job_id.isdigit():
            continue  # not one of taskhub's rows
        try:
            state = pickle.loads(state)
            found[int(job_id)] = compact(state["trigger"], state["name"])
        except Exception:  # an unreadable row is written anew
            found[int(job_id)] = None
    return found


def delete(job_ids) -> None:
    ids = [store_id(job_id) for job_id in job_ids]
    for start in range(0, len(ids), BATCH):
        DjangoJob.objects.filter(id__in=ids[start : start + BATCH]).delete()


class Writer:
    """Rows to insert or update, written a batch at a time (100,000 pickled rows are never all in memory)."""

    def __init__(self, scheduler, func: str):
        self.scheduler, self.func = scheduler, func
        self.protocol = scheduler._lookup_jobstore("default").pickle_protocol
        self.new: list[DjangoJob] = []
        self.changed: list[DjangoJob] = []
        self.added = self.updated = 0

    def put(self, job, trigger: SlotTrigger, first: dt.datetime | None, now: dt.datetime, exists: bool) -> None:
        """The row of ``job`` whose first slot is ``first``, to be inserted (or updated, if it ``exists``)."""
        (self.changed if exists else self.new).append(self._row(job, trigger, first, now))
        if len(self.new) + len(self.changed) >= BATCH:
            self.flush()

    def flush(self) -> None:
        DjangoJob.objects.bulk_create(self.new)
        DjangoJob.objects.bulk_update(self.changed, ["next_run_time", "job_state"])
        self.added, self.updated = self.added + len(self.new), self.updated + len(self.changed)
        self.new, self.changed = [], []

    def _row(self, job, trigger: SlotTrigger, first: dt.datetime | None, now: dt.datetime) -> DjangoJob:
        """As ``add_job`` through ``DjangoJobStore`` writes it, with the scheduler's job defaults."""
        state = StoredJob(
            self.scheduler,
            id=store_id(job.pk),
            func=self.func,
            trigger=trigger,
            executor="default",
            args=(job.pk,),
            kwargs={},
            name=job.name,
            next_run_time=trigger._apply_jitter(first, trigger.jitter, now) if first else None,  # as the trigger does
            **self.scheduler._job_defaults,
        )
        return DjangoJob(
            id=state.id,
            next_run_time=get_django_internal_datetime(state.next_run_time),
            job_state=pickle.dumps(state.__getstate__(), self.protocol),
        )
