"""RabbitMQ as the Celery broker: the settings an ``amqp://`` URL gets, and the delivery limit on the real broker.

The Celery guarantees on RabbitMQ (scheduled runs, retries, a killed pool process, two beats, a
pickled message) run in tests/test_celery_engine.py over both brokers.
"""

import os
import signal
import time

import pytest
from kombu import Connection, Producer

from taskhub.broker_settings import celery, celery_options
from taskhub.config import ConfigError, Env
from tasks_app.engines import get_engine, request_run
from tasks_app.models import JobRun
from tests.brokers import TEST_QUEUES, amqp_problem, broker_url, celery_app_on  # noqa: F401  (fixture)
from tests.processes import processes, wait_for  # noqa: F401  (fixture)
from tests.services import AMQP_URL, REDIS_URL, require
from tests.test_lost_deliveries import queued_retry, ran_once


def test_an_amqp_url_gets_quorum_queues_a_delivery_limit_and_publisher_confirms_and_redis_a_visibility_timeout():
    with celery_app_on(AMQP_URL) as app:  # settings only: nothing connects
        queues = [app.amqp.queues["default"], app.amqp.queues["reports"]]  # the default one and a job's own
        assert [(q.queue_arguments, q.exchange.type) for q in queues] == [
            ({"x-queue-type": "quorum", "x-delivery-limit": 10}, "topic")
        ] * 2
        assert app.conf.broker_transport_options == {"confirm_publish": True}
    assert celery_options(REDIS_URL, visibility_timeout=60) == {"broker_transport_options": {"visibility_timeout": 60}}


@pytest.mark.parametrize("value", ["0", "-1", "1001", "ten"])
def test_a_delivery_limit_out_of_range_is_one_line_naming_the_variable(value):
    with pytest.raises(ConfigError, match="^TASKHUB_AMQP_DELIVERY_LIMIT (must be 1 to 1000|has a value that is not)"):
        celery(Env({"TASKHUB_AMQP_DELIVERY_LIMIT": value}), AMQP_URL)


def test_rabbitmq_drops_a_message_requeued_past_the_delivery_limit():
    """A message that every consumer hands back (as a worker killed by it does) stops after 1 + limit deliveries."""
    require(AMQP_URL, "RabbitMQ", amqp_problem())
    with celery_app_on(AMQP_URL) as app, Connection(AMQP_URL) as connection:
        limit = app.conf.taskhub_delivery_limit
        queue = app.amqp.queues["taskhub-test-delivery-limit"](connection.channel())
        queue.declare()
        try:
            queue.purge()
            Producer(queue.channel).publish({"poison": True}, exchange=queue.exchange, routing_key=queue.routing_key)
            deliveries = 0
            while deliveries <= 20 and (message := _get(queue)) is not None:
                deliveries += 1
                message.requeue()
        finally:
            queue.delete()
    assert (limit, deliveries) == (10, 1 + limit)


def test_a_jobs_priority_keeps_its_order_on_rabbitmq_where_amqp_counts_the_other_way():
    """0 runs first and 9 last on both brokers: on RabbitMQ (9 first) the message carries ``9 - priority``."""
    require(AMQP_URL, "RabbitMQ", amqp_problem())
    with celery_app_on(AMQP_URL) as app, Connection(AMQP_URL) as connection:
        queue = app.amqp.queues["taskhub-test-priority"](connection.channel())
        queue.declare()
        try:
            queue.purge()
            for priority in (0, 5, 9):
                app.send_task("taskhub.run_job", kwargs={"job_id": 0}, queue="taskhub-test-priority", priority=priority)
            sent = []
            while len(sent) < 3 and (message := _get(queue)) is not None:
                sent.append(message.properties.get("priority"))
                message.ack()
        finally:
            queue.delete()
    assert sent == [9, 4, 0]


def _get(queue, attempts: int = 20):
    """The next message on ``queue``, or None once it stays empty for a second (a requeue is not instant)."""
    for _ in range(attempts):
        if (message := queue.get(no_ack=False)) is not None:
            return message
        time.sleep(0.05)
    return None


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
@pytest.mark.parametrize("broker_url", ["amqp"], indirect=True)
def test_a_delayed_retry_waits_in_rabbitmq_not_in_a_worker_so_a_killed_worker_loses_nothing(
    make_job, processes, broker_url
):
    """Native delayed delivery: the retry's countdown runs in RabbitMQ's delay queues, rounded up to whole
    seconds, so a worker killed before it is due holds nothing, and the next worker runs it once, not early."""
    worker = processes.worker(concurrency=1)
    assert wait_for(lambda: "ready" in processes.output(worker), timeout=60)
    run = queued_retry(make_job(engine="celery", kwargs={"x": 2, "y": 3}), due_in=3.2)
    due = run.next_attempt_at
    get_engine("celery").deliver(run)
    assert waiting_in_delay_queues(broker_url) == 1  # in RabbitMQ, where no consumer can take it early
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    assert "received" not in processes.output(worker)
    processes.worker(concurrency=1)

    assert wait_for(lambda: JobRun.objects.get(pk=run.pk).status == "succeeded", timeout=60)
    assert ran_once(run, 5) and run.attempt == 2 and run.started_at >= due


def waiting_in_delay_queues(url: str) -> int:
    """Messages in Celery's native delayed delivery queues (``celery_delayed_0`` .. ``27``)."""
    total = 0
    with Connection(url) as connection:
        for name in (q for q in TEST_QUEUES if q.startswith("celery_delayed_")):
            channel = connection.channel()
            try:
                total += channel.queue_declare(queue=name, passive=True).message_count
            except connection.channel_errors:  # not declared (yet)
                pass
    return total


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
@pytest.mark.parametrize("broker_url", ["redis", "amqp"], indirect=True)
def test_a_run_that_kills_every_worker_taking_it_is_failed_after_three_losses(make_job, processes, broker_url):
    """A poison message: each delivery kills the pool process (re-queued, as a dead worker's task must be).
    The run is failed at its third loss (TASKHUB_MAX_LOST_ATTEMPTS) on either broker — Redis would hand it
    out for ever, RabbitMQ would drop it at its delivery limit and leave the run ``running``."""
    worker = processes.worker(concurrency=1)
    run = request_run(make_job(engine="celery", handler="test_kill_own_process", kwargs={}, max_retries=0))

    def received() -> int:  # its only message: Celery's "Task taskhub.run_job[<id>] received" lines
        return sum(
            "Task taskhub.run_job[" in line and "received" in line for line in processes.output(worker).splitlines()
        )

    def ended() -> bool:
        run.refresh_from_db()
        return run.status == "failed"

    assert wait_for(ended, timeout=90), processes.output(worker)[-3000:]
    time.sleep(3)  # a fifth delivery would come within a second of the fourth
    assert received() == 4 and worker.poll() is None
    assert [a["status"] for a in run.attempts] == ["lost"] * 3 and "lost 3 times" in run.error


def ready_in(url: str, queue: str) -> int:
    with Connection(url) as connection:
        return connection.channel().queue_declare(queue=queue, passive=True).message_count
