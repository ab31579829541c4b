"""The runner's connection before a run: checked by its socket, replaced when its server session ended.

On the real Postgres: a session the server ended between two runs (a restart, an administrator)
is noticed before the claim and replaced, so no run fails on it; a session that is fine costs no
``SELECT 1``. Counts calls and sessions, never time.
"""

import datetime as dt

import psycopg
import pytest
from django.db import connection
from django.db import connections as databases

from tasks_app import runner
from tasks_app.runner import connections
from tests.helpers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

SLOT = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _postgres():
    if connection.vendor != "postgresql":
        pytest.skip("the socket check is Postgres's; elsewhere Django's own checks run unchanged")


@pytest.fixture
def pings(monkeypatch):
    """How many times Django asked the server whether the connection works (``SELECT 1``)."""
    asked = []
    wrapper = databases["default"]  # this thread's connection, the one the runner uses here
    real = wrapper.is_usable

    def is_usable():
        asked.append(wrapper.alias)
        return real()

    monkeypatch.setattr(wrapper, "is_usable", is_usable)
    return asked


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def test_a_run_on_a_sound_connection_asks_the_server_nothing_before_its_claim(make_job, pings):
    job = make_job(kwargs={"x": 1, "y": 2})
    runner.run_slot(job.pk, SLOT, "celery")  # the connection is open, as in a worker between runs
    pings.clear()
    run = runner.run_slot(job.pk, SLOT + dt.timedelta(minutes=1), "celery")
    assert run.status == "succeeded" and pings == []


def test_a_session_the_server_ended_between_runs_is_replaced_and_the_next_run_succeeds(make_job, pings):
    job = make_job(kwargs={"x": 1, "y": 2})
    runner.run_slot(job.pk, SLOT, "celery")
    ended = _backend_pid()
    params = {k: v for k, v in connection.get_connection_params().items() if k not in ("cursor_factory", "context")}
    with psycopg.connect(**params, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [ended])
    # The server's goodbye reaches the socket: the connection has something to read.
    assert wait_for(lambda: not connections._quiet(connection.connection), timeout=10)
    run = runner.run_slot(job.pk, SLOT + dt.timedelta(minutes=1), "celery")
    assert run.status == "succeeded" and run.result == 3
    assert pings and _backend_pid() != ended


def test_a_closed_or_missing_connection_is_never_taken_as_sound():
    assert connections._quiet(None) is False
    connection.ensure_connection()
    raw = connection.connection
    connection.close()
    assert connections._quiet(raw) is False
