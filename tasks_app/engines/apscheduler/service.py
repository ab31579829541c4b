"""The ``runapscheduler`` process: lead, schedule, hear changes, beat, drain on SIGTERM.

It waits as a standby until it holds the ``apscheduler`` leader lock, then starts the
scheduler (missed fires since it last ran go through the misfire policy), reconciles
the store with the job table and loops: changed job ids from LISTEN (or the change
marker's version when polling) are re-applied one by one, queued runs are picked up, the
heartbeat is written. A lost lock (Postgres restarted) pauses the scheduler until the
lock is won again; database errors never end the process.
"""

import datetime as dt
import logging
import threading
import time

from django.db import DatabaseError, close_old_connections
from django.utils import timezone
from django_apscheduler.models import DjangoJob

from tasks_app import conf
from tasks_app.engines import get_engine
from tasks_app.engines.apscheduler.engine import ENGINE, store_id
from tasks_app.engines.leader import leader_lock
from tasks_app.engines.listener import ChangeWatcher
from tasks_app.engines.redelivery import Redelivery
from tasks_app.models import Job, JobRun, RunStatus, heartbeats
from tasks_app.runner import skipped as skipped_runs
from tasks_app.runner.claims import worker_id
from tasks_app.runner.run_requests import request_cancel
from tasks_app.scheduling import misfire

log = logging.getLogger("tasks_app.apscheduler")


class SchedulerService:
    heartbeat_every = 2.0

    def __init__(self, manager, stop: threading.Event, poll: float = 0.5):
        self.manager, self.stop, self.poll = manager, stop, poll
        self.lock = leader_lock("apscheduler")
        self.started_at = timezone.now()
        self.watcher: ChangeWatcher | None = None
        self.queued_seen: set[int] = set()
        self.redelivery = Redelivery(ENGINE)

    def serve(self, grace: float = 30.0) -> None:
        get_engine(ENGINE).manager = self.manager
        try:
            while not self.stop.is_set():
                if not self._wait_for_lock():
                    break
                self._lead()
        finally:
            self._drain(grace)

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
            next_beat = next_check = 0.0
            while not self.stop.is_set():
                self._apply_changes()
                now = time.monotonic()
                if now >= next_beat:
                    heartbeats.record("apscheduler", worker_id(), self.started_at, jobs=self.manager.job_count())
                    next_beat = now + self.heartbeat_every
                if now >= next_check:
                    if not self.lock.still_held():
                        raise DatabaseError("lost the leader lock")
                    self._pick_up_queued()
                    next_check = now + 5.0
        except DatabaseError as exc:
            log.warning("database trouble; pausing until the lock is ours again", extra={"error": str(exc)})
            self.lock.release()
            if self.manager.running:
                self.manager.scheduler.pause()
            close_old_connections()
            self.stop.wait(1.0)

    def _take_over(self) -> None:
        self.watcher = self.watcher or ChangeWatcher(sleep=self.stop.wait)
        if not self.manager.running:
            self.manager.start(paused=True)
        count = self.manager.reconcile()
        catch_up_lost_slots(self.manager)
        self.manager.scheduler.resume()
        self.queued_seen.clear()
        self.redelivery.forget()
        self._pick_up_queued()
        log.info("apscheduler is leader", extra={"engine": ENGINE, "leader": worker_id(), "jobs": count})

    def _apply_changes(self) -> None:
        # LISTEN wakes it on a change, so it may wait up to the heartbeat; polling waits `poll`.
        timeout = self.heartbeat_every if self.watcher.listener else self.poll
        notices = self.watcher.wait(timeout, known=self.manager.stored_job_ids)
        for run_id in notices.runs:
            self.manager.run_queued(run_id)
        changed = notices.jobs
        if changed:
            self.manager.reload(changed)
            log.info("apscheduler applied job changes", extra={"engine": ENGINE, "jobs": sorted(changed)})

    def _pick_up_queued(self) -> None:
        """Queued runs of this engine not yet handed over (missed notifications, restarts, retries),
        and handed-over ones still queued long after they were due (the hand-over was lost)."""
        queued = JobRun.objects.filter(engine=ENGINE, status=RunStatus.QUEUED)
        self.queued_seen &= set(queued.filter(pk__in=self.queued_seen).values_list("pk", flat=True))
        for run in queued.exclude(pk__in=self.queued_seen).only("pk", "attempt", "next_attempt_at"):
            self.queued_seen.add(run.pk)
            self.manager.run_queued(run.pk, at=run.next_attempt_at)
            self.redelivery.handed_over(run)
        for run in self.redelivery.overdue():
            self.manager.run_queued(run.pk)
        stale = timezone.now() - dt.timedelta(seconds=conf.get("STALE_AFTER_SECONDS"))
        for run in JobRun.objects.filter(engine=ENGINE, status=RunStatus.RUNNING, heartbeat_at__lt=stale)[:100]:
            log.warning("taking over a run whose worker went silent", extra={"run": run.pk, "worker": run.worker})
            self.manager.run_lost(run)

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


def catch_up_lost_slots(manager) -> int:
    """Fire (or record as skipped) the slots a dead leader's store let pass without a run.

    APScheduler moves a job's stored next run time past a slot as it submits the fire; a
    leader killed (or a database lost) before the fire's claim committed leaves that slot
    with no run, and the store will never fire it again. Like beat on taking the lead, each
    job's slots since its last recorded one, and before the store's next one, go through the
    job's misfire policy; the runner's claim keeps any overlap to one run. Returns the fires.
    """

    jobs = [job for job in Job.objects.filter(engine=ENGINE, enabled=True) if job.pk not in manager.quarantine]
    stored = dict(
        DjangoJob.objects.filter(id__in=[store_id(job.pk) for job in jobs]).values_list("id", "next_run_time")
    )
    last = skipped_runs.last_slots([job.pk for job in jobs])
    now, fired = timezone.now(), 0
    for job in jobs:
        with manager.quarantine.guard(job):
            upto = stored.get(store_id(job.pk))
            upto = min(now, job.slot_at(upto) or upto) if upto else now  # the store fires from its next slot on
            missed = [
                slot
                for slot in misfire.missed_slots(job, misfire.owed_since(job, last.get(job.pk)), now)
                if slot < upto
            ]
            due = skipped_runs.settle(job, ENGINE, missed, now)
            for slot in due:
                manager.run_slot(job.pk, slot)
            fired += len(due)
    if fired:
        log.info("fired slots a previous leader let pass", extra={"engine": ENGINE, "fires": fired})
    return fired
