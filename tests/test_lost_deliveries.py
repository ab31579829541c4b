"""A queued run whose delivery was lost is delivered again by its engine, and runs once.

Lost how: the worker holding a retry's delayed message is killed, Redis loses the message,
the scheduler process holding it in memory dies. Real processes for each engine; the
re-delivery policy itself is tested with a clock the test holds.
"""

import datetime as dt
import os
import signal

import pytest
from django.utils import timezone

from tasks_app.engines import get_engine
from tasks_app.engines.redelivery import Redelivery
from tasks_app.models import JobRun, SchedulerHeartbeat
from tasks_app.runner import run_requests
from tests.private_redis import private_redis, send  # noqa: F401  (fixture)
from tests.processes import processes, wait_for  # noqa: F401  (fixture)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]
FAST = {"TASKHUB_REDELIVER_AFTER_SECONDS": "2"}


def queued_retry(job, due_in: float) -> JobRun:
    """A run waiting for its second attempt, as the runner leaves a failed first one."""
    run = run_requests.queue_run(job)
    JobRun.objects.filter(pk=run.pk).update(
        attempt=2,
        next_attempt_at=timezone.now() + dt.timedelta(seconds=due_in),
        attempts=[{"attempt": 1, "status": "failed", "error": "boom"}],
    )
    run.refresh_from_db()
    return run


def ran_once(run, result) -> bool:
    run.refresh_from_db()
    return (run.status, run.result, run.duplicate_claims, JobRun.objects.filter(job=run.job).count()) == (
        "succeeded",
        result,
        0,
        1,
    )


# -- Celery -------------------------------------------------------------------------------------
def test_a_delayed_retry_held_by_a_killed_worker_is_sent_again_and_runs_once(make_job, processes):
    worker = processes.worker(concurrency=1)
    processes.beat(**FAST)
    assert wait_for(lambda: "ready" in processes.output(worker), timeout=60)
    run = queued_retry(make_job(engine="celery", kwargs={"x": 2, "y": 3}), due_in=4)
    due = run.next_attempt_at
    get_engine("celery").deliver(run)  # with its next_attempt_at: Celery holds it until then
    assert wait_for(lambda: "received" in processes.output(worker), timeout=30)
    os.killpg(worker.pid, signal.SIGKILL)  # its unacknowledged message waits out the visibility timeout (2 h)
    worker.wait()
    processes.worker(concurrency=1)

    assert wait_for(lambda: JobRun.objects.get(pk=run.pk).status == "succeeded", timeout=60)
    assert ran_once(run, 5) and run.attempt == 2 and run.started_at >= due


def test_a_queued_run_whose_message_redis_lost_is_sent_again_and_runs_once(make_job, processes, private_redis):
    run = run_requests.queue_run(make_job(engine="celery", kwargs={"x": 4, "y": 5}))
    send(run, private_redis.url)
    private_redis.flush()  # the message is gone before any worker took it
    processes.worker(concurrency=1, CELERY_BROKER_URL=private_redis.url)
    processes.beat(CELERY_BROKER_URL=private_redis.url, **FAST)
    assert wait_for(lambda: JobRun.objects.get(pk=run.pk).status == "succeeded", timeout=60)
    assert ran_once(run, 9)


# -- APScheduler --------------------------------------------------------------------------------
def aps_leader():
    row = SchedulerHeartbeat.objects.filter(scheduler="apscheduler").first()
    return int(row.leader.rsplit(":", 1)[1]) if row else None


