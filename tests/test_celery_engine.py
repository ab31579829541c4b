"""The Celery engine with real processes: a prefork worker and beat on Redis, Postgres history.

The guarantees (scheduled runs, retries, a killed pool process, two beats, a pickled message) run on
both brokers, Redis and RabbitMQ (``broker_url``, tests/brokers.py); the rest on Redis.
"""

import datetime as dt
import os
import signal

import pytest
from django.utils import timezone
from kombu import Connection, Producer

from taskhub.celery import app
from tasks_app.engines import request_run
from tasks_app.models import Job, JobRun, SchedulerHeartbeat
from tests.brokers import broker_url  # noqa: F401  (fixture)
from tests.processes import processes, wait_for  # noqa: F401  (fixture)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]


def celery_job(make_job, **fields):
    return make_job(engine="celery", **fields)


def runs(job, **filters):
    return list(JobRun.objects.filter(job=job, **filters).order_by("scheduled_for"))


def test_scheduled_runs_are_recorded_for_interval_and_one_off_jobs(make_job, processes, broker_url):
    # Cron fires through the same loop (tests/test_beat_loop.py steps it); waiting for a minute proves no more.
    processes.worker()
    processes.beat()
    every_second = celery_job(make_job, schedule_type="interval", interval_seconds=1, kwargs={"x": 1, "y": 1})
    once = celery_job(
        make_job, schedule_type="once", run_at=timezone.now() + dt.timedelta(seconds=3), kwargs={"x": 3, "y": 3}
    )
    assert wait_for(lambda: len(runs(every_second, status="succeeded")) >= 3, timeout=30)
    assert wait_for(lambda: runs(once, status="succeeded"), timeout=30)

    ticks = [r.scheduled_for for r in runs(every_second, status="succeeded")]
    assert all(t.microsecond == 0 for t in ticks) and len(set(ticks)) == len(ticks)
    [ran_once] = runs(once)
    assert (ran_once.scheduled_for, ran_once.result, ran_once.engine) == (once.run_at, 6, "celery")
    assert all(r.worker and r.duration_seconds is not None for r in runs(every_second, status="succeeded"))


def test_run_now_goes_through_a_worker_and_retries_are_attempts(make_job, processes, broker_url):
    processes.worker()
    now_job = celery_job(make_job, kwargs={"x": 20, "y": 22})
    run = request_run(now_job)
    assert wait_for(lambda: JobRun.objects.get(pk=run.pk).status == "succeeded")
    assert JobRun.objects.get(pk=run.pk).result == 42

    flaky = celery_job(
        make_job, handler="test_flaky", kwargs={"key": "celery-flaky", "fail_times": 2}, retry_backoff_seconds=0.2
    )
    run = request_run(flaky)
    assert wait_for(lambda: JobRun.objects.get(pk=run.pk).status in ("succeeded", "failed"), timeout=30)
    run.refresh_from_db()
    assert (run.status, run.attempt) == ("succeeded", 3)
    assert [a["status"] for a in run.attempts] == ["failed", "failed"]
    assert "failure number 2" in run.attempts[1]["error"]


def test_a_timeout_is_recorded(make_job, processes):
    processes.worker()
    job = celery_job(make_job, handler="sleep", kwargs={"seconds": 30}, timeout_seconds=1, max_retries=0)
    run = request_run(job)
    assert wait_for(lambda: JobRun.objects.get(pk=run.pk).status == "timed_out", timeout=30)


