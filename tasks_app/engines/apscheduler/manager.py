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

from apscheduler.jobstores.base import JobLookupError
from django.db import close_old_connections
from django.utils import timezone
from django_apscheduler.models import DjangoJob

from tasks_app.engines import get_engine
from tasks_app.engines.apscheduler.engine import ENGINE, STORE_PREFIX, RunnerExecutor, SlotTrigger, fire, store_id
from tasks_app.engines.apscheduler.scheduler import BatchingScheduler
from tasks_app.engines.apscheduler.store import TaskhubJobStore
from tasks_app.engines.quarantine import Quarantine
from tasks_app.models import Job, JobRun, RunStatus, Trigger

log = logging.getLogger("tasks_app.apscheduler")
FIRE = f"{fire.__module__}:{fire.__name__}"
DEFAULTS = {"jitter": 0, "coalesce": True, "misfire_grace": 300}


class SchedulerManager:
    def __init__(self, workers: int = 10, defaults: dict | None = None):
        self.defaults = {**DEFAULTS, **(defaults or {})}
        self._pending: list[tuple] = []
        self.quarantine = Quarantine(ENGINE)  # taskhub's jobs it cannot schedule, left out of the store
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
        if current is not None and current.trigger == trigger and current.name == job.name:
            return  # unchanged: keep its next run time (and so its missed fires)
        self.scheduler.add_job(
            FIRE,
            trigger=trigger,
            id=store_id(job.pk),
            name=job.name,
            args=[job.pk],
            jobstore="default",
            replace_existing=True,
        )

    def forget(self, job_id: int) -> None:
        self.remove(store_id(job_id))

    def reconcile(self) -> int:
        """Bring the whole store in line with the job table; returns how many jobs it holds."""

        jobs = {job.pk: job for job in Job.objects.filter(engine=ENGINE, enabled=True)}
        for job_id in self.stored_job_ids() - set(jobs):
            self.forget(job_id)
        for job in jobs.values():
            self.apply(job)
        return len(jobs.keys() - self.quarantine.reasons.keys())

    # Read from the store's table, not through APScheduler: that would unpickle every job.
    def stored_job_ids(self) -> set[int]:
        ids = DjangoJob.objects.filter(id__startswith=STORE_PREFIX).values_list("id", flat=True)
        return {int(i[len(STORE_PREFIX) :]) for i in ids}

    def job_count(self) -> int:
        return DjangoJob.objects.filter(id__startswith=STORE_PREFIX).count()

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
