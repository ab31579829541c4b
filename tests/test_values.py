"""Values Postgres cannot store, or code cannot walk: refused where they come in, escaped where they go out.

Kwargs with a NUL, a lone surrogate, nesting past the limit or past the size limit are a clean
error from every door (the ORM's matrix is in test_validation.py); whatever a handler returns,
raises or reports, its run ends in a terminal status on Postgres and is never left ``running``.
"""

import datetime as dt
import json
import threading

import pytest
from django.db import DataError, OperationalError, connection, transaction
from django.urls import reverse

from tasks_app import runner
from tasks_app.models import Job, JobRun
from tests import handlers_for_tests
from tests.handlers_for_tests import release
from tests.helpers import wait_for
from tests.services import POSTGRES_URL, require
from tests.test_admin import form_data
from tests.test_api import api_client, error_of, trigger  # noqa: F401  (api_client is a fixture)

SLOT = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)
DEEP = '{"payload": {"a": ' + "[" * 1200 + "]" * 1200 + "}}"
VERY_DEEP = '{"payload": {"a": ' + "[" * 100_000 + "]" * 100_000 + "}}"


@pytest.fixture
def postgres():
    require(POSTGRES_URL, "Postgres")
    if connection.vendor != "postgresql":
        pytest.fail("these tests are about what Postgres refuses: run them on Postgres")


