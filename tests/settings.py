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
if "DATABASE_URL" not in os.environ and (os.environ.get("CI") or reachable(POSTGRES_URL)):
    os.environ["DATABASE_URL"] = POSTGRES_URL

from taskhub.settings import *  # noqa: F403
