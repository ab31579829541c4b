"""Any subset of the suite runs clean: the session-wide fixtures touch only a database pytest-django made.

Each test runs pytest in a fresh process, as ``bin/test tests/test_x.py`` does, on a Postgres
database name that starts with ``test_`` (so the name alone cannot tell a test database apart).
"""

import re
import sys

import psycopg

from tests.helpers import clean_env, run
from tests.services import POSTGRES_SERVER_URL, POSTGRES_URL, REDIS_URL, require

DATABASE_FREE = "tests/test_registry.py::test_registry_imports_no_django"
WITH_DATABASE = "tests/test_validation.py::test_a_duplicate_name_is_refused"


def pytest_subset(test: str, database: str) -> str:
    """The summary line of ``pytest TEST`` on Postgres database ``database``."""
    env = clean_env(
        DJANGO_SETTINGS_MODULE="tests.settings",
        TEST_DATABASE_URL=f"{POSTGRES_URL.rsplit('/', 1)[0]}/{database}",
        TEST_REDIS_URL=REDIS_URL,
    )
    result = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test], env=env, timeout=120)
    summary = result.stdout.strip().splitlines()[-1]
    assert result.returncode == 0, result.stdout[-3000:]
    return re.sub(r" in [\d.]+s$", "", summary)


def databases() -> set[str]:
    with psycopg.connect(POSTGRES_SERVER_URL, autocommit=True) as connection:
        return {name for (name,) in connection.execute("SELECT datname FROM pg_database")}


def test_a_database_free_test_opens_no_connection():
    require(POSTGRES_URL, "Postgres")
    # test_subset_absent does not exist: a session-wide fixture that connected to it would error.
    assert "test_subset_absent" not in databases()
    assert pytest_subset(DATABASE_FREE, database="test_subset_absent") == "1 passed"


def test_a_database_test_makes_its_test_database_and_drops_it():
    require(POSTGRES_URL, "Postgres")
    assert pytest_subset(WITH_DATABASE, database="test_subset_db") == "1 passed"
    assert not {"test_subset_db", "test_test_subset_db"} & databases()
