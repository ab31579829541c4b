"""The APScheduler engine: one ``runapscheduler`` process fires and runs jobs in-process.

APScheduler 3 keeps the schedule in django-apscheduler's ``DjangoJobStore`` (so
``DjangoJobExecution`` records each fire). taskhub adds what the stock pair lacks:

- ``SlotTrigger`` asks ``slots.py`` for fire times, so this engine and Celery beat agree
  on every slot (DST rules included). It pickles only the schedule fields.
- ``RunnerExecutor`` hands each fire to the runner with its slot, after the job's own
  misfire policy (``misfire.py``); APScheduler's 1 s grace and silent coalescing are
  switched off, and every skipped slot is recorded as a ``skipped`` run.
- The job function stored is one stable reference, ``fire``, with the job id — never a
  handler, never a model.

Delivery from other processes (run now, API triggers) is a Postgres ``NOTIFY`` on
``taskhub_runs`` that the scheduler process hears; with no live scheduler the run stays
queued and ``deliver`` says so. Limits: one active process per deployment (a second one
waits as a standby), and handlers share that process's threads and event loop.
"""

import datetime as dt
import logging

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.triggers.base import BaseTrigger
from django.db import close_old_connections, connection
from django.utils import timezone

from tasks_app.engines import get_engine
from tasks_app.engines.base import BaseEngine, EngineUnavailable
from tasks_app.engines.listener import RUNS_CHANNEL
from tasks_app.exceptions import Unhealthy
from tasks_app.models import Job, RunStatus, heartbeats
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
    """Runs fires through the runner with their slots, after the job's misfire policy."""

    def _do_submit_job(self, job, run_times):
        if job.func is not fire:
            return super()._do_submit_job(job, run_times)  # a plain function added through the manager
        future = self._pool.submit(run_fires, job, run_times)
        future.add_done_callback(lambda f: self._done(job, f))

    def _done(self, job, future):
        if future.exception() is not None:
            self._run_job_error(job.id, future.exception(), future.exception().__traceback__)
        else:
            self._run_job_success(job.id, future.result())


def run_fires(aps_job, run_times) -> list[JobExecutionEvent]:
    close_old_connections()  # this pool thread's connection may have died since its last fire
    job = Job.objects.filter(pk=aps_job.args[0]).first()
    if job is None:
        return []
    trigger = aps_job.trigger
    by_slot = {trigger.slot_of(t) if isinstance(trigger, SlotTrigger) else t: t for t in run_times}
    due, skipped = misfire.plan(job, sorted(by_slot), timezone.now())
    skipped_runs.record(job, ENGINE, skipped)
    events = [JobExecutionEvent(EVENT_JOB_MISSED, aps_job.id, aps_job._jobstore_alias, by_slot[s]) for s, _ in skipped]
    engine = get_engine(ENGINE)
    for slot in due:
        events.append(_event(aps_job, by_slot[slot], engine.execute(job.pk, slot)))
    return events


def _event(aps_job, run_time, run) -> JobExecutionEvent:
    alias = aps_job._jobstore_alias
    if run is not None and run.status in (RunStatus.FAILED, RunStatus.TIMED_OUT):
        error = RuntimeError(f"run {run.pk} {run.status}: {(run.error.strip().splitlines() or [''])[-1]}")
        return JobExecutionEvent(EVENT_JOB_ERROR, aps_job.id, alias, run_time, exception=error, traceback=run.error)
    summary = {"run": run.pk, "status": run.status} if run is not None else {"run": None, "status": "duplicate"}
    return JobExecutionEvent(EVENT_JOB_EXECUTED, aps_job.id, alias, run_time, retval=summary)


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