def test_edits_pauses_and_deletes_reach_a_running_beat(make_job, processes):
    processes.worker()
    processes.beat()
    job = celery_job(make_job, schedule_type="interval", interval_seconds=1)
    witness = celery_job(make_job, schedule_type="interval", interval_seconds=1)  # shares every slot with job
    assert wait_for(lambda: len(runs(job)) >= 2)
    Job.objects.filter(pk=job.pk).pause()
    paused_at = timezone.now()
    # Beat went on firing: the witness ran a slot a second after any slot of job's that could still have run.
    assert wait_for(lambda: runs(witness, scheduled_for__gt=paused_at + dt.timedelta(seconds=2)))
    assert not [r for r in runs(job) if r.scheduled_for > paused_at + dt.timedelta(seconds=1)]

    Job.objects.filter(pk=job.pk).enable()
    resumed_at = timezone.now()
    assert wait_for(lambda: [r for r in runs(job) if r.scheduled_for > resumed_at])

    job.refresh_from_db()
    job.kwargs = {"x": 100, "y": 1}
    job.save()
    edited_at = timezone.now()
    assert wait_for(
        lambda: [r for r in runs(job, status="succeeded") if r.scheduled_for > edited_at and r.result == 101]
    )

    job_id = job.pk
    job.delete()
    from django_celery_beat.models import PeriodicTask

    assert not PeriodicTask.objects.filter(name__startswith=f"taskhub:{job_id}:").exists()


def test_beat_writes_a_heartbeat_that_health_reports(make_job, processes, client):
    beat = processes.beat()
    assert wait_for(lambda: SchedulerHeartbeat.objects.filter(scheduler="beat").first())
    leader = SchedulerHeartbeat.objects.get(scheduler="beat").leader
    assert leader.endswith(f":{beat.pid}")
    check = client.get("/healthz").json()["checks"]["beat"]
    assert check["ok"] is True and check["leader"] == leader


def test_a_pool_process_killed_mid_run_completes_exactly_once(make_job, processes, broker_url):
    processes.worker(concurrency=1)
    job = celery_job(make_job, handler="test_slow", kwargs={"seconds": 3}, max_retries=0)
    run = request_run(job)
    assert wait_for(lambda: JobRun.objects.get(pk=run.pk).status == "running", timeout=30)
    pid = int(JobRun.objects.get(pk=run.pk).worker.rsplit(":", 1)[1])
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: JobRun.objects.get(pk=run.pk).status == "succeeded", timeout=60)
    run.refresh_from_db()
    assert run.attempt == 2 and [a["status"] for a in run.attempts] == ["lost"]
    assert run.attempts[0]["worker"].endswith(f":{pid}") and not run.worker.endswith(f":{pid}")
    assert JobRun.objects.filter(job=job).count() == 1


def test_a_ticks_slots_run_side_by_side_from_one_message_and_survive_a_killed_pool_process(make_job, processes):
    """Beat packs a tick's slots into one ``taskhub.run_slots`` message; one pool process claims them together
    and runs them side by side. Killed mid-run, the message comes back and each run completes exactly once."""
    processes.worker(concurrency=1)
    processes.beat()
    at = (timezone.now() + dt.timedelta(seconds=4)).replace(microsecond=0)
    jobs = [
        celery_job(make_job, schedule_type="once", run_at=at, handler="test_slow", kwargs={"seconds": 3}, max_retries=0)
        for _ in range(4)
    ]
    assert wait_for(lambda: JobRun.objects.filter(job__in=jobs, status="running").count() == 4, timeout=30)
    started = JobRun.objects.filter(job__in=jobs)
    assert len({r.celery_task_id for r in started}) == 1 and len({r.worker for r in started}) == 1
    pid = int(started[0].worker.rsplit(":", 1)[1])
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: JobRun.objects.filter(job__in=jobs, status="succeeded").count() == 4, timeout=90)
    for run in JobRun.objects.filter(job__in=jobs):
        assert run.attempt == 2 and [a["status"] for a in run.attempts] == ["lost"], run.attempts
        assert run.scheduled_for == at and not run.worker.endswith(f":{pid}")
    assert JobRun.objects.filter(job__in=jobs).count() == 4


