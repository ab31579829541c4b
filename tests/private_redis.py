"""A private Redis server for tests that stop, restart or flush their broker, and sending a run to it.

Never the shared one: each test gets its own ``redis-server`` on a free port, without
persistence (a restart loses every message, as a crashed Redis without AOF does), stopped
by its PID when the test ends.
"""

import os
import shutil
import signal
import socket
import subprocess
import time

import pytest
import redis

from tests import helpers


class PrivateRedis:
    def __init__(self, tmp_path):
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = tmp_path / f"redis-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        assert helpers.wait_for(self.ping, timeout=10), self.log.read_text()[-2000:]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self, down: float = 0.0) -> None:
        """Stop the server (its data is gone), stay down ``down`` seconds, start it again."""
        self.stop()
        time.sleep(down)
        self.start()

    def ping(self) -> bool:
        try:
            return redis.Redis.from_url(self.url, socket_connect_timeout=0.2).ping()
        except redis.RedisError:
            return False

    def flush(self) -> None:
        redis.Redis.from_url(self.url).flushdb()


def send(run, broker_url: str, eta=None) -> None:
    """What ``CeleryEngine.deliver`` sends for ``run``, to this broker instead of the configured one."""
    from taskhub.celery import app
    from tasks_app.engines.celery.messages import TASK, message_kwargs, message_options

    with app.connection_for_write(broker_url) as connection:
        app.send_task(
            TASK,
            kwargs=message_kwargs(run.job_id, run.scheduled_for, run.attempt, run.trigger),
            eta=eta,
            producer=connection.Producer(),
            **message_options(run.job),
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def private_redis(tmp_path):
    if shutil.which("redis-server") is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed (CI must provide it)")
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()
