"""The APScheduler engine's batched tick: jobs due at the same instant are fired together.

On a real APScheduler with django-apscheduler's tables: the tick's own statements do not grow
with the number of jobs due (their fires go to one pool thread, the store learns their next run
times in one write), every fire runs once, side by side, and the execution log is kept.
"""

import datetime as dt
import gc
import threading
import time
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from tasks_app.engines.apscheduler.engine import SlotTrigger, run_fire_batch, store_id
from tasks_app.engines.apscheduler.manager import SchedulerManager
from tasks_app.engines.apscheduler.store import TaskhubJobStore, log_executions
from tasks_app.models import JobRun
from tests.handlers_for_tests import release
from tests.helpers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
QUIET = dt.timedelta(seconds=15)


@pytest.fixture
def manager():
    manager = SchedulerManager(workers=2)
    yield manager
    manager.shutdown(wait=True)
    gc.collect()  # the scheduler's threads are gone; their database connections close as they are collected


def _make_due(manager, jobs) -> dt.datetime:
    """Move the stored jobs' next run time back to their latest slot: all due now, at the same instant.

    At least ``QUIET`` before their next slot: a test that straddled it met a second fire of every job.
    """
    following = jobs[0].next_fire_times(after=timezone.now(), count=1)[0]
    if following - timezone.now() < QUIET:
        time.sleep((following - timezone.now()).total_seconds() + 0.05)
    slot = jobs[0].slot_at(timezone.now())
    for job in jobs:
        manager.scheduler.modify_job(store_id(job.pk), next_run_time=slot)
    return slot


@pytest.mark.parametrize("count", [3, 30])
def test_a_tick_costs_the_same_statements_however_many_jobs_are_due(make_job, manager, fresh_calls, count):
    jobs = [
        make_job(handler="test_count", schedule_type="interval", interval_seconds=60, kwargs={"key": f"k{i}"})
        for i in range(count)
    ]
    manager.start(paused=True)
    for job in jobs:
        manager.apply(job)
    slot = _make_due(manager, jobs)
    manager.scheduler.resume()  # (its own wake-up also ticks; the test's tick below may find nothing left)
    with CaptureQueriesContext(connection) as queries:
        manager.scheduler._process_jobs()
    assert len(queries.captured_queries) <= 4, [q["sql"][:80] for q in queries.captured_queries]
    assert wait_for(lambda: JobRun.objects.filter(status="succeeded").count() == count, timeout=20)
    assert sorted(fresh_calls) == sorted(f"k{i}" for i in range(count)) and set(fresh_calls.values()) == {1}
    assert wait_for(lambda: DjangoJobExecution.objects.filter(status="Executed").count() == count, timeout=10)
    assert all(j.next_run_time > slot for j in DjangoJob.objects.filter(id__in=[store_id(j.pk) for j in jobs]))


def test_a_tick_starts_its_fires_side_by_side(make_job, manager, fresh_calls):
    jobs = [
        make_job(
            handler="test_count",
            schedule_type="interval",
            interval_seconds=60,
            kwargs={"key": f"s{i}", "delay": 0.5},
        )
        for i in range(20)
    ]
    manager.start(paused=True)
    for job in jobs:
        manager.apply(job)
    slot = _make_due(manager, jobs)
    manager.scheduler.resume()
    assert wait_for(lambda: JobRun.objects.filter(status="succeeded").count() == 20, timeout=20)
    runs = JobRun.objects.filter(job__in=jobs, scheduled_for=slot)
    assert len(runs) == 20
    spread = max(r.started_at for r in runs) - min(r.started_at for r in runs)
    # Two pool threads, 20 handlers of 0.5 s: one at a time per thread would spread them over 4.5 s.
    assert spread < dt.timedelta(seconds=0.5), spread


