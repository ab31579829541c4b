"""Settings for the test suite: the real settings, on the real Postgres when it answers.

Locally, with Postgres down, the suite falls back to SQLite (the Postgres-only tests
skip); under CI it stays on Postgres so that those tests fail instead.
"""

import os

from tests.services import POSTGRES_URL, REDIS_URL, reachable

# A developer's .env and .secrets do not leak into the tests.
os.environ["TASKHUB_ENV_FILE"] = os.environ["TASKHUB_SECRETS_FILE"] = os.devnull
os.environ.setdefault("SECRET_KEY", "tests-only-not-a-secret")
os.environ.setdefault("CELERY_BROKER_URL", REDIS_URL)
# The engines' alert courier thread (tasks_app/alerts/courier.py) runs in the tests that test it.
os.environ.setdefault("TASKHUB_ALERT_POLL_SECONDS", "0")
if "DATABASE_URL" not in os.environ and (os.environ.get("CI") or reachable(POSTGRES_URL)):
    os.environ["DATABASE_URL"] = POSTGRES_URL

from taskhub.settings import *  # noqa: F403

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, as in production (WAL, writers wait their turn): Django's default in-memory test
    # database shares one cache between threads, where a second writer fails at once ("locked").
    import tempfile

    DATABASES["default"]["TEST"] = {"NAME": os.path.join(tempfile.gettempdir(), f"taskhub-test-{os.getpid()}.sqlite3")}  # noqa: F405
