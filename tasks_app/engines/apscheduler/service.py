"""The ``runapscheduler`` process: lead, schedule, hear changes, beat, drain on SIGTERM.

It waits as a standby until it holds the ``apscheduler`` leader lock, then starts the
scheduler (missed fires since it last ran go through the misfire policy), reconciles
the store with the job table and loops: changed job ids from LISTEN (or the change
marker's version when polling) are re-applied one by one, queued runs are picked up, the
heartbeat is written. A lost lock (Postgres restarted) pauses the scheduler until the
lock is won again; database errors never end the process.

Idle, it costs a few statements a minute whatever the number of jobs: it sleeps on the LISTEN
socket until a NOTIFY or the next housekeeping (heartbeat every ``heartbeat_every`` s, at once
when the job count changes; lock check; the look for queued runs whose NOTIFY was lost, at once
after a lost LISTEN connection), and the job count lives in memory.
"""

import datetime as dt
import logging
import threading
import time

from django.db import DatabaseError, close_old_connections
from django.utils import timezone
from django_apscheduler.models import DjangoJob

from tasks_app import conf
from tasks_app.alerts.courier import AlertCourier
from tasks_app.engines import get_engine, long_lived
from tasks_app.engines.apscheduler.engine import ENGINE, STORE_PREFIX, store_id
from tasks_app.engines.leader import leader_lock
from tasks_app.engines.listener import ChangeWatcher
from tasks_app.engines.redelivery import Redelivery
from tasks_app.models import Job, JobRun, RunStatus, heartbeats
from tasks_app.runner import skipped as skipped_runs
from tasks_app.runner.claims import worker_id
from tasks_app.runner.run_requests import request_cancel
from tasks_app.scheduling import misfire
from tasks_app.scheduling.next_slots import NextSlots

log = logging.getLogger("tasks_app.apscheduler")


class SchedulerService:
    # With nothing changing, each of these is done this often (an idle leader costs a few statements a
    # minute, whatever the number of jobs): the heartbeat well within SCHEDULER_STALE_SECONDS (30 s);
    # the lock check; the look for queued runs no NOTIFY brought and for lost runs (polling: `poll`).
    heartbeat_every = 10.0
    lock_check_every = 5.0
    pick_up_every = 15.0

    def __init__(self, manager, stop: threading.Event, poll: float = 0.5):
        self.manager, self.stop, self.poll = manager, stop, poll
        self.lock = leader_lock("apscheduler")
        self.started_at = timezone.now()
        self.watcher: ChangeWatcher | None = None
        self.queued_seen: set[int] = set()
        self.redelivery = Redelivery(ENGINE)
        self.beat_jobs: int | None = None  # the job count the last heartbeat wrote
        self.courier = AlertCourier("apscheduler")  # overdue alerts and their delivery, beside the loop

    def serve(self, grace: float = 30.0) -> None:
        get_engine(ENGINE).manager = self.manager
        self.courier.start()  # standby or leader: whichever engine process is alive sends alerts
        try:
            while not self.stop.is_set():
                if not self._wait_for_lock():
                    break
                self._lead()
        finally:
            self._drain(grace)
            self.courier.stop()  # after the drain: alerts the last runs wrote are delivered at the next start

    def _wait_for_lock(self) -> bool:
        while not self.stop.is_set():
            try:
                if self.lock.acquire(self.stop, poll=1.0):
                    return True
            except DatabaseError:
                self.stop.wait(1.0)
        return False

    def _lead(self) -> None:
        try:
            self._take_over()
            now = time.monotonic()
            self.next_beat, self.next_lock_check = now, now + self.lock_check_every
            self.next_pick_up = now + self._pick_up_interval()  # the take-over has just picked up
            while not self.stop.is_set():
                self._apply_changes()
                self._housekeeping(time.monotonic())
        except DatabaseError as exc:
            log.warning("database trouble; pausing until the lock is ours again", extra={"error": str(exc)})
            self.lock.release()
            if self.manager.running:
                self.manager.scheduler.pause()
            close_old_connections()
            self.stop.wait(1.0)

    def _housekeeping(self, now: float) -> None:
        """The heartbeat (at once when the job count changed), the lock check and the pick-up, when due."""
        if now >= self.next_beat or self.manager.job_count() != self.beat_jobs:
            self.beat_jobs = self.manager.job_count()
            heartbeats.record("apscheduler", worker_id(), self.started_at, jobs=self.beat_jobs)
            self.next_beat = now + self.heartbeat_every
        if now >= self.next_lock_check:
            if not self.lock.still_held():
                raise DatabaseError("lost the leader lock")
            self.next_lock_check = now + self.lock_check_every
        if now >= self.next_pick_up:
            self._pick_up_queued()
            self.next_pick_up = now + self._pick_up_interval()

    def _pick_up_interval(self) -> float:
        return self.pick_up_every if self.watcher.hears_run_requests else self.poll * 10

    def _until_housekeeping(self) -> float:
        return max(0.0, min(self.next_beat, self.next_lock_check, self.next_pick_up) - time.monotonic())

    def _take_over(self) -> None:
        self.watcher = self.watcher or ChangeWatcher(sleep=self.stop.wait)
        if not self.manager.running:
            self.manager.start(paused=True)
        with long_lived.loading():
            jobs = Job.objects.filter(engine=ENGINE, enabled=True).load_for_scheduling()
            count = self.manager.reconcile(jobs)
            catch_up_lost_slots(self.manager, jobs)
        self.manager.scheduler.resume()
        self.queued_seen.clear()
        self.redelivery.forget()
        self._pick_up_queued()
        log.info("apscheduler is leader", extra={"engine": ENGINE, "leader": worker_id(), "jobs": count})

    def _apply_changes(self) -> None:
        # LISTEN wakes it on a change, so it sleeps until the next housekeeping; polling waits `poll`.
        timeout = self._until_housekeeping() if self.watcher.listener else min(self.poll, self._until_housekeeping())
        notices = self.watcher.wait(timeout, known=self.manager.stored_job_ids)
        if notices.runs:  # at their time: a delayed retry handed over from another process waits for it
            self._hand_over(self._queued().filter(pk__in=notices.runs))
        changed = notices.jobs
        if changed:
            self.manager.reload(changed)
            log.info("apscheduler applied job changes", extra={"engine": ENGINE, "jobs": sorted(changed)})
        if notices.reconnected or notices.runs_queued:  # lost run NOTIFYs, or runs the marker told of
            self.next_pick_up = 0.0

    def _pick_up_queued(self) -> None:
        """Queued runs of this engine not yet handed over (missed notifications, restarts, retries),
        and handed-over ones still queued long after they were due (the hand-over was lost)."""
        stale = timezone.now() - dt.timedelta(seconds=conf.get("STALE_AFTER_SECONDS"))
        if not self.redelivery.anything_waiting(stale):
            self.queued_seen.clear()  # none is queued any more
            return
        queued = self._queued()
        self.queued_seen &= set(queued.filter(pk__in=self.queued_seen).values_list("pk", flat=True))
        self._hand_over(queued.exclude(pk__in=self.queued_seen))
        for run in self.redelivery.overdue():
            self.manager.run_queued(run.pk)
        for run in JobRun.objects.filter(engine=ENGINE, status=RunStatus.RUNNING, heartbeat_at__lt=stale)[:100]:
            log.warning("taking over a run whose worker went silent", extra={"run": run.pk, "worker": run.worker})
            self.manager.run_lost(run)

    @staticmethod
    def _queued():
        return JobRun.objects.filter(engine=ENGINE, status=RunStatus.QUEUED).only("pk", "attempt", "next_attempt_at")

    def _hand_over(self, runs) -> None:
        """Run these queued runs at their time, once: a later pick-up leaves them alone."""
        for run in runs:
            self.queued_seen.add(run.pk)
            self.manager.run_queued(run.pk, at=run.next_attempt_at)
            self.redelivery.handed_over(run)

    def _drain(self, grace: float) -> None:
        """Stop firing, let in-flight runs finish for up to ``grace`` seconds, then cancel the rest."""
        if self.watcher is not None:
            self.watcher.close()
        if self.manager.running:
            self.manager.scheduler.pause()
            stopper = threading.Thread(target=self.manager.shutdown, kwargs={"wait": True}, daemon=True)
            stopper.start()
            stopper.join(grace)
            if stopper.is_alive():
                log.warning("grace period over; cancelling runs still in flight", extra={"grace_seconds": grace})
                request_cancel(JobRun.objects.filter(engine=ENGINE, status=RunStatus.RUNNING, worker=worker_id()))
                stopper.join(10)
        self.lock.release()
        log.info("apscheduler stopped", extra={"engine": ENGINE})


