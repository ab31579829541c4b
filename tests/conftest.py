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


@pytest.fixture(scope="session", autouse=True)
def _end_stray_test_database_sessions(django_db_setup, django_db_blocker):
    """Before the test database is dropped, end the sessions still open on it, and name them.

    Threads that ran ORM code in a handler (asgiref's executor) or a leaked helper keep their
    own connections; Postgres refuses to drop a database in use, which leaves it behind.
    """
    yield
    from django.db import connection

    # pytest-django creates only the databases the collected tests use: maybe none at all.
    if connection.vendor != "postgresql" or not connection.settings_dict["NAME"].startswith("test_"):
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
