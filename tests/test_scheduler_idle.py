"""An idle ``runapscheduler`` costs a few statements a minute whatever the number of jobs, and its
take-over writes the store in bulk — counted in statements (``CaptureQueriesContext``), not timed.

The service runs on the test database with a real leader lock, a real LISTEN connection and a
real APScheduler; only time is the test's: the loop's clock (``time.monotonic``) moves by the
time each wait asked for, so a simulated minute passes in a moment. The test's writes are never
committed, so no NOTIFY reaches the listener: a queued run here is one whose NOTIFY was lost.
"""

import datetime as dt
import gc
import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_apscheduler.models import DjangoJob

from tasks_app import conf
from tasks_app.engines.apscheduler import service
from tasks_app.engines.apscheduler.engine import SlotTrigger, store_id
from tasks_app.engines.apscheduler.manager import SchedulerManager
from tasks_app.models import Job, JobRun, heartbeats
from tasks_app.runner.run_requests import queue_run

pytestmark = pytest.mark.django_db


class RecordingManager(SchedulerManager):
    """A real manager (store, scheduler, quarantine) whose queued runs are noted instead of run."""

    def __init__(self):
        super().__init__(workers=1)
        self.queued: list[int] = []
        self.queued_at: dict[int, object] = {}

    def run_queued(self, run_id, at=None):
        self.queued.append(run_id)
        self.queued_at[run_id] = at


@pytest.fixture
def manager():
    manager = RecordingManager()
    yield manager
    manager.shutdown(wait=True)
    gc.collect()


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def leading(manager, monkeypatch):
    """A service that has taken the lead, with the loop's clock in the test's hands; ``step(seconds)``."""
    if connection.vendor != "postgresql":
        pytest.skip("the idle loop LISTENs: Postgres only")
    clock = Clock()
    monkeypatch.setattr(service.time, "monotonic", clock)
    svc = service.SchedulerService(manager, threading.Event())
    assert svc.lock.try_acquire()
    waits = []

    def step(seconds: float) -> None:
        """Run the loop until ``seconds`` of its time have passed; each wait takes the time it asked for."""
        end = clock.now + seconds
        while clock.now < end:
            svc._apply_changes()
            svc._housekeeping(clock.now)

    def wait(timeout, known, real_wait=None):
        waits.append(timeout)
        clock.now += max(timeout, 0.001)
        return real_wait(0, known)

    svc._take_over()
    now = clock.now
    svc.next_beat, svc.next_lock_check, svc.next_pick_up = now, now + svc.lock_check_every, now + svc.pick_up_every
    monkeypatch.setattr(svc.watcher, "wait", lambda timeout, known, w=svc.watcher.wait: wait(timeout, known, w))
    svc.step, svc.waits = step, waits
    yield svc
    svc.watcher.close()
    svc.lock.release()


def test_an_idle_leader_costs_a_few_statements_a_minute_whatever_the_number_of_jobs(make_job, leading):
    counts = {}
    for total in (5, 50):
        while Job.objects.filter(engine="apscheduler").count() < total:
            leading.manager.apply(make_job())
        leading.step(10)  # the count changed: one heartbeat at once, then quiet
        with CaptureQueriesContext(connection) as queries:
            del leading.waits[:]
            leading.step(60)
        counts[total] = len(queries)
        assert len(leading.waits) <= 30, leading.waits  # it sleeps for seconds at a time, not in short polls
    assert counts[5] == counts[50], counts  # flat in the number of jobs
    # 6 heartbeats and 4 looks for queued and lost runs (one statement each while there are none) a minute.
    assert counts[50] <= 10, counts
    print("statements per idle minute", counts)


def test_the_heartbeat_is_written_and_says_how_many_jobs_the_store_holds(make_job, leading):
    jobs = [make_job() for _ in range(3)]
    for job in jobs:
        leading.manager.apply(job)
    leading.step(1)
    row = heartbeats.SchedulerHeartbeat.objects.get(scheduler="apscheduler")
    assert row.jobs == 3
    written = row.beat_at
    leading.step(leading.heartbeat_every + 1)
    row.refresh_from_db()
    assert row.beat_at > written  # nothing changed, and it is still written within the health check's staleness
    assert leading.heartbeat_every * 2 <= conf.get("SCHEDULER_STALE_SECONDS")  # /healthz keeps it fresh with room
    assert heartbeats.statuses()["apscheduler"]["ok"]

    leading.manager.forget(jobs[0].pk)
    leading.step(0.5)  # a change in the count is written at once, not at the next beat
    row.refresh_from_db()
    assert row.jobs == 2