def test_a_delayed_retry_held_by_a_killed_runapscheduler_runs_once_after_the_take_over(make_job, processes):
    leader = processes.apscheduler(**FAST)
    assert wait_for(lambda: aps_leader() == leader.pid, timeout=60), processes.output(leader)[-3000:]
    standby = processes.apscheduler(**FAST)
    run = queued_retry(make_job(engine="apscheduler", kwargs={"x": 6, "y": 7}), due_in=12)
    due = run.next_attempt_at
    get_engine("apscheduler").deliver(run)  # as the runner hands a retry over: a NOTIFY the leader hears
    wait_for(lambda: False, timeout=3)  # the leader holds it until it is due
    os.killpg(leader.pid, signal.SIGKILL)
    assert wait_for(lambda: aps_leader() == standby.pid, timeout=30), processes.output(standby)[-3000:]
    assert wait_for(lambda: JobRun.objects.get(pk=run.pk).status == "succeeded", timeout=60)
    assert ran_once(run, 13) and run.attempt == 2 and run.started_at >= due


# -- the policy, with a clock the test holds ----------------------------------------------------
def test_an_overdue_queued_run_is_handed_over_after_the_grace_then_ever_more_rarely(make_job, taskhub_settings):
    taskhub_settings(REDELIVER_AFTER_SECONDS=60)
    t0 = timezone.now()
    run = queued_retry(make_job(engine="celery"), due_in=0)
    JobRun.objects.filter(pk=run.pk).update(next_attempt_at=t0)
    other_engine = run_requests.queue_run(make_job(engine="apscheduler"))
    redelivery = Redelivery("celery")

    def handed(after_seconds):
        return [r.pk for r in redelivery.overdue(now=t0 + dt.timedelta(seconds=after_seconds))]

    assert handed(59) == []  # within its grace: its message may still be on the way
    assert handed(61) == [run.pk]
    assert handed(100) == []  # not again within twice the grace
    assert handed(182) == [run.pk]
    assert handed(300) == []
    assert handed(423) == [run.pk]  # then four times the grace
    assert other_engine.pk not in handed(10_000)

    JobRun.objects.filter(pk=run.pk).update(status="succeeded")
    assert handed(20_000) == [] and redelivery.handed == {}  # done: forgotten
    JobRun.objects.filter(pk=run.pk).update(status="queued", attempt=3)  # a later attempt is owed afresh
    assert handed(20_001) == [run.pk]


def test_a_hand_over_noted_elsewhere_waits_its_grace_and_forget_starts_over(make_job, taskhub_settings):
    taskhub_settings(REDELIVER_AFTER_SECONDS=60)
    t0 = timezone.now()
    run = queued_retry(make_job(engine="apscheduler"), due_in=0)
    JobRun.objects.filter(pk=run.pk).update(next_attempt_at=t0 - dt.timedelta(hours=1))
    run.refresh_from_db()
    redelivery = Redelivery("apscheduler")
    redelivery.handed_over(run, now=t0)
    assert redelivery.overdue(now=t0 + dt.timedelta(seconds=30)) == []
    assert [r.pk for r in redelivery.overdue(now=t0 + dt.timedelta(seconds=61))] == [run.pk]
    redelivery.forget()
    assert [r.pk for r in redelivery.overdue(now=t0 + dt.timedelta(seconds=62))] == [run.pk]


def test_a_run_requested_while_the_broker_is_down_stays_queued_and_is_sent_when_it_is_back(
    make_job, processes, private_redis
):
    from tests.helpers import python
    from tests.processes import process_env

    job = make_job(engine="celery", kwargs={"x": 1, "y": 10})
    private_redis.stop()
    code = (
        "from tasks_app.models import Job\nfrom tasks_app.engines import request_run\n"
        "from tasks_app.engines.base import EngineUnavailable\n"
        f"try:\n    request_run(Job.objects.get(pk={job.pk}))\n"
        "except EngineUnavailable as exc:\n    print('unavailable:', exc, '| run', exc.run.pk)\n"
    )
    result = python(code, env=process_env(CELERY_BROKER_URL=private_redis.url))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "unavailable: the Celery broker is unreachable" in result.stdout
    [run] = JobRun.objects.filter(job=job)
    assert run.status == "queued" and result.stdout.strip().endswith(f"| run {run.pk}")

    private_redis.start()
    processes.worker(concurrency=1, CELERY_BROKER_URL=private_redis.url)
    processes.beat(CELERY_BROKER_URL=private_redis.url, **FAST)
    assert wait_for(lambda: JobRun.objects.get(pk=run.pk).status == "succeeded", timeout=60)
    assert ran_once(run, 11)


