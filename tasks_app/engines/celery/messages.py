"""What a run's Celery message holds: ids and the slot, never a model; routing and time limits from the job.

``taskhub.run_job`` carries one slot; ``taskhub.run_slots`` carries several slots of one tick whose
jobs share their routing and time limits (beat packs up to ``BEAT_BATCH_SIZE`` into one).
"""

import math

from django.utils import timezone

from taskhub.broker_settings import is_amqp
from tasks_app.models import Trigger

TASK = "taskhub.run_job"
SLOTS_TASK = "taskhub.run_slots"  # several slots of one tick in one message: claimed together, run side by side
SOFT_LIMIT_MARGIN = 10  # seconds after the job's timeout before Celery's soft limit
HARD_LIMIT_MARGIN = 30  # and before its hard limit kills the pool process


def message_kwargs(job_id: int, scheduled_for, attempt: int = 1, trigger: str = Trigger.SCHEDULE) -> dict:
    return {"job_id": job_id, "scheduled_for": scheduled_for.isoformat(), "attempt": attempt, "trigger": trigger}


def slots_message_kwargs(messages: list[dict]) -> dict:
    """One message for several ``message_kwargs``: the worker claims them in one statement."""
    return {"slots": messages}


def message_options(job) -> dict:
    options = {"queue": job.queue, "priority": job.priority}
    timeout = job.effective_timeout()
    if timeout:
        options.update(soft_time_limit=timeout + SOFT_LIMIT_MARGIN, time_limit=timeout + HARD_LIMIT_MARGIN)
    return options


def delay_options(app, eta) -> dict:
    """When a message is due: ``eta`` on Redis. On RabbitMQ a countdown in whole seconds, rounded up: Celery's
    native delayed delivery (quorum queues) counts whole seconds by truncating, so a 0.3 s delay would fail
    ("countdown must be a positive number") and a 1.7 s one would run 0.7 s early."""
    if eta is None or not is_amqp(app.conf.broker_url):
        return {"eta": eta}
    seconds = (eta - timezone.now()).total_seconds()
    return {"countdown": math.ceil(seconds)} if seconds > 0 else {}


def hard_time_limit(job) -> float | None:
    timeout = job.effective_timeout()
    return timeout + HARD_LIMIT_MARGIN if timeout else None


def visibility_timeout(app) -> float | None:
    """Seconds before Redis (or SQS) delivers an unacknowledged message again; None for brokers without one."""
    if not str(app.conf.broker_url or "").startswith(("redis://", "rediss://", "sqs://")):
        return None
    return (app.conf.broker_transport_options or {}).get("visibility_timeout", 3600)
