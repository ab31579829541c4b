"""APScheduler's background scheduler with a batched tick: every job due now is fired in one go.

``BackgroundScheduler._process_jobs`` submits each due job to its executor and then writes the
job's next run time back to the store before it looks at the next job: with a database store,
a transaction per job, serially, in the scheduler thread — at midnight, with 1,000 jobs due,
the last one is submitted seconds late. ``BatchingScheduler`` keeps its semantics (which jobs
are due, their run times, coalescing, the next wake-up) and changes the order:

1. taskhub's fires (the stored ``fire`` function) due now go to ``RunnerExecutor.submit_fires``
   together: one claim for the batch, every handler started at once (``engine.py``);
2. once those handlers have begun (``RunnerExecutor.submit_fires``'s event, waited for at most
   ``start_wait`` s, so that this thread's bookkeeping does not compete with their claim for the
   GIL and the database), the store learns every fired job's next run time in one statement
   (``TaskhubJobStore.update_jobs``) and drops the once-only jobs in another (``remove_jobs``);
3. plain functions scheduled through ``SchedulerManager`` go through APScheduler's own path.

It relies on APScheduler 3.11's internals (``_get_run_times``, ``_modify``, the jobstores lock);
``requirements.txt`` pins that version and ``tests/test_apscheduler_batches.py`` holds the behaviour.
"""

import datetime as dt
import logging
from threading import TIMEOUT_MAX

from apscheduler.events import EVENT_JOB_REMOVED, EVENT_JOB_SUBMITTED, JobEvent, JobSubmissionEvent
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_PAUSED, STATE_STOPPED

log = logging.getLogger("tasks_app.apscheduler")


class BatchingScheduler(BackgroundScheduler):
    start_wait = 0.2  # seconds the store's bookkeeping waits at most for a tick's handlers to start

    def __init__(self, *args, is_fire, **kwargs):
        self.is_fire = is_fire  # whether a stored job is one of taskhub's fires
        super().__init__(*args, **kwargs)

    def _process_jobs(self):
        if self.state == STATE_PAUSED:
            return None
        now = dt.datetime.now(self.timezone)
        next_wakeup = None
        events = []
        with self._jobstores_lock:
            if self.state == STATE_STOPPED:  # shut down while this thread slept: the executors are gone
                return None  # (``shutdown`` stops the executors under this lock, after setting the state)
            for alias, store in self._jobstores.items():
                try:
                    due = store.get_due_jobs(now)
                except Exception as exc:
                    log.warning("cannot read due jobs; retrying", extra={"store": alias, "error": str(exc)})
                    retry = now + dt.timedelta(seconds=self.jobstore_retry_interval)
                    next_wakeup = min(next_wakeup or retry, retry)
                    continue
                fires, others = [], []
                for job in due:
                    run_times = job._get_run_times(now)
                    run_times = run_times[-1:] if run_times and job.coalesce else run_times
                    if run_times:
                        (fires if self.is_fire(job) else others).append((job, run_times))
                if fires:
                    started = self._lookup_executor("default").submit_fires(fires)
                    # The bookkeeping below would compete with the claim and the handlers' start
                    # for the GIL (and the database): it waits until they have started.
                    started.wait(self.start_wait)
                for job, run_times in others:
                    events += self._submit(job, run_times, alias)
                try:
                    self._advance(store, alias, fires + others, now)
                    upcoming = store.get_next_run_time()
                except Exception as exc:  # the database went away: the next tick fires the same slots again,
                    # and the runner's claim keeps each to one run
                    log.warning("cannot update the job store; retrying", extra={"store": alias, "error": str(exc)})
                    upcoming = now + dt.timedelta(seconds=self.jobstore_retry_interval)
                if upcoming and (next_wakeup is None or upcoming < next_wakeup):
                    next_wakeup = upcoming.astimezone(self.timezone)
        for event in events:
            self._dispatch_event(event)
        if self.state == STATE_PAUSED or next_wakeup is None:
            return None
        return min(max(next_wakeup.timestamp() - dt.datetime.now(self.timezone).timestamp(), 0), TIMEOUT_MAX)

    def _submit(self, job, run_times, alias) -> list:
        """APScheduler's own submission, for a plain function."""
        try:
            self._lookup_executor(job.executor).submit_job(job, run_times)
        except Exception:
            log.exception("could not submit a scheduled function", extra={"aps_job": job.id})
            return []
        return [JobSubmissionEvent(EVENT_JOB_SUBMITTED, job.id, alias, run_times)]

    def _advance(self, store, alias, fired, now) -> None:
        """Move every fired job to its next run time (one write), or remove it when it has none."""
        moved, done = [], []
        for job, run_times in fired:
            upcoming = job.trigger.get_next_fire_time(run_times[-1], now)
            if upcoming:
                job._modify(next_run_time=upcoming)
                moved.append(job)
            else:
                done.append(job.id)
        store.update_jobs(moved)
        store.remove_jobs(done)
        for job_id in done:
            self._dispatch_event(JobEvent(EVENT_JOB_REMOVED, job_id, alias))
