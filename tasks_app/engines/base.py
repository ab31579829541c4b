"""What an engine does for taskhub, and nothing more.

An engine turns a ``Job`` into its own schedule (``schedule``/``unschedule``) and hands
fires and queued runs to the runner (``deliver``). It never calls a handler itself.
"""

from abc import ABC, abstractmethod


class EngineUnavailable(Exception):
    """The run was queued but nothing will execute it now; str(exc) says why, for a person."""


class Engine(ABC):
    def __init__(self, name: str):
        self.name = name

    @abstractmethod
    def schedule(self, job) -> None:
        """Create or update this engine's schedule for an enabled job of this engine."""

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
        """Send a queued ``JobRun`` (run now, API trigger, retry) to be executed by the runner."""

    def is_alive(self) -> bool:
        """Whether something will execute a delivered run now."""
        return True

    def __repr__(self):
        return f"<{type(self).__name__} {self.name}>"