def test_the_store_learns_a_tick_s_next_run_times_after_its_handlers_started(make_job, manager, fresh_calls):
    """The store's bookkeeping waits for the tick's handlers to start instead of racing their claim."""
    jobs = [
        make_job(handler="test_wait", schedule_type="interval", interval_seconds=60, kwargs={"key": f"w{i}"})
        for i in range(3)
    ]
    manager.start(paused=True)
    for job in jobs:
        manager.apply(job)
    _make_due(manager, jobs)
    store = manager.scheduler._lookup_jobstore("default")
    started_then = []
    update_jobs = store.update_jobs

    def recording_update_jobs(aps_jobs):
        started_then.append(sorted(fresh_calls))  # the handlers that had started when the store was written
        update_jobs(aps_jobs)

    store.update_jobs = recording_update_jobs
    manager.scheduler.start_wait = 60  # on a busy machine the claim may take longer than the usual bound
    manager.scheduler.resume()
    assert wait_for(lambda: started_then, timeout=20)
    fresh_calls_then = started_then[0]
    release.set()
    assert fresh_calls_then == ["w0", "w1", "w2"]
    assert wait_for(lambda: JobRun.objects.filter(job__in=jobs, status="succeeded").count() == 3, timeout=20)


def test_a_once_job_fires_once_and_leaves_the_store(make_job, manager, fresh_calls):
    at = timezone.now() + dt.timedelta(seconds=1)
    job = make_job(handler="test_count", schedule_type="once", run_at=at, kwargs={"key": "once"})
    manager.start()
    manager.apply(job)
    assert wait_for(lambda: JobRun.objects.filter(job=job, status="succeeded").exists(), timeout=15)
    assert wait_for(lambda: not DjangoJob.objects.filter(id=store_id(job.pk)).exists(), timeout=5)
    assert fresh_calls["once"] == 1


def test_a_tick_after_shutdown_fires_nothing_and_does_not_crash(make_job, manager, fresh_calls):
    """``shutdown`` wakes the scheduler thread once more, its executors already gone: that tick is a no-op."""
    job = make_job(handler="test_count", schedule_type="interval", interval_seconds=60, kwargs={"key": "late"})
    manager.start(paused=True)
    manager.apply(job)
    _make_due(manager, [job])
    scheduler = manager.scheduler
    manager.shutdown(wait=True)
    assert scheduler._process_jobs() is None  # before, submitting to the closed pool killed the thread
    assert fresh_calls == {} and not JobRun.objects.filter(job=job).exists()


def _raw_params() -> dict:
    """Django's connection parameters, for psycopg connections of the test's own."""
    return {k: v for k, v in connection.get_connection_params().items() if k not in ("cursor_factory", "context")}


def _in_a_thread(call, failures: list) -> threading.Thread:
    """Run ``call()`` in a started thread with its own database connection; what it raises goes to ``failures``."""

    def target():
        try:
            call()
        except Exception as exc:
            failures.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=target)
    thread.start()
    return thread


