"""The jobs a scheduler process skips because it cannot schedule them — one bad row never stops an engine.

Each engine process keeps one ``Quarantine``. Before a job enters its schedule the engine
asks ``admit(job)``; work on one job's schedule runs inside ``guard(job)``, which turns any
exception but an outage (database, broker) into a held job. A held job is logged once per reason
(an ERROR line with the job and the reason), left out of the schedule, and let back in as
soon as an edit makes it schedulable again. The admin and the dashboard find the same rows
themselves (``Job.schedule_problem``), so nothing here is stored.
"""

import contextlib
import logging

from django.db import DatabaseError
from kombu.exceptions import KombuError

# An outage is not the row's fault: the engine's own outage handling deals with these.
OUTAGES = (DatabaseError, KombuError, OSError)

log = logging.getLogger("tasks_app.engines")


class Quarantine:
    def __init__(self, engine: str):
        self.engine = engine
        self.reasons: dict[int, str] = {}

    def admit(self, job) -> bool:
        """Whether ``job`` may be scheduled; if not, it is held (and logged once) with its reason."""
        problem = job.schedule_problem()
        if problem:
            self.hold(job, problem)
            return False
        self.release(job.pk)
        return True

    @contextlib.contextmanager
    def guard(self, job):
        """Hold ``job`` if the block fails for any reason but an outage of the database or the broker."""
        try:
            yield
        except OUTAGES:
            raise
        except Exception as exc:
            self.hold(job, f"{type(exc).__name__}: {exc}", exc_info=True)

    def hold(self, job, reason: str, exc_info: bool = False) -> None:
        if self.reasons.get(job.pk) != reason:
            self.reasons[job.pk] = reason
            log.error(
                "job cannot be scheduled; skipped until it is fixed",
                exc_info=exc_info,
                extra={"job": job.name, "job_id": job.pk, "engine": self.engine, "reason": reason},
            )

    def release(self, job_id: int) -> None:
        if self.reasons.pop(job_id, None) is not None:
            log.info("job can be scheduled again", extra={"job_id": job_id, "engine": self.engine})

    def __contains__(self, job_id) -> bool:
        return job_id in self.reasons
