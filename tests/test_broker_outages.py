"""Celery processes ride out a broker outage: a private Redis is stopped, restarted or flushed under them."""

import datetime as dt

import pytest
from django.utils import timezone

from tasks_app.models import JobRun
from tasks_app.runner import run_requests
from tests.private_redis import private_redis, send  # noqa: F401  (fixture)
from tests.processes import processes, wait_for  # noqa: F401  (fixture)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]


def status(run) -> str:
    return JobRun.objects.get(pk=run.pk).status


def test_a_worker_holding_an_unacknowledged_message_survives_redis_restarts(make_job, processes, private_redis):
    # Two pool processes: one runs the task (unacknowledged, acks_late) while the consumer
    # keeps polling Redis, which is where kombu 5.7.0's restore-on-close path broke.
    worker = processes.worker(concurrency=2, CELERY_BROKER_URL=private_redis.url)
    assert wait_for(lambda: "ready" in processes.output(worker), timeout=60), processes.output(worker)[-3000:]
    job = make_job(engine="celery", handler="test_slow", kwargs={"seconds": 4}, max_retries=0)
    for _restart in range(3):  # the crash depends on timing: each restart is another chance for it
        run = run_requests.queue_run(job)
        send(run, private_redis.url)
        assert wait_for(lambda: status(run) == "running", timeout=60), processes.output(worker)[-3000:]
        connected = processes.output(worker).count("Connected to")
        private_redis.restart(down=0.5)
        assert wait_for(
            lambda: processes.output(worker).count("Connected to") > connected or worker.poll() is not None, timeout=60
        )
        assert worker.poll() is None, processes.output(worker)[-4000:]
        assert wait_for(lambda: status(run) == "succeeded", timeout=60)
        run.refresh_from_db()
        assert (run.attempt, run.attempts, run.duplicate_claims) == (1, [], 0)
    output = processes.output(worker)
    assert "Restoring 1 unacknowledged message(s)" in output  # the path that crashed was taken
    assert "Unrecoverable error" not in output

    after = run_requests.queue_run(job)  # and it still consumes
    send(after, private_redis.url)
    assert wait_for(lambda: status(after) == "succeeded", timeout=60)


def test_beat_pauses_sending_while_the_broker_is_down_and_applies_the_misfire_policy_after(
    make_job, processes, private_redis, client
):
    processes.worker(concurrency=2, CELERY_BROKER_URL=private_redis.url)
    beat = processes.beat(CELERY_BROKER_URL=private_redis.url)
    job = make_job(
        engine="celery", schedule_type="interval", interval_seconds=1, coalesce=True, misfire_grace_seconds=300
    )
    assert wait_for(lambda: JobRun.objects.filter(job=job, status="succeeded").count() >= 2, timeout=60)

    private_redis.stop()
    down_at = timezone.now()
    assert wait_for(lambda: "broker unreachable" in processes.output(beat) or beat.poll() is not None, timeout=30)
    beat_health = wait_for(lambda: client.get("/healthz").json()["checks"]["beat"].get("error"), timeout=15)
    assert beat_health and "is paused: broker unreachable since" in beat_health
    # Slots come due while it cannot send them: four at least after the first second, for the policy to settle.
    wait_for(lambda: beat.poll() is not None or timezone.now() > down_at + dt.timedelta(seconds=5.5), timeout=15)
    assert beat.poll() is None, processes.output(beat)[-4000:]
    private_redis.start()
    up_at = timezone.now()

    assert wait_for(
        lambda: JobRun.objects.filter(job=job, status="succeeded", scheduled_for__gt=up_at).count() >= 2, timeout=60
    ), processes.output(beat)[-4000:]
    assert beat.poll() is None and "broker is back" in processes.output(beat)
    assert wait_for(lambda: client.get("/healthz").json()["checks"]["beat"]["ok"], timeout=15)
    # Every slot from the first to the last is on record once: run, or skipped by the misfire policy.
    slots = list(JobRun.objects.filter(job=job).order_by("scheduled_for").values_list("scheduled_for", flat=True))
    expected = [slots[0] + dt.timedelta(seconds=k) for k in range(int((slots[-1] - slots[0]).total_seconds()) + 1)]
    assert slots == expected
    outage = JobRun.objects.filter(
        job=job, scheduled_for__gt=down_at + dt.timedelta(seconds=1), scheduled_for__lt=up_at
    )
    assert outage.filter(status="skipped", reason__startswith="coalesced").count() >= 3
    assert outage.exclude(status="skipped").count() <= 1  # coalesce: only the latest missed slot ran
