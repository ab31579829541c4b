"""The APScheduler engine: one ``runapscheduler`` process fires and runs jobs in-process.

APScheduler 3 keeps the schedule in django-apscheduler's ``DjangoJobStore`` (so
``DjangoJobExecution`` records each fire). taskhub adds what the stock pair lacks:

- ``SlotTrigger`` asks ``slots.py`` for fire times, so this engine and Celery beat agree
  on every slot (DST rules included). It pickles only the schedule fields.
- ``RunnerExecutor`` hands a tick's fires (``scheduler.py`` collects them) to the runner
  together, with their slots, after each job's own misfire policy (``misfire.py``):
  one claim, every handler started at once on the process loop. APScheduler's 1 s grace and
  silent coalescing are switched off, and every skipped slot is recorded as a ``skipped`` run.
- The job function stored is one stable reference, ``fire``, with the job id — never a
  handler, never a model.

Delivery from other processes (run now, API triggers) is a Postgres ``NOTIFY`` on
``taskhub_runs`` that the scheduler process hears (on SQLite, a bump of the change marker's
run-request row, which its poll reads); with no live scheduler the run stays queued and
``deliver`` says so. Limits: one active process per deployment (a second one
waits as a standby), and handlers share that process's threads and event loop.
"""

import datetime as dt
import logging
import threading
import time

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.triggers.base import BaseTrigger
from django.db import DatabaseError, close_old_connections, connection
from django.utils import timezone
from django_apscheduler.models import DjangoJobExecution

from tasks_app import conf
from tasks_app.engines import get_engine
from tasks_app.engines.apscheduler.store import log_executions
from tasks_app.engines.base import BaseEngine, EngineUnavailable
from tasks_app.engines.listener import RUNS_CHANNEL
from tasks_app.exceptions import Unhealthy
from tasks_app.models import Job, RunStatus, changes, heartbeats
from tasks_app.runner import Slot, storable
from tasks_app.runner import skipped as skipped_runs
from tasks_app.scheduling import misfire, slots

log = logging.getLogger("tasks_app.apscheduler")
ENGINE = "apscheduler"


STORE_PREFIX = "taskhub-job-"


def store_id(job_id: int) -> str:
    return f"{STORE_PREFIX}{job_id}"


class SlotTrigger(BaseTrigger):
    """An APScheduler trigger over ``slots.fire_times``; jitter delays a fire, never its slot."""

    __slots__ = ("schedule_type", "cron_expression", "timezone", "interval_seconds", "run_at", "jitter")

    def __init__(self, schedule_type, cron_expression="", timezone="UTC", interval_seconds=None, run_at=None, jitter=0):
        self.schedule_type, self.cron_expression, self.timezone = schedule_type, cron_expression, timezone
        self.interval_seconds, self.run_at, self.jitter = interval_seconds, run_at, jitter or None

    @classmethod
    def for_job(cls, job) -> "SlotTrigger":
        return cls(
            job.schedule_type, job.cron_expression, job.timezone, job.interval_seconds, job.run_at, job.jitter_seconds
        )

    def get_next_fire_time(self, previous_fire_time, now):
        # Called in APScheduler's own loop, where an exception would end the scheduler thread:
        # a schedule that cannot be computed has no next fire (the store then drops the job).
        try:
            after = self.slot_of(previous_fire_time) if previous_fire_time else now - dt.timedelta(microseconds=1)
            upcoming = slots.fire_times(self.schedule_type, **self._fields(), after=after, count=1)
            return self._apply_jitter(upcoming[0], self.jitter, now) if upcoming else None
        except Exception:
            log.exception("no next fire time for a schedule", extra={"engine": ENGINE, "schedule": str(self)})
            return None

    def _apply_jitter(self, next_fire_time, jitter, now):
        try:
            return super()._apply_jitter(next_fire_time, jitter, now)
        except OverflowError:  # jitter past year 9999: fire at the slot itself
            return next_fire_time

    def slot_of(self, run_time: dt.datetime) -> dt.datetime:
        """The slot a (possibly jittered) run time belongs to."""
        return slots.slot_at(self.schedule_type, **self._fields(), at=run_time) or run_time

    def _fields(self) -> dict:
        return {
            "cron_expression": self.cron_expression,
            "timezone": self.timezone,
            "interval_seconds": self.interval_seconds,
            "run_at": self.run_at,
        }

    def __getstate__(self):
        return {"version": 1, **{name: getattr(self, name) for name in self.__slots__}}

    def __setstate__(self, state):
        for name in self.__slots__:
            setattr(self, name, state[name])

    def __eq__(self, other):
        return isinstance(other, SlotTrigger) and self.__getstate__() == other.__getstate__()

    def __str__(self):
        return f"slots[{self.schedule_type} {self.cron_expression or self.interval_seconds or self.run_at}]"


def fire(job_id: int) -> None:
    """The stored job function. The executor calls the runner directly; this is its stable name."""
    raise RuntimeError("taskhub's RunnerExecutor runs this job; it is never called directly")


