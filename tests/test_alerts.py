"""Failure alerts: one per streak of failed runs, one recovery, written by the runner with the outcome.

Real Postgres, Django's locmem mail backend and a real HTTP receiver that checks signatures
(``alert_receiver.py``). Outbox rows are delivered by calling the deliverer, as the engines'
courier does.
"""

import datetime as dt

import pytest
from django.core import mail
from django.db import connection
from django.db.models.deletion import Collector
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from tasks_app import runner
from tasks_app.alerts import outbox, streaks
from tasks_app.models import AlertMessage, AlertStreak, JobRun
from tasks_app.runner import slot_inserts
from tests import handlers_for_tests
from tests.alert_receiver import receiving
from tests.helpers import at_once

pytestmark = pytest.mark.django_db(transaction=True)

T0 = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def receiver(taskhub_settings):
    with receiving(taskhub_settings, ALERT_EMAILS=["oncall@example.com"]) as receiver:
        yield receiver


@pytest.fixture
def flip():
    """A job's outcome, set by the test: ``flip(job, ok)``."""
    handlers_for_tests.outcomes.clear()

    def set_outcome(job, ok: bool):
        handlers_for_tests.outcomes[job.name] = "fine" if ok else ValueError(f"{job.name} broke")

    return set_outcome


def alerting_job(make_job, n=3, **fields):
    job = make_job(alert_after_failures=n, max_retries=0, **fields)
    job.kwargs = {"key": job.name}
    job.handler = "test_outcome"
    job.save()
    return job


def run(job, minutes: int, **kwargs):
    return runner.run_slot(job.pk, T0 + dt.timedelta(minutes=minutes), "apscheduler", **kwargs)


def deliver() -> int:
    return outbox.deliver_due(limit=50)


def test_n_failures_send_one_email_and_one_webhook_and_one_more_each_on_recovery(make_job, receiver, flip):
    job = alerting_job(make_job, n=3, alert_emails="owner@example.com")
    flip(job, ok=False)
    for minute in range(2):
        assert run(job, minute).status == "failed"
    deliver()
    assert (len(mail.outbox), receiver.calls) == (0, [])  # two failures: below the threshold
    run(job, 2)
    deliver()
    [message] = mail.outbox
    assert set(message.to) == {"ops@example.com", "oncall@example.com", "owner@example.com"}
    assert job.name in message.subject and "failing" in message.subject
    [call] = receiver.calls
    assert (call["kind"], call["job"], call["status"]) == ("failing", job.name, "failed")
    assert call["error"] == f"ValueError: {job.name} broke"
    assert call["admin_url"].endswith(f"/admin/tasks_app/job/{job.pk}/change/")
    assert receiver.refused == []

    for minute in range(3, 8):  # N + 5 failures: still the one alert
        run(job, minute)
    deliver()
    assert (len(mail.outbox), len(receiver.calls)) == (1, 1)

    flip(job, ok=True)
    recovered = run(job, 8)
    run(job, 9)  # a second success says nothing more
    deliver()
    assert len(mail.outbox) == 2 and "recovered" in mail.outbox[1].subject
    assert receiver.kinds() == ["failing", "recovered"]
    assert (receiver.calls[1]["run"], receiver.calls[1]["streak"]) == (recovered.pk, "failing")
    assert set(AlertMessage.objects.values_list("status", flat=True)) == {"sent"}

    flip(job, ok=False)  # a new streak is a new alert
    for minute in range(10, 13):
        run(job, minute)
    deliver()
    assert receiver.kinds() == ["failing", "recovered", "failing"]


def test_the_retries_of_one_slot_count_as_one_run(make_job, receiver, flip):
    job = alerting_job(make_job, n=2)
    job.max_retries = 1
    job.save()
    flip(job, ok=False)
    first = run(job, 0)
    assert (first.status, first.attempt) == ("queued", 2)  # a retry is owed: no outcome yet
    assert run(job, 0, attempt=2).status == "failed"  # the slot's outcome: one failure
    assert not AlertStreak.objects.exists()
    run(job, 1)
    run(job, 1, attempt=2)
    assert AlertStreak.objects.get().kind == "failing"


