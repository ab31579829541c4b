"""The real services the tests use, and what to do when one is down.

A test that needs a service that is down is skipped locally and fails when ``CI`` is
set (as dramatiq's conftest does), so a broken CI machine cannot pass by skipping.
"""

import os
import socket
from urllib.parse import urlsplit

import pytest

POSTGRES_URL = os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/taskhub")
# The server's own database, for a process that must not touch the test database.
POSTGRES_SERVER_URL = POSTGRES_URL.rsplit("/", 1)[0] + "/postgres"
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
# RabbitMQ, on a vhost of the tests' own (.ci/run creates it; locally: rabbitmqctl add_vhost taskhub_test).
AMQP_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/taskhub_test")


def reachable(url: str, timeout: float = 0.5) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=timeout):
            return True
    except OSError:
        return False


def require(url: str, what: str, problem: str | None = None) -> None:
    """Skip (or, under CI, fail) the calling test when ``url`` does not answer (or ``problem`` is given)."""
    if reachable(url) and problem is None:
        return
    message = problem or f"{what} is not reachable at {urlsplit(url).netloc}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI must provide it)")
    pytest.skip(message)
