"""The Celery settings that depend on the broker: Redis (the default) or RabbitMQ (``amqp://``).

Redis re-delivers an unacknowledged message after ``visibility_timeout``, which must exceed every
task's hard time limit and retry delay (the system checks say so). RabbitMQ re-delivers one when its
consumer's connection closes, so it needs no such timeout; there taskhub uses quorum queues (replicated,
durable), a delivery limit (a message that kills its worker is dropped after that many deliveries, not
re-delivered for ever), topic exchanges (Celery's native delayed delivery holds a retry's countdown in
the broker, not in a worker's memory) and publisher confirms (a send returns once the broker has it).
"""

from taskhub.alert_settings import bounded
from taskhub.config import Env

AMQP_SCHEMES = ("amqp://", "amqps://", "pyamqp://")


def is_amqp(url: str) -> bool:
    return str(url or "").startswith(AMQP_SCHEMES)


def celery_options(url: str, visibility_timeout: int = 7200, delivery_limit: int = 10) -> dict:
    """Celery's settings (its own lower-case names) for the broker at ``url``."""
    if not is_amqp(url):
        return {"broker_transport_options": {"visibility_timeout": visibility_timeout}}
    return {
        "broker_transport_options": {"confirm_publish": True},
        "task_default_queue_type": "quorum",
        "task_create_missing_queue_type": "quorum",  # a job's own queue (Job.queue) too
        "task_default_exchange_type": "topic",  # native delayed delivery needs non-direct exchanges
        "task_create_missing_queue_exchange_type": "topic",
        "taskhub_delivery_limit": delivery_limit,  # x-delivery-limit on quorum queues (taskhub/amqp.py)
    }


def celery(env: Env, url: str) -> dict:
    """The ``CELERY_``-namespaced Django settings for the broker at ``url``, from the environment."""
    options = celery_options(
        url,
        visibility_timeout=env.int("TASKHUB_VISIBILITY_TIMEOUT", default=7200),
        delivery_limit=bounded(env, "TASKHUB_AMQP_DELIVERY_LIMIT", 10, 1, 1000, kind=int),
    )
    return {f"CELERY_{name.upper()}": value for name, value in options.items()}
