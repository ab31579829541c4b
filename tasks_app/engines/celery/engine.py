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
from django.core.checks import Error
from django.db import transaction
from kombu.exceptions import OperationalError

from tasks_app import conf
from tasks_app.engines.base import BaseEngine, EngineUnavailable
from tasks_app.engines.celery import beat_rows
from tasks_app.engines.celery.messages import (
    TASK,
    delay_options,
    message_kwargs,
    message_options,
    visibility_timeout,
)

# Each Celery setting taskhub's guarantees rest on, with why.
CELERY_REQUIREMENTS = {
    "task_acks_late": (True, "a task is acknowledged after it ran, so a dead worker's task is re-delivered"),
    "task_reject_on_worker_lost": (True, "a task whose pool process died is re-queued, not lost"),
    "worker_prefetch_multiplier": (1, "a busy worker does not hold messages other workers could run"),
    "task_serializer": ("json", "messages are JSON only"),
    "accept_content": (["json"], "a worker never unpickles a message"),
}


class CeleryEngine(BaseEngine):
    def schedule(self, job) -> None:
        self.schedule_many([job])

    def schedule_many(self, jobs) -> None:
        with transaction.atomic():
            beat_rows.project_many(jobs)

    def unschedule(self, job_id: int) -> None:
        self.unschedule_many([job_id])

    def unschedule_many(self, job_ids) -> None:
        beat_rows.remove(job_ids)

    def deliver(self, run) -> None:
        kwargs = message_kwargs(run.job_id, run.scheduled_for, run.attempt, run.trigger)
        try:
            options = {**message_options(run.job), **delay_options(current_app, run.next_attempt_at)}
            current_app.send_task(TASK, kwargs=kwargs, **options)
        except OperationalError as exc:  # kombu's "cannot reach the broker", after its publish retries
            raise EngineUnavailable(
                f"the Celery broker is unreachable ({exc}): the run stays queued and is sent when the broker is back"
            ) from exc

    def is_alive(self) -> bool:
        """Whether a worker answers a ping within a second."""
        try:
            return bool(current_app.control.inspect(timeout=1.0).ping())
        except Exception:  # an unreachable broker means no worker will run it
            return False

    def check(self) -> list:
        """The Celery settings taskhub's guarantees rest on, and retries below the visibility timeout."""
        from taskhub.celery import app  # the project's Celery app: built on first import, so only when checked

        errors = []
        for name, (wanted, why) in CELERY_REQUIREMENTS.items():
            value = app.conf.get(name)
            if (list(value) if isinstance(value, (list, tuple, set)) else value) != wanted:
                errors.append(
                    Error(f"Celery setting {name} is {value!r}; taskhub needs {wanted!r}: {why}", id="taskhub.E003")
                )
        visibility = visibility_timeout(app)

        if visibility is not None and conf.get("MAX_RETRY_DELAY_SECONDS") >= visibility:
            errors.append(
                Error(
                    f"TASKHUB['MAX_RETRY_DELAY_SECONDS'] ({conf.get('MAX_RETRY_DELAY_SECONDS')}) "
                    "must be below the broker's "
                    f"visibility_timeout ({visibility}): a retry waiting longer is re-delivered and runs twice",
                    id="taskhub.E004",
                )
            )
        return errors
