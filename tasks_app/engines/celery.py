"""The Celery engine: beat rows derived from jobs, and delivery of runs to Celery workers.

- **Schedule.** Each enabled ``celery`` job is projected into django-celery-beat rows (a
  ``PeriodicTask`` named ``taskhub:<id>:<name>`` with its ``CrontabSchedule`` in the job's
  time zone, ``IntervalSchedule``, or ``ClockedSchedule`` + ``one_off``). The rows are
  derived: people edit the job, and ``sync_jobs`` rebuilds them. Beat itself runs
  ``engines.beat.TaskhubScheduler``, which fires jobs at the slots ``slots.py`` computes.
- **Delivery.** A message carries ids and the slot only — ``taskhub.run_job(job_id,
  scheduled_for, attempt, trigger)`` — routed by the job's ``queue`` and ``priority``,
  with soft and hard time limits just above the job's own timeout (the runner's cancel
  scope acts first; Celery's limits are the backstop). With the broker away, ``deliver``
  says so (``EngineUnavailable``) and the run stays queued: beat sends it when the broker
  is back (``redelivery.py``).

Limits: the projection is for visibility and tooling; the stock ``DatabaseScheduler``
reading these rows would not apply taskhub's slots, leader lock or misfire policy.
"""

from celery import current_app
from django.db import transaction
from kombu.exceptions import OperationalError

from tasks_app.engines.base import Engine, EngineUnavailable

TASK = "taskhub.run_job"
SOFT_LIMIT_MARGIN = 10  # seconds after the job's timeout before Celery's soft limit
HARD_LIMIT_MARGIN = 30  # and before its hard limit kills the pool process


def message_kwargs(job_id: int, scheduled_for, attempt: int = 1, trigger: str = "schedule") -> dict:
    return {"job_id": job_id, "scheduled_for": scheduled_for.isoformat(), "attempt": attempt, "trigger": trigger}


def message_options(job) -> dict:
    options = {"queue": job.queue, "priority": job.priority}
    timeout = job.effective_timeout()
    if timeout:
        options.update(soft_time_limit=timeout + SOFT_LIMIT_MARGIN, time_limit=timeout + HARD_LIMIT_MARGIN)
    return options


def hard_time_limit(job) -> float | None:
    timeout = job.effective_timeout()
    return timeout + HARD_LIMIT_MARGIN if timeout else None


class CeleryEngine(Engine):
    def schedule(self, job) -> None:
        from tasks_app.engines import beat_rows

        with transaction.atomic():
            beat_rows.project(job)

    def unschedule(self, job_id: int) -> None:
        self.unschedule_many([job_id])

    def unschedule_many(self, job_ids) -> None:
        from tasks_app.engines import beat_rows

        beat_rows.remove(job_ids)

    def deliver(self, run, eta=None) -> None:
        kwargs = message_kwargs(run.job_id, run.scheduled_for, run.attempt, run.trigger)
        try:
            current_app.send_task(TASK, kwargs=kwargs, eta=eta, **message_options(run.job))
        except OperationalError as exc:  # kombu's "cannot reach the broker", after its publish retries
            raise EngineUnavailable(f"the Celery broker is unreachable ({exc}): the run stays queued "
                                    "and is sent when the broker is back") from exc

    def is_alive(self) -> bool:
        """Whether a worker answers a ping within a second."""
        try:
            return bool(current_app.control.inspect(timeout=1.0).ping())
        except Exception:  # an unreachable broker means no worker will run it
            return False