def test_two_beats_give_one_effect_per_slot_and_the_standby_takes_over(make_job, processes, broker_url):
    processes.worker(concurrency=2)
    leader = processes.beat()
    assert wait_for(lambda: SchedulerHeartbeat.objects.filter(scheduler="beat").first())
    standby = processes.beat()
    job = celery_job(
        make_job,
        handler="test_count",
        kwargs={"key": "two-beats"},
        schedule_type="interval",
        interval_seconds=1,
        coalesce=False,
    )
    assert wait_for(lambda: len(runs(job, status="succeeded")) >= 5, timeout=30)  # the leader sends, the standby waits
    os.killpg(leader.pid, signal.SIGKILL)
    killed_at = timezone.now()
    took_over = wait_for(
        lambda: SchedulerHeartbeat.objects.filter(scheduler="beat", leader__endswith=f":{standby.pid}").first(),
        timeout=15,
    )
    assert took_over, processes.output(standby)[-2000:]
    assert (took_over.beat_at - killed_at).total_seconds() < 15
    assert wait_for(lambda: len(runs(job, status="succeeded", scheduled_for__gt=took_over.beat_at)) >= 5, timeout=30)

    all_runs = runs(job)
    slots = [r.scheduled_for for r in all_runs]
    assert len(slots) == len(set(slots))  # one row per slot, by the unique constraint
    assert len([r for r in all_runs if r.status == "succeeded"]) >= 10
    # every slot from the first to the last is accounted for: run, or recorded as skipped
    expected = [slots[0] + dt.timedelta(seconds=k) for k in range(int((slots[-1] - slots[0]).total_seconds()) + 1)]
    assert slots == expected
    assert not JobRun.objects.filter(job=job, duplicate_claims__gt=0).exclude(status="succeeded").exists()


def test_a_pickled_message_is_refused_and_nothing_runs(make_job, processes, broker_url):
    worker = processes.worker()
    job = celery_job(make_job)
    assert wait_for(lambda: "ready" in processes.output(worker), timeout=30)
    queue = app.amqp.queues["default"]  # as the broker's settings declare it (a quorum queue on RabbitMQ)
    with Connection(broker_url) as conn:
        Producer(conn).publish(
            {"job_id": job.pk, "scheduled_for": timezone.now().isoformat()},
            routing_key=queue.routing_key,
            exchange=queue.exchange,
            declare=[queue],
            serializer="pickle",
            headers={"task": "taskhub.run_job", "id": "pickled-1", "lang": "py", "argsrepr": "", "kwargsrepr": ""},
        )
    assert wait_for(
        lambda: "ContentDisallowed" in processes.output(worker) or "disallowed" in processes.output(worker).lower(),
        timeout=15,
    )
    assert not JobRun.objects.filter(job=job).exists()
    assert worker.poll() is None  # the worker refused it and carried on


def test_run_job_via_engine_waits_for_the_worker(make_job, processes, capsys):
    from django.core.management import call_command

    processes.worker()
    job = celery_job(make_job, kwargs={"x": 7, "y": 8})
    call_command("run_job", job.name, "--via-engine", "--wait", "60")
    assert capsys.readouterr().out.strip() == "15"
    [run] = runs(job)
    assert run.worker and not run.worker.endswith(f":{os.getpid()}")  # a worker process ran it, not this one


def test_an_unreachable_broker_at_worker_start_is_one_line_per_retry_with_backoff(processes):
    worker = processes.worker(CELERY_BROKER_URL="redis://127.0.0.1:1/0")
    assert wait_for(lambda: processes.output(worker).count("Trying again") >= 2, timeout=20)
    output = processes.output(worker)
    assert "Traceback" not in output and worker.poll() is None
    assert "Trying again in 2.00 seconds" in output and "Trying again in 4.00 seconds" in output


def test_a_worker_carries_on_after_its_database_sessions_are_dropped(make_job, processes):
    from django.db import connection

    processes.worker(concurrency=1)
    job = celery_job(make_job, kwargs={"x": 1, "y": 1})
    for _ in range(2):  # the pool process now holds a database connection it reuses
        run = request_run(job)
        assert wait_for(lambda: JobRun.objects.get(pk=run.pk).status == "succeeded")
    with connection.cursor() as cursor:  # what a Postgres restart does to every client session
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    run = request_run(job)
    assert wait_for(lambda: JobRun.objects.get(pk=run.pk).status == "succeeded")