def test_a_queued_run_whose_notify_was_lost_is_picked_up(make_job, leading):
    job = make_job()
    run = queue_run(job)  # never committed: its NOTIFY is never delivered
    leading.step(1)
    assert run.pk not in leading.manager.queued
    leading.step(leading.pick_up_every + 1)
    assert leading.manager.queued.count(run.pk) == 1


def test_a_delayed_run_heard_by_notify_is_handed_over_at_its_time_and_once(make_job, leading):
    import psycopg

    from tasks_app.engines.listener import RUNS_CHANNEL

    job = make_job()
    run = queue_run(job)
    due = timezone.now() + dt.timedelta(minutes=5)
    JobRun.objects.filter(pk=run.pk).update(attempt=2, next_attempt_at=due)  # a retry, delivered by another process
    params = {k: v for k, v in connection.get_connection_params().items() if k not in ("cursor_factory", "context")}
    with psycopg.connect(**params, autocommit=True) as other:
        other.execute("SELECT pg_notify(%s, %s)", [RUNS_CHANNEL, str(run.pk)])
    for _ in range(50):
        leading.step(0.1)
        if run.pk in leading.manager.queued:
            break
    assert leading.manager.queued_at[run.pk] == due
    leading.step(leading.pick_up_every * 2)
    assert leading.manager.queued.count(run.pk) == 1  # the pick-up leaves a handed-over run alone


def test_reconcile_writes_an_empty_store_in_a_few_statements(make_job, manager):
    jobs = [make_job(schedule_type="cron", cron_expression=f"{i} 3 * * *") for i in range(30)]
    jobs += [make_job(schedule_type="once") for _ in range(5)]
    manager.start(paused=True)
    with CaptureQueriesContext(connection) as queries:
        assert manager.reconcile() == 35
    assert DjangoJob.objects.filter(id__startswith="taskhub-job-").count() == 35
    assert len(queries) <= 6, [q["sql"][:80] for q in queries]  # jobs, store, one insert (a batch of 1,000)
    assert manager.job_count() == 35

    now = dt.datetime.now(dt.UTC)
    for job in jobs:  # each row as add_job would have written it: APScheduler reads it back
        stored = manager.scheduler.get_job(store_id(job.pk))
        assert stored.trigger == SlotTrigger.for_job(job) and stored.name == job.name
        assert stored.args == (job.pk,)
        assert stored.next_run_time == job.next_fire_times(1, after=now - dt.timedelta(minutes=1))[0]


def test_reconcile_touches_only_the_rows_that_differ(make_job, manager):
    jobs = [make_job(schedule_type="cron", cron_expression=f"{i} 3 * * *") for i in range(10)]
    manager.start(paused=True)
    manager.reconcile()
    first = {row.id: row.next_run_time for row in DjangoJob.objects.all()}

    with CaptureQueriesContext(connection) as queries:
        manager.reconcile()
    assert not [q for q in queries if q["sql"].startswith(("INSERT", "UPDATE", "DELETE"))]

    Job.objects.filter(pk=jobs[0].pk).update(cron_expression="30 4 * * *")
    Job.objects.filter(pk=jobs[1].pk).delete()
    with CaptureQueriesContext(connection) as queries:
        assert manager.reconcile() == 9
    writes = [q["sql"].split()[0] for q in queries if q["sql"].startswith(("INSERT", "UPDATE", "DELETE"))]
    assert sorted(set(writes)) == ["DELETE", "UPDATE"] and writes.count("UPDATE") == 1  # (executions, then rows)
    assert manager.scheduler.get_job(store_id(jobs[0].pk)).trigger.cron_expression == "30 4 * * *"
    assert DjangoJob.objects.get(id=store_id(jobs[2].pk)).next_run_time == first[store_id(jobs[2].pk)]
    assert manager.stored_job_ids() == {job.pk for job in jobs} - {jobs[1].pk}


def test_the_job_count_follows_the_store_without_reading_it(make_job, manager):
    manager.start(paused=True)
    jobs = [make_job() for _ in range(3)]
    for job in jobs:
        manager.apply(job)
    manager.scheduler.remove_job(store_id(jobs[0].pk))  # as APScheduler drops a one-off past its slot
    manager.forget(jobs[1].pk)
    with CaptureQueriesContext(connection) as queries:
        assert manager.job_count() == 1
    assert len(queries) == 0
    assert manager.stored_job_ids() == {jobs[2].pk}


