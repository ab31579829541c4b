"""An in-process engine: a real implementation of the engine interface, for one process.

It keeps each enabled job's schedule in memory, fires due slots when ``tick(now)`` is
called (by its own thread after ``start()``, or directly by tests), and runs deliveries
on a small thread pool — all through the runner, exactly as the real engines do. Its
limits: nothing survives the process, and only this process sees its schedule; use it
for tests and for trying taskhub out, not to run production jobs.
"""

import datetime as dt
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from django.db import connections
from django.utils import timezone

from tasks_app.engines.base import BaseEngine
from tasks_app.models import Trigger

log = logging.getLogger("tasks_app.engines.memory")


class MemoryEngine(BaseEngine):
    durable = False  # nothing survives the process
    serves_other_processes = False  # only this process sees its schedule and its deliveries

    def __init__(self, name: str, workers: int = 4):
        super().__init__(name)
        self.jobs: dict[int, object] = {}
        self.last_tick: dict[int, dt.datetime] = {}
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"memory-{name}")
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def schedule(self, job) -> None:
        with self._lock:
            self.jobs[job.pk] = job
            self.last_tick.setdefault(job.pk, timezone.now())

    def unschedule(self, job_id: int) -> None:
        with self._lock:
            self.jobs.pop(job_id, None)
            self.last_tick.pop(job_id, None)

    def deliver(self, run):
        delay = (run.next_attempt_at - timezone.now()).total_seconds() if run.next_attempt_at else 0.0
        if delay > 0:
            timer = threading.Timer(delay, self.deliver, args=(run,))
            timer.daemon = True
            timer.start()
            return timer
        return self.pool.submit(self._run, run.job_id, run.scheduled_for, run.attempt, run.trigger)

    def _run(self, job_id, scheduled_for, attempt, trigger):
        try:
            return self.execute(job_id, scheduled_for, attempt=attempt, trigger=trigger)
        except Exception:
            log.exception("run failed to complete", extra={"job": job_id, "engine": self.name})
            raise
        finally:
            connections.close_all()  # pool threads outlive the run; their connections need not

    def tick(self, now: dt.datetime | None = None) -> list:
        """Fire every slot due since the last tick; returns the futures of the fires."""
        now = now or timezone.now()
        fires = []
        with self._lock:
            for job_id, job in self.jobs.items():
                for slot in job.iter_fire_times(after=self.last_tick[job_id]):
                    if slot > now:
                        break
                    fires.append((job_id, slot))
                self.last_tick[job_id] = now
        return [self.pool.submit(self._run, job_id, slot, 1, Trigger.SCHEDULE) for job_id, slot in fires]

    def start(self, interval: float = 0.5) -> None:
        threading.Thread(target=self._loop, args=(interval,), name=f"memory-{self.name}-tick", daemon=True).start()

    def _loop(self, interval):
        while not self._stop.wait(interval):
            self.tick()

    def stop(self) -> None:
        self._stop.set()
        self.pool.shutdown(wait=True)
