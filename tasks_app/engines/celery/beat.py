"""Celery beat for taskhub: ``CELERY_BEAT_SCHEDULER = "tasks_app.engines.celery.beat:TaskhubScheduler"``.

A subclass of django-celery-beat's ``DatabaseScheduler`` that keeps its place in Celery
but replaces what users of the stock one fight:

- **Slots.** It reads the enabled ``celery`` jobs and fires each at the instants
  ``slots.py`` computes (the same function the APScheduler engine uses), putting the slot
  into the message as ``scheduled_for`` — so two beats, or beat and a worker re-delivery,
  always name the same slot and the runner's unique claim keeps it to one effect.
- **Edits in well under a second, reloading only what changed.** On Postgres it LISTENs
  for the job ids that a commit changed and reloads just those rows; elsewhere it polls the
  one-row change marker every ``max_interval`` (0.5 s). No full reload per edit.
- **One leader.** It schedules only while it holds the ``beat`` leader lock; a second beat
  waits as a standby and takes over when the leader dies.
- **One bad row never stops it.** A job it cannot schedule (a row written past validation,
  a handler or time zone gone) is logged once and skipped (``quarantine.py``).
- **Nothing lost.** On becoming leader it applies each job's misfire policy to the slots it
  missed and records the skipped ones; while leading it re-delivers runs whose worker
  stopped sending heartbeats, queued runs whose delivery was lost (``redelivery.py``) and
  slots whose message vanished before a worker got it (``sent_slots.py``; a new leader
  inherits the slots shortly below each job's last run that have no run row); and it writes a
  heartbeat that ``/healthz`` reports.
- **Alerts.** Leader or standby, its alert courier thread (``alerts/courier.py``) delivers
  alerts and looks for overdue jobs, beside the loop.
- **A broker outage pauses it, never ends it.** A send that fails with a broker error stops
  sending (``broker_watch.py``: one log line, "paused" in the heartbeat) while it keeps the lead;
  once the broker answers again, the slots missed meanwhile go through the misfire policy.
"""

import datetime as dt
import heapq
import logging
import threading
import time

from celery.signals import beat_init
from django.db import DatabaseError, close_old_connections
from django.utils import timezone
from django_celery_beat.schedulers import DatabaseScheduler

from tasks_app import conf
from tasks_app.alerts.courier import AlertCourier
from tasks_app.engines import long_lived
from tasks_app.engines.celery.beat_delivery import BeatDelivery
from tasks_app.engines.celery.broker_watch import BrokerWatch
from tasks_app.engines.celery.sent_slots import SentSlots
from tasks_app.engines.leader import leader_lock
from tasks_app.engines.listener import ChangeWatcher
from tasks_app.engines.quarantine import Quarantine
from tasks_app.engines.redelivery import Redelivery
from tasks_app.models import Job, heartbeats
from tasks_app.runner import skipped as skipped_runs
from tasks_app.runner.claims import worker_id
from tasks_app.scheduling import misfire
from tasks_app.scheduling.next_slots import NextSlots

log = logging.getLogger("tasks_app.beat")
ENGINE = "celery"


@beat_init.connect(dispatch_uid="taskhub_beat_init")
def _dedicated(sender=None, **kwargs):
    """A beat in its own process does nothing but schedule; one in a worker's thread (``-B``) shares it."""
    if threading.current_thread() is threading.main_thread():
        long_lived.dedicate()


