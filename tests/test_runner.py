"""The runner: one effect per slot, every outcome recorded, on one long-lived loop."""

import datetime as dt
import threading
import time

import pytest
from django.db import connection
from django.utils import timezone

from tasks_app import runner
from tasks_app.engines import request_run
from tasks_app.models import JobRun
from tasks_app.runner import claims, run_requests
from tests.handlers_for_tests import release
from tests.helpers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

SLOT = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)


def test_success_is_recorded_with_result_duration_and_worker(make_job):
    job = make_job(kwargs={"x": 2, "y": 40})
    run = runner.run_slot(job.pk, SLOT, "apscheduler")
    run.refresh_from_db()
    assert (run.status, run.result, run.attempt, run.trigger) == ("succeeded", 42, 1, "schedule")
    assert run.duration_seconds >= 0 and run.started_at <= run.finished_at
    assert run.worker == claims.worker_id() and run.progress == 1.0


def test_a_failure_keeps_the_traceback(make_job):
    job = make_job(handler="fail", kwargs={"message": "disk full"}, max_retries=0)
    run = runner.run_slot(job.pk, SLOT, "apscheduler")
    run.refresh_from_db()
    assert run.status == "failed"
    assert "Traceback" in run.error and "RuntimeError: disk full" in run.error


def test_a_timeout_cancels_the_handler(make_job):
    job = make_job(handler="sleep", kwargs={"seconds": 30}, timeout_seconds=1, max_retries=0)
    started = time.monotonic()
    run = runner.run_slot(job.pk, SLOT, "apscheduler")
    run.refresh_from_db()
    assert run.status == "timed_out" and run.error == "timed out after 1 s"
    assert time.monotonic() - started < 10


def test_a_cancel_request_stops_a_running_handler(make_job, fresh_calls, taskhub_settings):
    taskhub_settings(HEARTBEAT_SECONDS=0.05)
    job = make_job(handler="test_wait", kwargs={"key": "c"})
    thread = threading.Thread(target=runner.run_slot, args=(job.pk, SLOT, "apscheduler"))
    thread.start()
    assert wait_for(lambda: JobRun.objects.filter(job=job, status="running").exists())
    assert run_requests.request_cancel(JobRun.objects.filter(job=job)) == 1
    thread.join(10)
    run = JobRun.objects.get(job=job)
    assert run.status == "cancelled" and run.reason == "cancelled on request"


def test_progress_is_written_while_running(make_job, fresh_calls, taskhub_settings):
    taskhub_settings(HEARTBEAT_SECONDS=0.05)
    job = make_job(handler="test_wait", kwargs={"key": "p"})
    thread = threading.Thread(target=runner.run_slot, args=(job.pk, SLOT, "apscheduler"))
    thread.start()
    try:
        assert wait_for(lambda: JobRun.objects.filter(job=job, status="running", progress=0.5).exists())
        assert JobRun.objects.get(job=job).progress_message == "half way"
    finally:
        release.set()
        thread.join(10)
    assert JobRun.objects.get(job=job).status == "succeeded"


def test_a_second_claim_of_a_finished_slot_is_counted_not_run(make_job, fresh_calls):
    job = make_job(handler="test_count", kwargs={"key": "d"})
    assert runner.run_slot(job.pk, SLOT, "apscheduler").status == "succeeded"
    assert runner.run_slot(job.pk, SLOT, "celery") is None
    run = JobRun.objects.get(job=job)
    assert fresh_calls["d"] == 1 and run.duration_seconds is not None and run.duplicate_claims == 1


