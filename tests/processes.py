"""Real taskhub processes for the tests: Celery workers, beat, runapscheduler.

Each runs as a subprocess against the test database (the tests that use them commit
their data: ``django_db(transaction=True)``) and a flushed Redis database (or the broker of
``tests/brokers.py``'s ``broker_url``), and is stopped
by its PID when the test ends.
"""

import functools
import os
import signal
import subprocess
import sys

import pytest
import redis
from django.db import connection

from tests import helpers
from tests.helpers import ROOT, clean_env
from tests.services import REDIS_URL, require


def process_env(**overrides) -> dict[str, str]:
    settings = connection.settings_dict
    database = f"postgres://{settings['USER']}@{settings['HOST']}:{settings['PORT']}/{settings['NAME']}"
    env = {
        "SECRET_KEY": "k",
        "DATABASE_URL": database,
        "CELERY_BROKER_URL": REDIS_URL,
        "PYTHONPATH": str(ROOT),
        "TASKHUB_HANDLER_MODULES": "tasks_app.handlers.bundled,tests.handlers_for_tests",
        "TASKHUB_LOG_LEVEL": "INFO",
    }
    return clean_env(**{**env, **overrides})


class Processes:
    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.started: list[subprocess.Popen] = []
        self.broker_url = REDIS_URL  # tests/brokers.py's broker_url switches it to RabbitMQ

    def start(self, name: str, *args: str, **env) -> subprocess.Popen:
        log = open(self.tmp_path / f"{name}-{len(self.started)}.log", "w")
        proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=process_env(**{"CELERY_BROKER_URL": self.broker_url, **env}),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc.log_path = log.name
        self.started.append(proc)
        return proc

    def worker(self, concurrency: int = 2, pool: str = "prefork", **env) -> subprocess.Popen:
        return self.start(
            "worker",
            "-m",
            "celery",
            "-A",
            "taskhub",
            "worker",
            "--loglevel",
            "INFO",
            "-c",
            str(concurrency),
            "-P",
            pool,
            "--without-mingle",
            "--without-gossip",
            **env,
        )

    def beat(self, **env) -> subprocess.Popen:
        return self.start("beat", "-m", "celery", "-A", "taskhub", "beat", "--loglevel", "INFO", **env)

    def apscheduler(self, *args: str, **env) -> subprocess.Popen:
        return self.start("apscheduler", "manage.py", "runapscheduler", *args, **env)

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.started:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def output(self, proc) -> str:
        return open(proc.log_path).read()


@pytest.fixture
def processes(tmp_path):
    require(REDIS_URL, "Redis")
    if connection.vendor != "postgresql":
        pytest.skip("the engine processes share the test database: Postgres only")
    redis.Redis.from_url(REDIS_URL).flushdb()
    procs = Processes(tmp_path)
    yield procs
    procs.stop_all()


# The engine processes take longer to get going than an in-process call: a longer default wait.
wait_for = functools.partial(helpers.wait_for, timeout=20.0, interval=0.1)