def test_skipped_and_cancelled_runs_neither_extend_nor_break_a_streak(make_job, receiver, flip):
    job = alerting_job(make_job, n=2)
    flip(job, ok=False)
    run(job, 0)
    JobRun.objects.create(job=job, engine=job.engine, scheduled_for=T0 + dt.timedelta(minutes=1), status="skipped")
    JobRun.objects.create(job=job, engine=job.engine, scheduled_for=T0 + dt.timedelta(minutes=2), status="cancelled")
    run(job, 3)
    assert AlertStreak.objects.open().filter(job=job, kind="failing").exists()


def test_a_success_costs_no_statement_with_alerts_off_and_one_with_them_on(make_job):
    if not slot_inserts.available():
        pytest.skip("the statement counts are Postgres's")
    off, on = make_job(kwargs={"x": 1, "y": 1}), make_job(kwargs={"x": 1, "y": 1}, alert_after_failures=2)
    counts = {}
    for job in (off, on):
        run(job, 0)  # a warm connection
        with CaptureQueriesContext(connection) as queries:
            assert run(job, 1).status == "succeeded"
        counts[job.alert_after_failures] = [q["sql"].split()[0].upper() for q in queries.captured_queries]
    assert counts == {0: ["WITH", "UPDATE"], 2: ["WITH", "UPDATE", "WITH"]}


def test_two_processes_opening_the_same_streak_write_one_alert(make_job, receiver):
    job = make_job(alert_after_failures=1)
    results = at_once(lambda: streaks.open_streak(job, "failing", detail="raced"), threads=4)
    assert sorted(results) == [False, False, False, True]
    assert AlertStreak.objects.count() == 1
    assert sorted(AlertMessage.objects.values_list("channel", flat=True)) == ["email", "webhook"]


def test_an_outbox_that_cannot_be_written_never_keeps_a_run_running(make_job, receiver, flip, caplog):
    """A real database refusal (a trigger), not a mock: the outcome is on record all the same."""
    if connection.vendor != "postgresql":
        pytest.skip("the refusal is a Postgres trigger")
    job = alerting_job(make_job, n=1)
    flip(job, ok=False)
    table = AlertMessage._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION refuse_alerts() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'alerts refused for the test'; END $$"
        )
        cursor.execute(f"CREATE TRIGGER refuse BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION refuse_alerts()")
    try:
        failed = run(job, 0)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TRIGGER refuse ON {table}")
            cursor.execute("DROP FUNCTION refuse_alerts()")
    failed.refresh_from_db()
    assert failed.status == "failed" and failed.finished_at is not None and failed.lane is None
    assert not AlertStreak.objects.exists()  # the streak and its messages went back together
    [refused] = [r for r in caplog.records if r.name == "tasks_app.alerts"]
    assert refused.levelname == "ERROR" and "alerts refused for the test" in refused.error
    run(job, 1)  # the next failure writes the alert the refused one could not
    assert AlertMessage.objects.filter(kind="failing").count() == 2


def test_no_channel_configured_opens_the_streak_and_writes_no_message(make_job, flip, taskhub_settings):
    taskhub_settings(ALERT_WEBHOOK_URL="", ALERT_EMAILS=[])
    job = alerting_job(make_job, n=1)
    flip(job, ok=False)
    with override_settings(ADMINS=[]):
        run(job, 0)
    assert AlertStreak.objects.open().count() == 1 and not AlertMessage.objects.exists()


def test_retention_still_deletes_runs_in_one_statement_and_an_alert_outlives_its_run(make_job, receiver, flip):
    job = alerting_job(make_job, n=1)
    flip(job, ok=False)
    failed = run(job, 0)
    assert Collector(using="default").can_fast_delete(JobRun.objects.all())  # no cascade from alerts to runs
    JobRun.objects.filter(pk=failed.pk).delete()
    deliver()
    [call] = receiver.calls
    assert (call["kind"], call["run"], call["status"]) == ("failing", None, None)
    assert len(mail.outbox) == 1