class TaskhubScheduler(BeatDelivery, DatabaseScheduler):
    # With nothing due and nothing changing, each of these is done this often (an idle leader costs a
    # few statements a minute, whatever the number of jobs): the heartbeat well within
    # SCHEDULER_STALE_SECONDS (30 s; at once when the job count or the pause changes), the reap, the lock check.
    standby_poll = 1.0
    heartbeat_every = 10.0
    reap_every = 10.0
    lock_check_every = 5.0

    def __init__(self, *args, **kwargs):
        self.jobs: dict[int, Job] = {}
        self.fired: dict[int, dt.datetime] = {}  # the latest slot sent, per job
        self.heap: list[tuple[dt.datetime, int, int]] = []  # (fire time, job id, generation)
        self.generation: dict[int, int] = {}
        self.lock = leader_lock("beat")
        self.watcher: ChangeWatcher | None = None
        self.leading_since = None
        self.started_at = timezone.now()
        self._next_beat = self._next_reap = self._next_lock_check = 0.0
        self._beat_said: tuple | None = None  # (jobs, paused) as the last heartbeat wrote them
        self._said_standby = False
        self._redelivered: dict[int, dt.datetime] = {}
        self.quarantine = Quarantine(ENGINE)
        super().__init__(*args, **kwargs)
        self.max_interval = conf.get("BEAT_MAX_INTERVAL")
        self.broker = BrokerWatch(self.app)
        self.redelivery = Redelivery(ENGINE)
        self.sent_slots = SentSlots()
        self.courier = AlertCourier("beat")  # overdue alerts and their delivery, on a thread beside the loop

    # DatabaseScheduler's PeriodicTask entries and last_run_at bookkeeping are not used.
    def setup_schedule(self):
        pass

    @property
    def schedule(self):
        return {}

    def sync(self):
        pass

    @property
    def info(self):
        # Celery prints this banner before the first tick, when no beat knows yet whether it leads.
        if self.leading_since is None:
            return '    . taskhub: waiting for the leader lock (then "beat is leader", or it stands by)'
        return f"    . taskhub: {len(self.jobs)} jobs, leader"

    # -- the clock and the wait: the loop's only view of time (tests/test_beat_loop.py holds both) --
    def now(self) -> dt.datetime:
        return timezone.now()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    # -- the loop ------------------------------------------------------------------------
    def tick(self, *args, **kwargs) -> float:
        self.courier.start()  # standby or leader (a no-op once it runs)
        try:
            if not self._lead():
                return self.standby_poll
            if self.broker.down_since is not None:
                return self._while_broker_down()
            self._fire_due(self.now())
            self._housekeeping()
            return self._wait()
        except DatabaseError as exc:  # Postgres restarting: step down, reconnect, carry on
            log.warning("database error; stepping down until it is back", extra={"error": str(exc)})
            self._step_down()
            close_old_connections()
            return self.standby_poll
        except self.broker.errors as exc:  # the broker is away: keep the lead, send nothing until it is back
            self.broker_lost(exc)
            return 0

    def _while_broker_down(self) -> float:
        """Beat and probe the broker; once it answers, catch up as a new leader does (misfire policy)."""
        if not self.broker.back():
            self._housekeeping()
            return self.broker.retry_every
        self._load_all()
        self.redelivery.forget()
        self._next_beat = self._next_reap = 0.0
        return 0

    def _lead(self) -> bool:
        if self.leading_since is not None:
            if time.monotonic() < self._next_lock_check:
                return True
            self._next_lock_check = time.monotonic() + self.lock_check_every
            if self.lock.still_held():
                return True
            self._step_down()
        if not self.lock.try_acquire():
            if not self._said_standby:  # once per stand-by, as the banner promised
                log.info("beat is standing by: another beat is leader", extra={"engine": ENGINE})
                self._said_standby = True
            return False
        self.leading_since, self._said_standby = timezone.now(), False
        log.info("beat is leader", extra={"engine": ENGINE, "leader": worker_id()})
        self.watcher = ChangeWatcher(sleep=self.sleep)
        self._load_all()
        return True

    def _step_down(self) -> None:
        if self.watcher is not None:
            self.watcher.close()
        self.watcher, self.leading_since = None, None
        self.jobs.clear(), self.heap.clear(), self.fired.clear()
        self.lock.release()

    def _wait(self) -> float:
        """Sleep until the next fire or a change, whichever comes first; 0 = tick again now."""
        now = self.now()
        # LISTEN wakes us on a change, so only the housekeeping bounds the wait; polling needs max_interval.
        longest = self._until_housekeeping()
        if not self.watcher.listener:
            longest = min(longest, self.max_interval)
        until_next = (self.heap[0][0] - now).total_seconds() if self.heap else longest
        changed = self.watcher.wait(max(0.0, min(until_next, longest)), known=lambda: self.jobs).jobs
        if changed:
            self._reload(changed)
        return 0

    # -- loading jobs --------------------------------------------------------------------
    def _load_all(self) -> None:
        """Schedule every enabled job afresh, owed slots first (on taking the lead, or the broker's return)."""
        started = time.monotonic()
        with long_lived.loading():  # a dedicated beat: the collector off meanwhile, what it loaded frozen
            self.jobs.clear(), self.heap.clear(), self.fired.clear()
            ours = Job.objects.filter(engine=ENGINE, enabled=True)
            jobs = ours.load_for_scheduling("queue", "priority", "timeout_seconds")  # with what sending reads
            last = skipped_runs.last_slots(ours.values("pk"))  # a subquery: no list of every id in the statement
            now, upcoming, owed = self.now(), NextSlots(), []
            since = {job.pk: misfire.owed_since(job, last.get(job.pk)) for job in jobs}
            # In rising order, NextSlots walks once per schedule.
            for job in sorted(jobs, key=lambda job: since[job.pk]):
                self._schedule(job, lambda: self._catch_up(job, since[job.pk], now, upcoming, owed))
            self._send_all(owed)  # every job's owed slots in one go
            # Slots below a job's last run whose message a dead leader's worker took with it: the reaper owes them.
            inherited = self.sent_slots.inherit(list(self.jobs.values()), last, now)
            skipped = len(jobs) - len(self.jobs)
        log.info(
            "beat loaded jobs",
            extra={
                "engine": ENGINE,
                "jobs": len(self.jobs),
                "skipped": skipped,
                "unrecorded_slots": inherited,
                "seconds": round(time.monotonic() - started, 3),
            },
        )

    def _schedule(self, job: Job, schedule) -> None:
        """Call ``schedule()`` for an admitted job; a job that cannot be scheduled is left out."""
        if self.quarantine.admit(job):
            with self.quarantine.guard(job):
                schedule()
                return
        self._forget(job.pk)

    def _catch_up(self, job: Job, since, now, upcoming: NextSlots, owed: list) -> None:
        """Apply the misfire policy to the slots missed since ``since`` (those to fire go to ``owed``),
        then schedule onwards."""
        self.jobs[job.pk] = job
        self.fired[job.pk] = now
        first = upcoming.after(job, since) if since <= now else None
        if first is not None and first > now:  # the usual case: nothing owed, and this is the next slot
            self._push(job, first)
            return
        missed = misfire.missed_slots(job, since, now)
        owed += [(job, slot) for slot in skipped_runs.settle(job, ENGINE, missed, now)]
        self._push(job)

    def _reload(self, job_ids) -> None:
        rows = {j.pk: j for j in Job.objects.filter(pk__in=job_ids)}
        for job_id in job_ids:
            job = rows.get(job_id)
            if job is None or not job.enabled or job.engine != ENGINE:
                self._forget(job_id)
                self.quarantine.release(job_id)
            else:
                self._schedule(job, lambda: self._resume(job))
        log.info("beat reloaded jobs", extra={"engine": ENGINE, "jobs": sorted(job_ids)})

    def _resume(self, job: Job) -> None:
        # An edit never owes slots from before it; a slot of the last second may still be sent
        # (the runner's unique claim makes a repeat harmless).
        recent = self.now() - dt.timedelta(seconds=1)
        self.jobs[job.pk] = job
        self.fired[job.pk] = max(self.fired.get(job.pk, recent), recent)
        self._push(job)

    def _forget(self, job_id) -> None:
        self.jobs.pop(job_id, None)
        self.fired.pop(job_id, None)
        self.generation[job_id] = self.generation.get(job_id, 0) + 1  # its heap entries go stale

    def _push(self, job: Job, upcoming: dt.datetime | None = None) -> None:
        """Put the job's next slot (``upcoming`` when the caller already has it) on the heap."""
        if upcoming is None:
            upcoming = next(job.iter_fire_times(after=self.fired.get(job.pk) or self.now()), None)
        generation = self.generation[job.pk] = self.generation.get(job.pk, 0) + 1
        if upcoming is not None:
            heapq.heappush(self.heap, (upcoming, job.pk, generation))

    # -- firing --------------------------------------------------------------------------
    def _fire_due(self, now) -> None:
        """Send every slot due by ``now`` in one go: a tick's messages are collected, then sent together."""
        started, outbox = time.monotonic(), []
        while self.heap and self.heap[0][0] <= now:
            slot, job_id, generation = heapq.heappop(self.heap)
            job = self.jobs.get(job_id)
            if job is None or generation != self.generation.get(job_id):
                continue  # edited, paused or deleted since it was pushed
            due, owed, upcoming = [], [slot], None
            with self.quarantine.guard(job):
                upcoming = next(job.iter_fire_times(after=slot), None)
                if upcoming is not None and upcoming <= now:
                    # A stalled loop owes several slots: one misfire decision over all of them (coalesce).
                    owed += misfire.missed_slots(job, slot, now)
                    upcoming = None  # the push finds the one after the last owed
                due = skipped_runs.settle(job, ENGINE, owed, now)
            outbox += [(job, s) for s in due]
            self.fired[job_id] = owed[-1]
            with self.quarantine.guard(job):
                self._push(job, upcoming)  # on time, the slot after this one is computed once, here
                continue
            self._forget(job_id)
        if outbox:
            sent = self._send_all(outbox)
            log.debug(
                "sent due slots",
                extra={"engine": ENGINE, "count": sent, "seconds": round(time.monotonic() - started, 4)},
            )

    # -- housekeeping --------------------------------------------------------------------
    def _housekeeping(self) -> None:
        now = time.monotonic()
        said = (len(self.jobs), self.broker.paused)
        if now >= self._next_beat or said != self._beat_said:
            heartbeats.record("beat", worker_id(), self.started_at, jobs=said[0], paused=said[1])
            self._next_beat, self._beat_said = now + self.heartbeat_every, said
        if now >= self._next_reap and self.broker.down_since is None:
            self._reap()
            self._next_reap = now + self.reap_every

    def _until_housekeeping(self) -> float:
        return max(0.0, min(self._next_beat, self._next_reap, self._next_lock_check) - time.monotonic())

    def close(self):
        self.courier.stop()
        self._step_down()
        super().close()