def _waiting_on_a_lock(admin, statement_like):
    row = admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s", [statement_like]
    ).fetchone()
    return row[0] if row else None


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_a_once_job_is_removed_while_its_execution_log_is_being_written():
    """The store drops a fired once-only job while its batch logs the fire: the removal waits, then wins."""
    import psycopg

    DjangoJob.objects.create(id="taskhub-job-once", next_run_time=None, job_state=b"")
    store = TaskhubJobStore()
    params = _raw_params()
    failures = []
    with psycopg.connect(**params) as logger, psycopg.connect(**params, autocommit=True) as admin:
        # Django's foreign keys are checked at commit: ``log_executions``' commit landing in the middle
        # of the removal is this insert, checked at once and committed once the removal has begun.
        logger.execute("SET CONSTRAINTS ALL IMMEDIATE")
        logger.execute(
            "INSERT INTO django_apscheduler_djangojobexecution (job_id, status, run_time) VALUES (%s, %s, now())",
            ["taskhub-job-once", DjangoJobExecution.SUCCESS],
        )
        thread = _in_a_thread(lambda: store.remove_jobs(["taskhub-job-once"]), failures)
        assert wait_for(lambda: _waiting_on_a_lock(admin, "%FOR UPDATE%"), timeout=10), "the removal never waited"
        logger.commit()
        thread.join(30)
    assert failures == []
    assert not DjangoJob.objects.filter(id="taskhub-job-once").exists()
    assert not DjangoJobExecution.objects.filter(job_id="taskhub-job-once").exists()


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_an_execution_log_written_while_its_job_is_removed_is_dropped_quietly(caplog):
    import psycopg

    DjangoJob.objects.create(id="taskhub-job-gone", next_run_time=None, job_state=b"")
    params = _raw_params()
    failures = []
    with psycopg.connect(**params) as remover, psycopg.connect(**params, autocommit=True) as admin:
        remover.execute("DELETE FROM django_apscheduler_djangojob WHERE id = %s", ["taskhub-job-gone"])  # uncommitted
        entry = ("taskhub-job-gone", timezone.now(), DjangoJobExecution.SUCCESS, "")
        thread = _in_a_thread(lambda: log_executions([entry]), failures)
        # Its foreign key is checked at commit: that is where it waits for the removal.
        assert wait_for(lambda: _waiting_on_a_lock(admin, "COMMIT"), timeout=10), "the log never met the removal"
        remover.commit()
        thread.join(30)
    assert failures == []
    assert not DjangoJobExecution.objects.filter(job_id="taskhub-job-gone").exists()
    assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")], caplog.records


def test_a_tick_whose_claim_meets_an_outage_is_retried_not_lost(make_job, fresh_calls, caplog):
    """The store has moved past a tick's slots when its fires run: an outage must be waited out.

    The claim waits for the job's row lock (held here), and the server ends its session meanwhile.
    """
    import psycopg

    job = make_job(handler="test_count", schedule_type="interval", interval_seconds=60, kwargs={"key": "dropped"})
    stored = SimpleNamespace(id=store_id(job.pk), args=[job.pk], trigger=SlotTrigger.for_job(job))
    slot = job.slot_at(timezone.now())
    params = _raw_params()
    runs = []
    with psycopg.connect(**params) as locker, psycopg.connect(**params, autocommit=True) as admin:
        locker.execute("SELECT 1 FROM tasks_app_job WHERE id = %s FOR UPDATE", [job.pk])
        thread = threading.Thread(target=lambda: runs.extend(run_fire_batch([(stored, [slot])])))
        thread.start()

        pid = wait_for(lambda: _waiting_on_a_lock(admin, "%INSERT INTO%tasks_app_jobrun%"), timeout=10)
        assert pid, "the claim never waited for the lock"
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        locker.rollback()
        thread.join(30)
    assert [(run.status, run.scheduled_for) for run in runs] == [("succeeded", slot)] and fresh_calls["dropped"] == 1
    assert any("retrying the tick's fires" in r.getMessage() for r in caplog.records)


def test_a_fire_later_than_its_grace_is_claimed_and_recorded_skipped_not_run(make_job, fresh_calls):
    late = make_job(
        handler="test_count",
        schedule_type="interval",
        interval_seconds=60,
        misfire_grace_seconds=1,
        kwargs={"key": "l"},
    )
    fine = make_job(handler="test_count", schedule_type="interval", interval_seconds=60, kwargs={"key": "f"})
    slot = late.slot_at(timezone.now() - dt.timedelta(seconds=5))  # five seconds or more ago
    fires = [
        (SimpleNamespace(id=store_id(job.pk), args=[job.pk], trigger=SlotTrigger.for_job(job)), [slot])
        for job in (late, fine)
    ]
    skipped, ran = run_fire_batch(fires)
    assert (skipped.status, ran.status) == ("skipped", "succeeded") and skipped.reason.startswith("misfire:")
    assert "l" not in fresh_calls and fresh_calls["f"] == 1
    skipped.refresh_from_db()
    assert (skipped.status, skipped.lane, skipped.started_at, skipped.scheduled_for) == ("skipped", None, None, slot)
