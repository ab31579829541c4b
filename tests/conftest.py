import warnings

import pytest
from django.conf import settings
from django.test import override_settings

import tests.handlers_for_tests  # noqa: F401  (registers the test handlers)
from tests.factories import job_factory

# Its asserts run inside the bench smoke tests: pytest explains them as it does a test's own.
pytest.register_assert_rewrite("tests.bench_smoke")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item (``item.rep_call``) for fixtures that act on failure."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def make_job():
    return job_factory


@pytest.fixture
def taskhub_settings():
    """Override entries of settings.TASKHUB for one test: ``taskhub_settings(HEARTBEAT_SECONDS=0.05)``."""
    overrides = []

    def apply(**values):
        override = override_settings(TASKHUB={**settings.TASKHUB, **values})
        override.enable()
        overrides.append(override)

    yield apply
    for override in reversed(overrides):
        override.disable()


@pytest.fixture
def fresh_calls():
    from tests import handlers_for_tests

    handlers_for_tests.calls.clear()
    handlers_for_tests.release.clear()
    yield handlers_for_tests.calls
    handlers_for_tests.release.set()


@pytest.fixture
def memory_engines(taskhub_settings):
    """Both engine names served by the in-process MemoryEngine, fresh for this test."""
    memory = "tasks_app.engines.memory.MemoryEngine"
    taskhub_settings(ENGINES={"celery": memory, "apscheduler": memory})
    from tasks_app.engines import get_engine

    yield get_engine
    for name in ("celery", "apscheduler"):
        get_engine(name).stop()


# The database names before pytest-django swaps in its test databases (settings are loaded by now).
_NAMES_BEFORE_SETUP = {alias: database["NAME"] for alias, database in settings.DATABASES.items()}


def made_test_database(connection) -> bool:
    """Whether pytest-django made a test database for ``connection`` (none when no test uses it)."""
    return connection.settings_dict["NAME"] != _NAMES_BEFORE_SETUP[connection.alias]


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's, and before the test database is dropped, end the sessions still open on it.

    Threads that ran ORM code in a handler (asgiref's executor) or a leaked helper keep their
    own connections; Postgres refuses to drop a database in use, which leaves it behind. Only
    tests that use the database ask for this fixture, and only a database pytest-django made is
    touched: never the one the settings name (a run of database-free tests opens no connection).
    """
    yield
    from django.db import connection

    if connection.vendor != "postgresql" or not made_test_database(connection):
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, application_name, state, left(query, 120) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        stray = cursor.fetchall()
        for pid, *_ in stray:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    for pid, application, state, query in stray:  # shown in the run's warnings summary
        warnings.warn(
            f"ended a stray session on the test database: pid {pid} {application!r} {state}: {query}", stacklevel=2
        )
