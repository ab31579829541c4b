"""The scheduler manager (the original design's service class): one APScheduler per process.

Use it like this::

    manager = SchedulerManager(workers=10, defaults={"jitter": 0, "coalesce": True, "misfire_grace": 300})
    manager.add_cron("myapp.tasks:report", "0 7 * * MON-FRI", id="weekly-report", timezone="Europe/Amsterdam")
    manager.start()          # registrations made before start() are applied now (deferred start)
    ...
    manager.shutdown()

``add_cron``/``add_interval``/``add_date`` schedule any importable function (by its
``module:name`` reference, so nothing is pickled but the name) on taskhub's slot
function; ``pause``/``resume``/``modify``/``remove`` act on a schedule by id. For taskhub's
own jobs, ``apply(job)``/``forget(job_id)``/``reconcile()`` keep the store equal to the job
table, touching only the schedules that differ, and ``run_queued(run_id)`` runs a queued
run (run now, a retry) through the runner. ``runapscheduler`` drives it.
"""

import datetime as dt
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from apscheduler.events import EVENT_JOB_REMOVED
from apscheduler.jobstores.base import JobLookupError
from django.db import close_old_connections
from django.utils import timezone

from tasks_app.engines import get_engine
from tasks_app.engines.apscheduler import store_rows
from tasks_app.engines.apscheduler.engine import ENGINE, STORE_PREFIX, RunnerExecutor, SlotTrigger, fire, store_id
from tasks_app.engines.apscheduler.scheduler import BatchingScheduler
from tasks_app.engines.apscheduler.store import TaskhubJobStore
from tasks_app.engines.quarantine import Quarantine
from tasks_app.models import Job, JobRun, RunStatus, Trigger
from tasks_app.scheduling.next_slots import NextSlots

log = logging.getLogger("tasks_app.apscheduler")
FIRE = f"{fire.__module__}:{fire.__name__}"
DEFAULTS = {"jitter": 0, "coalesce": True, "misfire_grace": 300}


