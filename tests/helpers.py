"""Helpers of the tests: the project's own commands in a fresh process, as a user would; waits; races."""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Variables of ours that a test's subprocess must not inherit unless it sets them.
OURS = (
    "DEBUG",
    "SECRET_KEY",
    "DATABASE_URL",
    "TASKHUB_",
    "CELERY_",
    "REDIS_URL",
    "DJANGO_SETTINGS_MODULE",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "SECURE_",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
)


def clean_env(**overrides: str) -> dict[str, str]:
    """The current environment without taskhub's variables, plus ``overrides``.

    Nor Django's async-safety switch, which the browser tests set for their own thread only.
    ``.env`` and ``.secrets`` point nowhere unless the test names its own files.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(OURS) and k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env.update(TASKHUB_ENV_FILE=os.devnull, TASKHUB_SECRETS_FILE=os.devnull, DJANGO_SETTINGS_MODULE="taskhub.settings")
    env.update(overrides)
    return env


def run(
    args: list[str], env: dict[str, str], input: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, env=env, input=input, capture_output=True, text=True, timeout=timeout)


def manage(
    *args: str, env: dict[str, str], input: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    return run([sys.executable, "manage.py", *args], env=env, input=input, timeout=timeout)


def python(code: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``code`` after ``django.setup()`` with the given environment."""
    return run([sys.executable, "-c", "import django; django.setup()\n" + code], env=env, timeout=timeout)


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05):
    """Call ``predicate`` every ``interval`` s until it returns something truthy.

    That value; None when ``timeout`` s pass first.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


def at_once(call, threads: int, timeout: float = 30.0) -> list:
    """``call()`` in ``threads`` threads let go together, each on its own database connection; their results.

    A thread that raised, or did not finish within ``timeout``, leaves its result out.
    """
    from django.db import connection

    barrier, results = threading.Barrier(threads), []

    def target():
        try:
            barrier.wait(5)
            results.append(call())
        finally:
            connection.close()

    started = [threading.Thread(target=target) for _ in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join(timeout)
    return results
