"""What an engine does for taskhub, and nothing more: the contract every engine keeps.

An engine turns a ``Job`` into its own schedule (``schedule``/``unschedule``) and hands runs
to the runner: ``deliver(run)`` is the one way in for every queued run — run now, an API
trigger, a retry — and it honours ``run.next_attempt_at`` (a retry waits until then). Where
the engine executes a slot it calls ``execute``, which runs it through the runner and hands
a retry the runner left queued back to ``deliver``. What an engine can do is said by flags,
and ``check()`` returns its own system checks (compare Django's
``django/tasks/backends/base.py``: ``supports_defer``, ``check``).

What it is not: an engine never calls a handler and never writes a run's outcome.
"""

import logging
from abc import ABC, abstractmethod

from tasks_app import runner
from tasks_app.exceptions import EngineUnavailable
from tasks_app.models import RunStatus, Trigger

log = logging.getLogger("tasks_app.engines")


class BaseEngine(ABC):
    #: ``deliver`` holds a run until its ``next_attempt_at`` (retries with backoff).
    supports_defer: bool = True
    #: The schedule survives a restart of every process (it is rebuilt from the jobs).
    durable: bool = True
    #: Runs queued by other processes (the admin, the API, commands) reach it.
    serves_other_processes: bool = True

    def __init__(self, name: str):
        self.name = name

    @abstractmethod
    def schedule(self, job) -> None:
        """Create or update this engine's schedule for an enabled job of this engine."""

    def schedule_many(self, jobs) -> None:
        """``schedule`` each of these jobs; an engine with a cheaper way for many overrides this."""
        for job in jobs:
            self.schedule(job)

    @abstractmethod
    def unschedule(self, job_id: int) -> None:
        """Remove the job from this engine's schedule (paused, deleted, or moved away)."""

    def unschedule_many(self, job_ids) -> None:
        """``unschedule`` each of these jobs, past one's failure (the first is raised once all were tried).

        An engine with a cheaper way for many overrides this.
        """
        failure = None
        for job_id in job_ids:
            try:
                self.unschedule(job_id)
            except Exception as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    @abstractmethod
    def deliver(self, run) -> None:
        """Hand a queued ``JobRun`` to be executed: at ``run.next_attempt_at`` when it is set, else now.

        Raises ``EngineUnavailable`` when nothing will execute it now; the run stays queued
        and the engine's scheduler hands it over once it can.
        """

    def execute(self, job_id: int, scheduled_for, *, attempt: int = 1, trigger: str = Trigger.SCHEDULE, **options):
        """Run one slot here through the runner; a retry it leaves queued goes back to ``deliver``."""
        run = runner.run_slot(job_id, scheduled_for, self.name, attempt=attempt, trigger=trigger, **options)
        self._deliver_retries([run])
        return run

    def execute_many(self, slots: list, vet=None, started=None) -> list:
        """Run many ``runner.Slot``s here side by side (one claim); each slot's run, or ``None``.

        ``vet`` and ``started`` are ``runner.run_slots``'s: a reason ``vet`` gives for a claimed run
        skips it instead; ``started()`` is called once the claimed handlers have started."""
        runs = runner.run_slots(slots, self.name, vet=vet, started=started) if slots else []
        self._deliver_retries(runs)
        return runs

    def _deliver_retries(self, runs) -> None:
        for run in runs:
            if run is not None and run.status == RunStatus.QUEUED and run.next_attempt_at:
                try:
                    self.deliver(run)
                except EngineUnavailable as exc:  # it stays queued: the scheduler hands it over later
                    log.warning(
                        "retry not delivered; it stays queued",
                        extra={"run": run.pk, "engine": self.name, "error": str(exc)},
                    )

    def is_alive(self) -> bool:
        """Whether something will execute a delivered run now."""
        return True

    def check(self) -> list:
        """This engine's own system checks (``django.core.checks`` messages) for its configuration."""
        return []

    def __repr__(self):
        return f"<{type(self).__name__} {self.name}>"