# -- kwargs coming in -------------------------------------------------------------------------
BAD_KWARGS = [
    pytest.param('{"payload": {"a": "x\\u0000y"}}', "NUL character", id="nul"),
    pytest.param('{"payload": {"a\\u0000": 1}}', "NUL character", id="nul-in-key"),
    pytest.param('{"payload": {"a": "\\ud800"}}', "surrogate", id="lone-surrogate"),
    pytest.param(DEEP, "nested too deeply", id="1200-deep"),
    pytest.param(VERY_DEEP, "nested too deeply", id="100000-deep"),
    pytest.param('{"payload": {"a": "' + "x" * 70_000 + '"}}', "too large", id="70-kib"),
    pytest.param('{"payload": {"a": 1' + "0" * 5000 + "}}", "", id="5000-digit-number"),
    pytest.param('{"payload": {"a": [NaN]}}', "payload: may not be NaN or an infinity", id="nan"),
    pytest.param('{"payload": {"a": -Infinity}}', "payload: may not be NaN or an infinity", id="infinity"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("text, fragment", BAD_KWARGS)
def test_the_admin_form_refuses_with_a_field_error(admin_client, postgres, text, fragment):
    response = admin_client.post(reverse("admin:tasks_app_job_add"), form_data(handler="echo", kwargs=text))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert fragment in " ".join(errors["kwargs"]), errors
    assert not Job.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("text, fragment", BAD_KWARGS)
def test_the_api_refuses_with_a_400(make_job, api_client, memory_engines, postgres, text, fragment):
    job = make_job(handler="echo", kwargs={})
    message = error_of(trigger(job.name, api_client, ('{"kwargs": ' + text + "}").encode()), 400)
    assert fragment in message, message
    assert "\x00" not in message and not JobRun.objects.exists()


@pytest.mark.django_db
def test_kwargs_at_the_limits_are_accepted(postgres, make_job):
    deepest = {"payload": {"a": [[0]]}}
    for _ in range(28):
        deepest["payload"]["a"] = [deepest["payload"]["a"]]
    job = make_job(handler="echo", kwargs=deepest)  # 32 levels: kwargs, payload, 30 lists
    job.kwargs = {"payload": {"a": "x" * (65_536 - len('{"payload":{"a":""}}'))}}  # 64 KiB of JSON
    job.save()
    job.refresh_from_db()
    assert len(job.kwargs["payload"]["a"]) == 65_536 - 20


@pytest.mark.django_db
def test_the_limits_are_settings(postgres, make_job, taskhub_settings):
    from django.core.exceptions import ValidationError

    taskhub_settings(KWARGS_MAX_DEPTH=3, KWARGS_MAX_BYTES=40)
    make_job(handler="echo", kwargs={"payload": {"a": [1]}})
    with pytest.raises(ValidationError, match="at most 3 levels"):
        make_job(handler="echo", kwargs={"payload": {"a": [[1]]}})
    with pytest.raises(ValidationError, match="at most 40 bytes"):
        make_job(handler="echo", kwargs={"payload": {"a": "x" * 40}})


# -- outcomes going out -----------------------------------------------------------------------
pytestmark_runner = pytest.mark.django_db(transaction=True)


def run_in_thread(job):
    """``runner.run_slot`` of ``job``'s slot on a thread of its own (closing its connection after)."""

    def target():
        try:
            runner.run_slot(job.pk, SLOT, "apscheduler")
        finally:
            connection.close()

    thread = threading.Thread(target=target)
    thread.start()
    return thread


def run_outcome(make_job, value):
    """Run a job whose handler returns (or raises) ``value``; the stored run."""
    key = f"k{len(handlers_for_tests.outcomes)}"
    handlers_for_tests.outcomes[key] = value
    job = make_job(handler="test_outcome", kwargs={"key": key}, max_retries=0)
    runner.run_slot(job.pk, SLOT, "apscheduler")
    return JobRun.objects.get(job=job)


def no_outcome_retries(caplog):
    return "cannot store the outcome yet" not in caplog.text


@pytestmark_runner
def test_a_result_with_nul_and_surrogates_is_stored_escaped(postgres, make_job, caplog):
    run = run_outcome(make_job, {"a": "x\x00y", "k\x00": ["\ud800", "\udfff\ud83d\ude00"], "ok": "é\U0001f600"})
    assert run.status == "succeeded"
    assert run.result == {"a": "x\\u0000y", "k\\u0000": ["\\ud800", "\\udfff\\ud83d\\ude00"], "ok": "é\U0001f600"}
    assert no_outcome_retries(caplog)


@pytestmark_runner
def test_an_error_with_nul_and_surrogates_is_stored_escaped(postgres, make_job, caplog):
    run = run_outcome(make_job, ValueError("bad\x00byte \ud800 here"))
    assert run.status == "failed" and "ValueError: bad\\u0000byte \\ud800 here" in run.error
    assert no_outcome_retries(caplog)


@pytestmark_runner
@pytest.mark.parametrize(
    "value, stored",
    [
        (float("nan"), "NaN"),
        ([float("inf"), float("-inf")], ["Infinity", "-Infinity"]),
        (10**5000, "<int of 16610 bits>"),
        ({(1, 2): "tuple key"}, "{(1, 2): 'tuple key'}"),
    ],
    ids=["nan", "infinities", "5000-digit-int", "tuple-key"],
)
def test_numbers_and_keys_json_cannot_hold_are_stored_as_text(postgres, make_job, caplog, value, stored):
    run = run_outcome(make_job, value)
    assert (run.status, run.result) == ("succeeded", stored)
    assert no_outcome_retries(caplog)


@pytestmark_runner
@pytest.mark.parametrize("depth", [1200, 100_000])
def test_a_result_nobody_can_store_fails_the_run_with_the_reason(postgres, make_job, caplog, depth):
    value = []
    for _ in range(depth):
        value = [value]
    run = run_outcome(make_job, value)
    assert run.status == "failed" and run.result is None
    assert run.error.startswith("the outcome could not be stored: ")
    assert no_outcome_retries(caplog)


@pytestmark_runner
def test_a_nul_progress_message_keeps_the_heartbeat_going(postgres, make_job, taskhub_settings, fresh_calls):
    taskhub_settings(HEARTBEAT_SECONDS=0.05)
    handlers_for_tests.outcomes["pm"] = "step \x00 of \ud800" + "\x00" * 190
    job = make_job(handler="test_progress_message", kwargs={"key": "pm"})
    thread = run_in_thread(job)
    try:
        assert wait_for(lambda: JobRun.objects.filter(job=job, progress=0.5).exists())
        first = JobRun.objects.get(job=job).heartbeat_at
        assert wait_for(lambda: JobRun.objects.get(job=job).heartbeat_at > first)
        assert JobRun.objects.get(job=job).progress_message.startswith("step \\u0000 of \\ud800")
    finally:
        release.set()
        thread.join(10)
    run = JobRun.objects.get(job=job)
    assert run.status == "succeeded" and len(run.progress_message) == 200


@pytestmark_runner
def test_a_lost_connection_while_recording_is_waited_out(postgres, make_job, taskhub_settings, fresh_calls, caplog):
    """A real outage (the runner's session is terminated) is still retried, and the outcome lands."""
    taskhub_settings(HEARTBEAT_SECONDS=60, OUTCOME_RETRY_SECONDS=30)
    job = make_job(handler="test_wait", kwargs={"key": "outage"})
    thread = run_in_thread(job)
    try:
        assert wait_for(lambda: "outage" in fresh_calls)
        with connection.cursor() as cursor:  # every other session on the test database: the runner's
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            assert cursor.fetchall()
    finally:
        release.set()
        thread.join(30)
    assert JobRun.objects.get(job=job).status == "succeeded"
    assert "cannot store the outcome yet" in caplog.text


@pytest.mark.django_db
def test_only_an_outage_counts_as_one(postgres):
    from django.db import connections

    from tasks_app.runner.storable import is_outage

    with pytest.raises(DataError) as data_error, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT %s::jsonb", ['{"a": "\\u0000"}'])
    with pytest.raises(OperationalError) as too_deep, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT %s::jsonb", ["[" * 100_000 + "]" * 100_000])
    unreachable = connections.create_connection("default")
    unreachable.settings_dict = {**unreachable.settings_dict, "PORT": "1"}  # nothing listens there
    with pytest.raises(OperationalError) as refused:
        unreachable.ensure_connection()
    assert not is_outage(data_error.value) and not is_outage(too_deep.value)
    assert is_outage(refused.value)
    assert not is_outage(UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"))


def test_a_clean_message_never_carries_the_raw_characters():
    from tasks_app.handlers.json_limits import Unstorable, check_json

    with pytest.raises(Unstorable) as caught:
        check_json({"\x00\ud800": 1}, max_depth=32, max_bytes=1000)
    message = str(caught.value)
    assert "\x00" not in message and "\ud800" not in message and json.dumps(message).isascii()


@pytestmark_runner
def test_a_message_with_a_nul_in_its_task_id_still_runs_and_ends(postgres, make_job):
    job = make_job()
    runner.run_slot(job.pk, SLOT, "celery", task_id="from-outside\x00\ud800")
    run = JobRun.objects.get(job=job)
    assert (run.status, run.celery_task_id) == ("succeeded", "from-outside\\u0000\\ud800")