def catch_up_lost_slots(manager, jobs=None) -> int:
    """Fire (or record as skipped) the slots a dead leader's store let pass without a run.

    APScheduler moves a job's stored next run time past a slot as it submits the fire; a
    leader killed (or a database lost) before the fire's claim committed leaves that slot
    with no run, and the store will never fire it again. Like beat on taking the lead, each
    job's slots since its last recorded one, and before the store's next one, go through the
    job's misfire policy; the runner's claim keeps any overlap to one run. Returns the fires.
    ``jobs``: the enabled jobs of this engine, when the caller has them already.
    """

    ours = Job.objects.filter(engine=ENGINE, enabled=True)
    jobs = [job for job in (ours if jobs is None else jobs) if job.pk not in manager.quarantine]
    stored = dict(DjangoJob.objects.filter(id__startswith=STORE_PREFIX).values_list("id", "next_run_time"))
    last = skipped_runs.last_slots(ours.values("pk"))  # a subquery: no list of every id in the statement
    now, fired, upcoming = timezone.now(), 0, NextSlots()
    since = {job.pk: misfire.owed_since(job, last.get(job.pk)) for job in jobs}
    for job in sorted(jobs, key=lambda job: since[job.pk]):  # in rising order, NextSlots walks once per schedule
        with manager.quarantine.guard(job):
            first = upcoming.after(job, since[job.pk])
            if first is None or first > now:
                continue  # the usual case, found at the cost of a look-up: nothing owed
            upto = stored.get(store_id(job.pk))
            upto = min(now, job.slot_at(upto) or upto) if upto else now  # the store fires from its next slot on
            missed = [slot for slot in misfire.missed_slots(job, since[job.pk], now) if slot < upto]
            due = skipped_runs.settle(job, ENGINE, missed, now)
            for slot in due:
                manager.run_slot(job.pk, slot)
            fired += len(due)
    if fired:
        log.info("fired slots a previous leader let pass", extra={"engine": ENGINE, "fires": fired})
    return fired
