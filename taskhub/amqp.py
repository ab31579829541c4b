"""Celery's AMQP class, for RabbitMQ: a delivery limit on quorum queues, and taskhub's priority order.

- RabbitMQ counts the deliveries of each message on a quorum queue; past ``x-delivery-limit``
  (``CELERY_TASKHUB_DELIVERY_LIMIT``) it drops the message instead of handing it out again, so a
  message that kills every worker that takes it cannot loop for ever. Celery declares quorum queues
  (``task_default_queue_type``, ``task_create_missing_queue_type``) with ``x-queue-type`` only; this
  adds the limit to each one.
- A job's priority runs from 0 (first) to 9 (last), which is what Redis does with a message's
  priority; AMQP's runs the other way (9 first), so on ``amqp://`` a message goes out with ``9 - priority``.
"""

from celery.app import amqp

from taskhub.broker_settings import is_amqp

HIGHEST = 9  # taskhub's priorities: 0 (first) to 9 (last)


class LimitedQueues(amqp.Queues):
    delivery_limit: int | None = None

    def __setitem__(self, name, queue):
        arguments = queue.queue_arguments or {}
        if self.delivery_limit and arguments.get("x-queue-type") == "quorum":
            queue.queue_arguments = {"x-delivery-limit": self.delivery_limit, **arguments}
        super().__setitem__(name, queue)


class AMQP(amqp.AMQP):
    @property
    def queues_cls(self):
        limit = self.app.conf.get("taskhub_delivery_limit")
        return type("LimitedQueues", (LimitedQueues,), {"delivery_limit": limit})

    def _create_task_sender(self):
        send = super()._create_task_sender()
        if not is_amqp(self.app.conf.broker_url):
            return send

        def send_task_message(producer, name, message, priority=None, **kwargs):
            if priority is not None:
                priority = HIGHEST - min(max(int(priority), 0), HIGHEST)
            return send(producer, name, message, priority=priority, **kwargs)

        return send_task_message