class RunnerExecutor(ThreadPoolExecutor):
    """Runs a tick's fires through the runner together, after each job's misfire policy."""

    def submit_fires(self, fires) -> threading.Event:
        """Hand a tick's ``(stored job, run times)`` pairs to one pool thread: one claim, all started at once.

        The event returned is set once the batch's handlers have started (or the batch ended without).
        """
        started = threading.Event()
        future = self._pool.submit(run_fire_batch, fires, started.set)
        future.add_done_callback(lambda done: started.set())
        future.add_done_callback(_report_failure)
        return started


def _report_failure(future) -> None:
    if future.exception() is not None:
        log.error("a batch of fires failed", exc_info=future.exception(), extra={"engine": ENGINE})


def run_fire_batch(fires, started=None) -> list:
    """Run a tick's fires: misfire policy per job, one claim for every due slot, the execution log in one write.

    A database that is away (Postgres restarting) is waited out, up to ``OUTCOME_RETRY_SECONDS``:
    the store has moved past these slots, so a tick given up would be lost for good. A retry after
    some handlers ran is harmless: their slots' claims are duplicates, counted and not run.
    ``started()``, when given, is called once the fires' handlers have started.
    """
    deadline = time.monotonic() + conf.get("OUTCOME_RETRY_SECONDS")
    while True:
        try:
            return _run_fire_batch(fires, started)
        except DatabaseError as exc:
            if not storable.is_outage(exc) or time.monotonic() > deadline:
                raise
            log.warning("the database is away; retrying the tick's fires", extra={"engine": ENGINE, "error": str(exc)})
            connection.close()
            time.sleep(1.0)


def _run_fire_batch(fires, started=None) -> list:
    close_old_connections()  # this pool thread's connection may have died since its last batch
    now = timezone.now()
    slots, run_times, executions = [], [], []
    # One run time is the usual fire: it is claimed at once and its misfire policy applied to the
    # job the claim returns (``_too_late``). Several (a stalled scheduler) are planned first.
    several = [(aps_job, times) for aps_job, times in fires if len(times) > 1]
    jobs = Job.objects.in_bulk({aps_job.args[0] for aps_job, _ in several}) if several else {}
    for aps_job, times in fires:
        trigger = aps_job.trigger
        by_slot = {trigger.slot_of(t) if isinstance(trigger, SlotTrigger) else t: t for t in times}
        if len(times) == 1:
            due = list(by_slot)
        else:
            job = jobs.get(aps_job.args[0])
            if job is None:
                continue  # deleted since: its store entry goes with it
            due, skipped = misfire.plan(job, sorted(by_slot), now)
            skipped_runs.record(job, ENGINE, skipped)
            executions += [(aps_job.id, by_slot[s], DjangoJobExecution.MISSED, reason) for s, reason in skipped]
        for slot in due:
            slots.append(Slot(aps_job.args[0], slot))
            run_times.append((aps_job.id, by_slot[slot]))
    runs = get_engine(ENGINE).execute_many(slots, vet=lambda run: _too_late(run, now), started=started)
    for (aps_id, run_time), run in zip(run_times, runs, strict=True):
        executions.append((aps_id, run_time, *_execution(run)))
    log_executions(executions)
    return runs


def _too_late(run, now) -> str | None:
    """The misfire policy's reason to skip a claimed fire (later than its job's grace), if any."""
    _, skipped = misfire.plan(run.job, [run.scheduled_for], now)
    return skipped[0][1] if skipped else None


def _execution(run) -> tuple[str, str]:
    """The execution log's status and error for a fire's run (``None``: a duplicate, nothing ran)."""
    if run is not None and run.status == RunStatus.SKIPPED:
        return DjangoJobExecution.MISSED, run.reason
    if run is not None and run.status in (RunStatus.FAILED, RunStatus.TIMED_OUT):
        return DjangoJobExecution.ERROR, f"run {run.pk} {run.status}: {(run.error.strip().splitlines() or [''])[-1]}"
    return DjangoJobExecution.SUCCESS, ""


class APSchedulerEngine(BaseEngine):
    """The adapter other processes use; the schedule itself lives in the ``runapscheduler`` process."""

    manager = None  # set by the scheduler process to its SchedulerManager

    def schedule(self, job) -> None:
        if self.manager is not None:
            self.manager.apply(job)

    def unschedule(self, job_id: int) -> None:
        if self.manager is not None:
            self.manager.forget(job_id)

    def deliver(self, run) -> None:
        if self.manager is not None:  # in the scheduler process: run it on its threads, at its time
            self.manager.run_queued(run.pk, at=run.next_attempt_at)
            return
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_notify(%s, %s)", [RUNS_CHANNEL, str(run.pk)])
        else:  # no NOTIFY here: the scheduler's poll of the change marker sees the request
            changes.runs_requested()
        if not self.is_alive():
            raise EngineUnavailable(
                "the APScheduler process (manage.py runapscheduler) is not running: "
                "the run stays queued and starts when it does"
            )

    def is_alive(self) -> bool:
        try:
            heartbeats.status("apscheduler")
            return True
        except Unhealthy:
            return False