# -- beat -----------------------------------------------------------------------------------------
@pytest.fixture
def idle_beat(monkeypatch):
    """Beat (test_beat_loop's, with its clock and outbox) LISTENing for real; ``step(seconds)`` runs its loop."""
    if connection.vendor != "postgresql":
        pytest.skip("the idle loop LISTENs: Postgres only")
    from tasks_app.engines.celery import beat as beat_module
    from tests.test_beat_loop import SteppedBeat

    clock = Clock()
    monkeypatch.setattr(beat_module.time, "monotonic", clock)
    scheduler = SteppedBeat(timezone.now())
    scheduler.tick_at(scheduler.clock)  # takes the lead, loads the jobs, LISTENs
    waits, real_wait = [], scheduler.watcher.wait

    def wait(timeout, known):
        waits.append(timeout)
        clock.now += max(timeout, 0.001)
        scheduler.clock += dt.timedelta(seconds=max(timeout, 0.001))
        scheduler.until = scheduler.clock
        return real_wait(0, known)

    monkeypatch.setattr(scheduler.watcher, "wait", wait)

    def step(seconds: float) -> None:
        end = clock.now + seconds
        while clock.now < end:
            scheduler.tick()

    scheduler.step, scheduler.waits = step, waits
    yield scheduler
    scheduler.close()


def test_an_idle_beat_costs_a_few_statements_a_minute_whatever_the_number_of_jobs(make_job, idle_beat):
    counts = {}
    for total in (5, 50):
        jobs = [make_job(engine="celery") for _ in range(total - len(idle_beat.jobs))]
        idle_beat._reload([job.pk for job in jobs])  # the test's writes send no NOTIFY that beat could hear
        idle_beat.step(10)
        with CaptureQueriesContext(connection) as queries:
            del idle_beat.waits[:]
            idle_beat.step(60)
        counts[total] = len(queries)
        assert len(idle_beat.jobs) == total
        assert len(idle_beat.waits) <= 30, idle_beat.waits
    assert counts[5] == counts[50], counts
    # 6 heartbeats and 6 reaps (one statement each while no run is queued or lost) a minute.
    assert counts[50] <= 12, counts
    print("beat statements per idle minute", counts)
    assert heartbeats.SchedulerHeartbeat.objects.get(scheduler="beat").jobs == 50


# -- the listener ---------------------------------------------------------------------------------
def test_the_listener_sleeps_on_its_socket_hears_a_notify_and_says_when_it_reconnected():
    if connection.vendor != "postgresql":
        pytest.skip("LISTEN: Postgres only")
    import json

    import psycopg

    from tasks_app.engines.listener import RUNS_CHANNEL, ChangeListener
    from tasks_app.models.changes import CHANNEL

    listener = ChangeListener.open()
    params = {k: v for k, v in connection.get_connection_params().items() if k not in ("cursor_factory", "context")}
    try:
        assert listener.wait(0.05) == listener.wait(0)  # nothing arrived: empty notices, no reconnect
        with psycopg.connect(**params, autocommit=True) as other:
            other.execute("SELECT pg_notify(%s, %s)", [CHANNEL, json.dumps({"jobs": [3, 4]})])
            other.execute("SELECT pg_notify(%s, %s)", [RUNS_CHANNEL, "17"])
        notices = listener.wait(5)
        if not notices.runs:  # the two may come in two reads
            notices.runs = listener.wait(5).runs
        assert notices.jobs == {3, 4} and notices.runs == {17} and not notices.reconnected
        listener.conn.close()  # a lost connection: the caller must look at everything
        lost = listener.wait(0.05)
        assert lost.jobs is None and lost.reconnected
        assert listener.wait(0.05).reconnected is False  # and it listens again
    finally:
        listener.close()


def test_the_idle_check_sees_queued_and_silent_runs_of_its_own_engine_only(make_job):
    from tasks_app.engines.redelivery import Redelivery

    now = timezone.now()
    stale = now - dt.timedelta(seconds=conf.get("STALE_AFTER_SECONDS"))
    aps, celery = Redelivery("apscheduler"), Redelivery("celery")
    job = make_job()
    run = JobRun.objects.create(job=job, engine="apscheduler", scheduled_for=now, status="running", heartbeat_at=now)
    assert not aps.anything_waiting(stale)  # running and beating
    JobRun.objects.filter(pk=run.pk).update(heartbeat_at=stale - dt.timedelta(seconds=1))
    assert aps.anything_waiting(stale) and not celery.anything_waiting(stale)  # silent: a take-over is owed
    JobRun.objects.filter(pk=run.pk).update(status="succeeded")
    assert not aps.anything_waiting(stale)
    queue_run(job)
    assert aps.anything_waiting(stale) and not celery.anything_waiting(stale)
