"""Both Celery brokers for the guarantee tests: ``broker_url`` runs a test on Redis and on RabbitMQ.

On RabbitMQ the test's processes and the test process itself (``request_run`` publishes from it)
use the tests' own vhost with the settings production gets for ``amqp://`` (taskhub/broker_settings.py);
the queues the tests use are purged before and after, so no message outlives its test.
"""

import contextlib
import os

import pytest
from kombu import Connection, pools

from taskhub.broker_settings import celery_options
from tests.services import AMQP_URL, REDIS_URL, require

# The task queue the tests use and the queues of Celery's native delayed delivery (celery_delayed_0..27).
TEST_QUEUES = ["default", *(f"celery_delayed_{level}" for level in range(28))]


def amqp_problem(url: str = AMQP_URL) -> str | None:
    """Why RabbitMQ cannot serve the tests at ``url`` (down, or no such vhost), or None."""
    try:
        with Connection(url, connect_timeout=2) as connection:
            connection.ensure_connection(max_retries=0)
    except Exception as exc:
        vhost = url.rsplit("/", 1)[1] or "/"
        return (
            f"RabbitMQ does not serve the vhost '{vhost}' ({type(exc).__name__}: {exc}); create it with "
            f"rabbitmqctl add_vhost {vhost} && rabbitmqctl set_permissions -p {vhost} guest '.*' '.*' '.*'"
        )
    return None


def purge(url: str, queues=TEST_QUEUES) -> None:
    """Empty each of ``queues`` that exists on the broker at ``url``."""
    with Connection(url, connect_timeout=2) as connection:
        for name in queues:
            channel = connection.channel()
            try:
                channel.queue_purge(name)
            except connection.channel_errors:  # no such queue (the failed call closed this channel)
                pass
            finally:
                with contextlib.suppress(Exception):
                    channel.close()


@contextlib.contextmanager
def celery_app_on(url: str):
    """The test process's Celery app configured for the broker at ``url``, as taskhub/settings.py would."""
    from celery import _state

    from taskhub.celery import app

    # Another test may have made another Celery app current (creating one does): the engines publish
    # through ``current_app``, so this one is made current while the test runs, and both are rebuilt.
    previous = _state.get_current_app()
    options = {"broker_url": url, **celery_options(url)}
    saved = {name: app.conf.get(name) for name in options}
    saved_env = os.environ.get("CELERY_BROKER_URL")  # Celery reads it before its broker_url setting
    os.environ["CELERY_BROKER_URL"] = url
    app.set_current()
    _reconfigure(app, options, previous)
    try:
        yield app
    finally:
        if saved_env is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = saved_env
        _reconfigure(app, saved, previous)
        previous.set_current()


def _reconfigure(app, options: dict, other) -> None:
    app.conf.update(options)
    pools.reset()  # closes every broker connection of this process, whichever app opened it ...
    for each in {app, other}:  # ... so each app opens them again from its settings
        each._pool = None
        each.__dict__.pop("amqp", None)  # and its queues (their types and exchanges)


@pytest.fixture(params=["redis", "amqp"])
def broker_url(request, processes):
    """The broker a guarantee test runs on: ``processes`` start on it and the test process publishes to it."""
    if request.param == "redis":
        yield REDIS_URL
        return
    require(AMQP_URL, "RabbitMQ", amqp_problem())
    purge(AMQP_URL)
    processes.broker_url = AMQP_URL
    with celery_app_on(AMQP_URL):
        yield AMQP_URL
    processes.stop_all()  # before the purge: a worker would take what is left
    purge(AMQP_URL)