def queued_slots(redis_url: str, queue: str = "default") -> list[str]:
    """The ``scheduled_for`` of each taskhub message waiting in ``queue``."""
    import base64
    import json

    import redis

    client = redis.Redis.from_url(redis_url)
    # kombu keeps one list per priority step: "default", "default\x06\x163", ...
    messages = [
        m
        for key in client.scan_iter(match=f"{queue}*")
        if client.type(key) == b"list"
        for m in client.lrange(key, 0, -1)
    ]
    kwargs = [json.loads(base64.b64decode(json.loads(m)["body"]))[1] for m in messages]
    return [slot["scheduled_for"] for k in kwargs for slot in k.get("slots", [k])]  # run_job or run_slots


def test_slots_whose_messages_redis_lost_before_a_worker_took_them_are_sent_again(make_job, processes, private_redis):
    beat = processes.beat(CELERY_BROKER_URL=private_redis.url, **FAST)
    job = make_job(
        engine="celery",
        schedule_type="interval",
        interval_seconds=1,
        coalesce=False,
        misfire_grace_seconds=300,
        kwargs={"x": 1, "y": 1},
    )
    assert wait_for(lambda: len(queued_slots(private_redis.url)) >= 3, timeout=60), processes.output(beat)[-3000:]
    private_redis.flush()  # no worker has taken them yet: these messages are gone
    flushed_at = timezone.now()
    processes.worker(concurrency=2, CELERY_BROKER_URL=private_redis.url)

    def slots_until_flush():
        return list(
            JobRun.objects.filter(job=job, scheduled_for__lte=flushed_at)
            .order_by("scheduled_for")
            .values_list("scheduled_for", "status")
        )

    # every slot due before the flush is run (or recorded as skipped: overlap, misfire): none is missing
    def no_gaps():
        rows = slots_until_flush()
        slots = [slot for slot, _ in rows]
        return (
            len(rows) >= 3
            and all(b - a == dt.timedelta(seconds=1) for a, b in zip(slots, slots[1:]))
            and slots[-1] > flushed_at - dt.timedelta(seconds=2)
            and all(status in ("succeeded", "skipped") for _, status in rows)
        )

    assert wait_for(no_gaps, timeout=60), (slots_until_flush(), processes.output(beat)[-3000:])
    assert "re-sending a slot whose message was lost" in processes.output(beat)


def test_a_sent_slot_is_lost_only_without_a_run_after_the_grace_and_with_its_queue_empty(make_job, taskhub_settings):
    from tasks_app.engines.celery.sent_slots import SentSlots

    taskhub_settings(REDELIVER_AFTER_SECONDS=60)
    job, t0 = make_job(engine="celery"), timezone.now().replace(microsecond=0)
    received, missing = t0, t0 + dt.timedelta(seconds=1)
    JobRun.objects.create(job=job, engine="celery", scheduled_for=received, status="succeeded")
    sent = SentSlots()
    sent.add(job.pk, received, "default", now=t0)
    sent.add(job.pk, missing, "default", now=t0)
    asked = []

    def queue_is_empty(empty):
        return lambda queue: asked.append(queue) or empty

    assert sent.lost(queue_is_empty(True), now=t0 + dt.timedelta(seconds=59)) == [] and asked == []
    assert sent.lost(queue_is_empty(False), now=t0 + dt.timedelta(seconds=61)) == []  # it may wait behind others
    assert list(sent.sent) == [(job.pk, missing)] and asked == ["default"]  # the received one is forgotten

    def broker_away(queue):
        raise ConnectionError("broker away")

    with pytest.raises(ConnectionError):
        sent.lost(broker_away, now=t0 + dt.timedelta(seconds=65))
    assert list(sent.sent) == [(job.pk, missing)]  # still noted: it is asked about again
    assert sent.lost(queue_is_empty(True), now=t0 + dt.timedelta(seconds=70)) == [(job.pk, missing)]
    assert sent.sent == {}