class SchedulerManager:
    def __init__(self, workers: int = 10, defaults: dict | None = None):
        self.defaults = {**DEFAULTS, **(defaults or {})}
        self._pending: list[tuple] = []
        self.quarantine = Quarantine(ENGINE)  # taskhub's jobs it cannot schedule, left out of the store
        self.stored: set[int] = set()  # taskhub's jobs in the store, kept here so that nothing re-reads it to count
        self.runs = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="taskhub-queued")
        self.scheduler = BatchingScheduler(
            is_fire=lambda job: job.func is fire,
            timezone=dt.UTC,
            jobstores={"default": TaskhubJobStore()},
            executors={"default": RunnerExecutor(max_workers=workers)},
            # taskhub applies each job's own misfire policy and overlap limit (misfire.py,
            # the runner); APScheduler must hand over every fire instead of dropping some.
            job_defaults={"coalesce": False, "max_instances": 10_000, "misfire_grace_time": None},
        )
        self.scheduler.add_listener(self._removed, EVENT_JOB_REMOVED)  # a one-off past its slot leaves the store

    @property
    def running(self) -> bool:
        return self.scheduler.running

    # -- the generic API ------------------------------------------------------------------
    def add_cron(self, func: str, expression: str, id: str, timezone: str = "UTC", **options):
        return self._add(
            func,
            SlotTrigger(
                "cron",
                cron_expression=expression,
                timezone=timezone,
                jitter=options.pop("jitter", self.defaults["jitter"]),
            ),
            id,
            **options,
        )

    def add_interval(self, func: str, seconds: int, id: str, **options):
        return self._add(
            func,
            SlotTrigger("interval", interval_seconds=seconds, jitter=options.pop("jitter", self.defaults["jitter"])),
            id,
            **options,
        )

    def add_date(self, func: str, run_at: dt.datetime, id: str, **options):
        return self._add(func, SlotTrigger("once", run_at=run_at), id, **options)

    def _add(self, func, trigger, id, args=(), kwargs=None, **options):
        call = (func, trigger, id, args, kwargs or {}, options)
        if not self.running:
            self._pending.append(call)  # deferred start: applied by start()
            return None
        return self._add_now(*call)

    def _add_now(self, func, trigger, id, args, kwargs, options):
        options.setdefault("coalesce", self.defaults["coalesce"])
        options.setdefault("misfire_grace_time", self.defaults["misfire_grace"])
        return self.scheduler.add_job(
            func, trigger=trigger, id=id, args=args, kwargs=kwargs, replace_existing=True, **options
        )

    def pause(self, id: str) -> None:
        self.scheduler.pause_job(id)

    def resume(self, id: str) -> None:
        self.scheduler.resume_job(id)

    def modify(self, id: str, **changes) -> None:
        self.scheduler.modify_job(id, **changes)

    def remove(self, id: str) -> None:
        try:
            self.scheduler.remove_job(id)
        except JobLookupError:
            pass

    def start(self, paused: bool = False) -> None:
        self.scheduler.start(paused=paused)
        pending, self._pending = self._pending, []
        for call in pending:
            self._add_now(*call)

    def shutdown(self, wait: bool = True) -> None:
        if self.running:
            self.scheduler.shutdown(wait=wait)
        self.runs.shutdown(wait=wait)

    # -- taskhub's jobs ---------------------------------------------------------------------
    def apply(self, job) -> None:
        """Make the store hold exactly this job's schedule (or nothing, if it is not ours to run or
        cannot be scheduled: such a job is logged once and left out, and every other job goes on)."""
        if not job.enabled or job.engine != ENGINE:
            self.quarantine.release(job.pk)
            return self.forget(job.pk)
        if self.quarantine.admit(job):
            with self.quarantine.guard(job):
                return self._store(job)
        self.forget(job.pk)

    def _store(self, job) -> None:
        trigger = SlotTrigger.for_job(job)
        current = self.scheduler.get_job(store_id(job.pk), jobstore="default")
        if current is None or current.trigger != trigger or current.name != job.name:
            self.scheduler.add_job(
                FIRE,
                trigger=trigger,
                id=store_id(job.pk),
                name=job.name,
                args=[job.pk],
                jobstore="default",
                replace_existing=True,
            )
        # else unchanged: keep its next run time (and so its missed fires)
        self.stored.add(job.pk)

    def forget(self, job_id: int) -> None:
        self.remove(store_id(job_id))
        self.stored.discard(job_id)

    def _removed(self, event) -> None:
        if event.job_id.startswith(STORE_PREFIX):
            self.stored.discard(int(event.job_id[len(STORE_PREFIX) :]))

    def reconcile(self, jobs=None) -> int:
        """Bring the whole store in line with the job table; returns how many jobs it holds.

        One read of the store's rows and bulk statements for the rows that differ (``store_rows``),
        not a look-up and an ``add_job`` per job: run while the scheduler is paused (on taking the
        lead), it wakes the scheduler when done so that it sees the rows written behind its back.
        ``jobs``: the enabled jobs of this engine, when the caller has them already.
        """
        jobs = Job.objects.filter(engine=ENGINE, enabled=True).for_scheduling() if jobs is None else jobs
        stored, writer = store_rows.read(), store_rows.Writer(self.scheduler, FIRE)
        kept, written, now, upcoming = set(), set(), dt.datetime.now(dt.UTC), NextSlots()
        for job in jobs:
            if not self.quarantine.admit(job):
                continue
            kept.add(job.pk)
            with self.quarantine.guard(job):
                trigger = SlotTrigger.for_job(job)
                if stored.get(job.pk) != store_rows.compact(trigger, job.name):
                    first = upcoming.after(job, now - dt.timedelta(microseconds=1))  # as get_next_fire_time(None, now)
                    writer.put(job, trigger, first, now, exists=job.pk in stored)
                    written.add(job.pk)
        writer.flush()
        store_rows.delete(stored.keys() - kept)
        self.stored = (kept & stored.keys()) | written
        if self.running:
            self.scheduler.wakeup()
        log.info("store reconciled", extra={"engine": ENGINE, "added": writer.added, "changed": writer.updated})
        return len(self.stored)

    def stored_job_ids(self) -> set[int]:
        """taskhub's jobs in the store (as this process last wrote it or heard APScheduler drop them)."""
        return set(self.stored)

    def job_count(self) -> int:
        return len(self.stored)

    def reload(self, job_ids) -> None:
        found = {job.pk: job for job in Job.objects.filter(pk__in=job_ids)}
        for job_id in job_ids:
            self.apply(found[job_id]) if job_id in found else self.forget(job_id)

    def run_queued(self, run_id: int, at: dt.datetime | None = None) -> None:
        """Run a queued run (run now, API trigger, retry) through the runner, now or at ``at``.

        These are not schedules, so they bypass the job store (and its execution log) and
        run on their own threads; the run row itself is the durable record.
        """
        delay = max(0.0, (at - timezone.now()).total_seconds()) if at else 0.0
        timer = threading.Timer(delay, self.runs.submit, args=(_run_queued, run_id))
        timer.daemon = True
        timer.start()

    def run_slot(self, job_id: int, slot: dt.datetime) -> None:
        """Fire one scheduled slot of a job outside the store (a slot the store let pass)."""
        self.runs.submit(_run_slot, job_id, slot.isoformat(), 1, Trigger.SCHEDULE)

    def run_lost(self, run) -> None:
        """Fire a slot whose worker went silent again; the runner's claim takes it over."""
        self.runs.submit(_run_slot, run.job_id, run.scheduled_for.isoformat(), run.attempt, run.trigger)


def _run_slot(job_id: int, scheduled_for: str, attempt: int, trigger: str) -> None:
    get_engine(ENGINE).execute(job_id, dt.datetime.fromisoformat(scheduled_for), attempt=attempt, trigger=trigger)


def _run_queued(run_id: int) -> None:

    close_old_connections()
    run = JobRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).first()
    if run is not None:
        get_engine(ENGINE).execute(run.job_id, run.scheduled_for, attempt=run.attempt, trigger=run.trigger)