def test_twenty_concurrent_claims_of_one_slot_run_it_once(make_job, fresh_calls):
    if connection.vendor != "postgresql":
        pytest.skip("needs Postgres row locks to race real transactions")
    job = make_job(handler="test_count", kwargs={"key": "race", "delay": 0.2})
    barrier = threading.Barrier(20)
    results = []

    def claim():
        barrier.wait()
        results.append(runner.run_slot(job.pk, SLOT, "celery"))
        connection.close()

    threads = [threading.Thread(target=claim) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert fresh_calls["race"] == 1
    assert sum(r is not None for r in results) == 1
    [run] = JobRun.objects.filter(job=job)
    assert run.status == "succeeded" and run.duplicate_claims == 19


def test_concurrent_claims_of_different_slots_respect_max_running(make_job, fresh_calls):
    if connection.vendor != "postgresql":
        pytest.skip("needs Postgres row locks to race real transactions")
    job = make_job(handler="test_count", kwargs={"key": "overlap", "delay": 0.5}, max_running=1)
    barrier = threading.Barrier(10)

    def claim(index):
        connection.ensure_connection()  # connect first, so the claims really start together
        barrier.wait()
        runner.run_slot(job.pk, SLOT + dt.timedelta(minutes=index), "celery")
        connection.close()

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    # Each claim waits for the job's lock and then must see the run its predecessor started.
    assert fresh_calls["overlap"] == 1
    statuses = sorted(JobRun.objects.filter(job=job).values_list("status", flat=True))
    assert statuses == ["skipped"] * 9 + ["succeeded"]


def test_overlap_limit_records_the_new_slot_as_skipped(make_job):
    job = make_job()
    now = timezone.now()
    JobRun.objects.create(
        job=job,
        engine="apscheduler",
        scheduled_for=SLOT,
        status="running",
        started_at=now,
        heartbeat_at=now,
        worker="elsewhere:1",
    )
    assert runner.run_slot(job.pk, SLOT + dt.timedelta(hours=1), "apscheduler") is None
    skipped = JobRun.objects.get(job=job, scheduled_for=SLOT + dt.timedelta(hours=1))
    assert skipped.status == "skipped" and skipped.reason.startswith("overlap: 1 run(s) still running")


def running_on_a_dead_worker(job, **fields) -> JobRun:
    """The job's run of ``SLOT``, running on a worker silent for ten minutes (its heartbeat long stale)."""
    long_ago = timezone.now() - dt.timedelta(minutes=10)
    return JobRun.objects.create(
        job=job,
        engine="celery",
        scheduled_for=SLOT,
        status="running",
        kwargs=job.kwargs,
        started_at=long_ago,
        heartbeat_at=long_ago,
        worker="dead-host:99",
        **fields,
    )


def test_a_run_whose_worker_died_is_taken_over_with_the_next_attempt(make_job, fresh_calls):
    job = make_job(handler="test_count", kwargs={"key": "t"})
    running_on_a_dead_worker(job)
    run = runner.run_slot(job.pk, SLOT, "celery")
    run.refresh_from_db()
    assert (run.status, run.attempt, fresh_calls["t"]) == ("succeeded", 2, 1)
    assert run.attempts[0]["status"] == "lost" and run.attempts[0]["worker"] == "dead-host:99"


@pytest.mark.parametrize("earlier_losses, taken_over", [(0, True), (1, True), (2, False)])
def test_a_run_whose_worker_was_lost_too_often_is_failed_not_taken_over_again(
    make_job, fresh_calls, earlier_losses, taken_over
):
    """The third loss ends it (TASKHUB_MAX_LOST_ATTEMPTS, 3): a handler that kills its process loops on no broker."""
    job = make_job(handler="test_count", kwargs={"key": "p"})
    lost = [
        {"attempt": n, "status": "lost", "error": "", "worker": "dead-host:99"} for n in range(1, earlier_losses + 1)
    ]
    running_on_a_dead_worker(job, attempt=earlier_losses + 1, attempts=lost)
    claimed = runner.run_slot(job.pk, SLOT, "celery")
    run = JobRun.objects.get(job=job)
    assert [a["status"] for a in run.attempts] == ["lost"] * (earlier_losses + 1)
    if taken_over:
        assert claimed is not None and (run.status, fresh_calls["p"]) == ("succeeded", 1)
    else:
        assert claimed is None and "p" not in fresh_calls
        assert (run.status, run.lane, run.finished_at is not None) == ("failed", None, True)
        assert run.error.startswith("its worker was lost 3 times while running it")


def test_a_live_running_slot_is_not_taken_over(make_job, fresh_calls):
    job = make_job(handler="test_count", kwargs={"key": "live"}, max_running=5)
    now = timezone.now()
    JobRun.objects.create(
        job=job,
        engine="celery",
        scheduled_for=SLOT,
        status="running",
        started_at=now,
        heartbeat_at=now,
        worker="alive:1",
    )
    assert runner.run_slot(job.pk, SLOT, "celery") is None
    assert "live" not in fresh_calls and JobRun.objects.get(job=job).duplicate_claims == 1


def test_retries_are_attempts_of_the_same_slot(make_job, fresh_calls):
    job = make_job(handler="test_flaky", kwargs={"key": "r", "fail_times": 2})
    run = runner.run_slot(job.pk, SLOT, "apscheduler")
    assert (run.status, run.attempt) == ("queued", 2) and run.next_attempt_at > timezone.now() - dt.timedelta(seconds=1)
    assert run.attempts[0]["status"] == "failed" and "failure number 1" in run.attempts[0]["error"]
    assert runner.run_slot(job.pk, SLOT, "apscheduler", attempt=1) is None  # a stale re-delivery
    run = runner.run_slot(job.pk, SLOT, "apscheduler", attempt=2)
    assert (run.status, run.attempt) == ("queued", 3)
    run = runner.run_slot(job.pk, SLOT, "apscheduler", attempt=3)
    run.refresh_from_db()
    assert (run.status, run.attempt, run.result, len(run.attempts)) == ("succeeded", 3, "ok", 2)
    assert JobRun.objects.filter(job=job).count() == 1


def test_retries_run_out_into_a_failure(make_job, fresh_calls):
    job = make_job(handler="test_flaky", kwargs={"key": "out", "fail_times": 10}, max_retries=1)
    run = runner.run_slot(job.pk, SLOT, "apscheduler")
    run = runner.run_slot(job.pk, SLOT, "apscheduler", attempt=run.attempt)
    run.refresh_from_db()
    assert (run.status, run.attempt, len(run.attempts)) == ("failed", 2, 1)
    assert "failure number 2" in run.error


def test_an_unknown_handler_at_dispatch_is_a_failed_run(make_job):
    job = make_job()
    type(job).objects.filter(pk=job.pk).update(handler="vanished")
    run = runner.run_slot(job.pk, SLOT, "celery")
    run.refresh_from_db()
    assert run.status == "failed" and run.error == "unknown handler 'vanished'"


def test_an_unknown_job_is_logged_and_nothing_runs(caplog):
    assert runner.run_slot(987654, SLOT, "celery") is None
    assert "no such job" in caplog.text


def test_a_result_that_is_not_json_is_stored_as_its_repr(make_job):
    job = make_job(handler="test_not_json", kwargs={})
    run = runner.run_slot(job.pk, SLOT, "apscheduler")
    run.refresh_from_db()
    assert run.status == "succeeded" and run.result == "{1, 2, 3}"


def test_handlers_run_on_one_long_lived_loop(make_job):
    job = make_job(handler="test_loop_id", kwargs={})
    first = runner.run_slot(job.pk, SLOT, "apscheduler")
    second = runner.run_slot(job.pk, SLOT + dt.timedelta(hours=1), "apscheduler")
    assert first.result == second.result


def test_the_handler_receives_its_run_context(make_job):
    job = make_job(handler="echo", kwargs={"payload": {"a": 1}})
    run = runner.run_slot(job.pk, SLOT, "celery")
    run.refresh_from_db()
    assert run.result == {"payload": {"a": 1}, "when": None, "job": job.name, "attempt": 1}


def test_run_now_is_its_own_slot_and_a_second_queued_one_is_refused(make_job):
    job = make_job()
    first = run_requests.queue_run(job)
    assert first.trigger == "run_now" and first.status == "queued" and first.scheduled_for.microsecond != 0
    with pytest.raises(run_requests.RunRefused, match=f"a run-now of '{job.name}' is already queued"):
        run_requests.queue_run(job)
    ran = runner.run_slot(job.pk, first.scheduled_for, job.engine, trigger="run_now")
    assert ran.pk == first.pk and ran.status == "succeeded"
    assert run_requests.queue_run(job).pk != first.pk


def test_run_now_through_the_memory_engine_is_recorded(make_job, memory_engines):
    job = make_job(kwargs={"x": 5, "y": 5})
    run = request_run(job)
    assert wait_for(lambda: JobRun.objects.get(pk=run.pk).status == "succeeded")
    assert JobRun.objects.get(pk=run.pk).result == 10