def received_slot(output: str) -> str | None:
    """The ``scheduled_for`` of the last message a worker's log says it received."""
    import re

    found = re.findall(r"received.*?'scheduled_for': '([^']+)'", output)
    return found[-1] if found else None


def test_a_slot_held_by_a_killed_worker_is_sent_by_the_next_beat_leader_when_the_first_died_within_grace(
    make_job, processes, private_redis
):
    """What the soak found: beat sends slot S; the worker holding S dies before its claim commits; a later
    slot runs on another worker; the beat leader dies before its re-send grace is over. The standby that
    takes over owes S (its predecessor's note of S died with it)."""
    import psycopg
    from django.db import connection

    env = {
        "TASKHUB_REDELIVER_AFTER_SECONDS": "15",  # longer than the steps below take before the leader dies
        "TASKHUB_STALE_AFTER_SECONDS": "8",  # a run left by the killed worker is taken over this soon
        "CELERY_BROKER_URL": private_redis.url,
    }
    job = make_job(engine="celery", schedule_type="interval", interval_seconds=2, kwargs={"x": 1, "y": 2})
    leader = processes.beat(**env)
    assert wait_for(lambda: "beat is leader" in processes.output(leader), timeout=60), processes.output(leader)[-3000:]
    standby = processes.beat(**env)
    workers = [processes.worker(concurrency=1, **env) for _ in range(2)]
    assert wait_for(lambda: JobRun.objects.filter(job=job, status="succeeded").exists(), timeout=60)

    def blocked_slot(worker):  # the slot it received and has not claimed: its claim waits for the row lock
        slot = received_slot(processes.output(worker))
        return slot if slot and not JobRun.objects.filter(job=job, scheduled_for=slot).exists() else None

    params = {k: v for k, v in connection.get_connection_params().items() if k not in ("cursor_factory", "context")}
    with psycopg.connect(**params) as locker:  # every claim of the job waits, as on a loaded database
        locker.execute("SELECT 1 FROM tasks_app_job WHERE id = %s FOR UPDATE", [job.pk])
        assert wait_for(lambda: all(blocked_slot(w) for w in workers), timeout=30), [
            processes.output(w)[-2000:] for w in workers
        ]
        slot, holder = min((blocked_slot(w), w) for w in workers)
        os.killpg(holder.pid, signal.SIGKILL)  # its message waits in Redis' unacked set for the visibility timeout
        holder.wait()
        locker.rollback()
    lost = dt.datetime.fromisoformat(slot)
    assert wait_for(lambda: JobRun.objects.filter(job=job, scheduled_for__gt=lost).exists(), timeout=30)
    os.killpg(leader.pid, signal.SIGKILL)
    leader.wait()
    # The killed worker's claim is one statement: it died waiting for the lock (no row), or its backend ran
    # it once the lock was released (Postgres notices a dead client only when it next talks to it) and
    # left a running row whose worker is gone. Either way the next leader owes the slot.
    left = JobRun.objects.filter(job=job, scheduled_for=lost).first()
    assert left is None or left.status == "running", left.status
    assert "re-sending a slot" not in processes.output(leader)  # it died before its own re-send

    assert wait_for(
        lambda: JobRun.objects.filter(job=job, scheduled_for=lost, status="succeeded").exists(), timeout=60
    ), processes.output(standby)[-3000:]
    if left is None:
        resent = [line for line in processes.output(standby).splitlines() if "re-sending a slot" in line]
        assert [slot in line for line in resent] == [True], (slot, resent)
    else:
        run = JobRun.objects.get(job=job, scheduled_for=lost)
        assert [a["status"] for a in run.attempts] == ["lost"] and run.attempt == 2
