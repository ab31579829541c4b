"""One engine contract: ``deliver(run)`` is the one way in for run-now, API runs and retries,
and every engine honours ``run.next_attempt_at``; ``execute`` hands a retry back to ``deliver``."""

import datetime as dt
import inspect
import json
import uuid

import pytest
from django.utils import timezone

from tasks_app.engines.apscheduler import APSchedulerEngine
from tasks_app.engines.base import BaseEngine
from tasks_app.engines.celery import CeleryEngine
from tasks_app.engines.memory import MemoryEngine
from tasks_app.models import JobRun, RunStatus
from tasks_app.runner.run_requests import queue_run
from tests.helpers import wait_for
from tests.services import REDIS_URL, require

ENGINES = [CeleryEngine, APSchedulerEngine, MemoryEngine]


@pytest.mark.parametrize("engine_class", ENGINES)
def test_every_engine_keeps_one_contract(engine_class):
    engine = engine_class("contract")
    assert isinstance(engine, BaseEngine)
    assert list(inspect.signature(engine.deliver).parameters) == ["run"]  # no eta=, no second path
    assert not hasattr(engine, "retry_later")
    assert all(
        isinstance(getattr(engine, flag), bool) for flag in ("supports_defer", "durable", "serves_other_processes")
    )
    assert isinstance(engine.check(), list)


def test_only_the_memory_engine_says_it_keeps_nothing():
    assert [cls.__name__ for cls in ENGINES if not cls.durable] == ["MemoryEngine"]
    assert all(cls.supports_defer for cls in ENGINES)


@pytest.mark.django_db(transaction=True)
def test_a_retry_goes_back_through_deliver_and_waits_for_its_time(make_job, memory_engines, fresh_calls):
    """The memory engine, for real: the first attempt fails, ``execute`` delivers the retry, which waits."""
    engine = memory_engines("apscheduler")
    job = make_job(handler="test_flaky", kwargs={"key": "contract", "fail_times": 1}, retry_backoff_seconds=0.5)
    run = queue_run(job)
    engine.deliver(run)
    done = wait_for(lambda: JobRun.objects.filter(pk=run.pk, status=RunStatus.SUCCEEDED).first(), timeout=20)
    assert done.attempt == 2 and len(done.attempts) == 1
    failed_at = dt.datetime.fromisoformat(done.attempts[0]["finished_at"])
    assert done.started_at - failed_at >= dt.timedelta(seconds=0.25)  # backoff 0.5 s with jitter, not at once


@pytest.mark.django_db
def test_celery_delivers_a_retry_with_its_time_as_the_eta(make_job):
    require(REDIS_URL, "Redis")
    import redis

    queue = f"contract-{uuid.uuid4().hex[:8]}"  # no worker listens here: the message stays to be read
    job = make_job(engine="celery", queue=queue)
    run = queue_run(job)
    run.next_attempt_at = timezone.now() + dt.timedelta(minutes=5)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        CeleryEngine("celery").deliver(run)
        messages = [
            json.loads(m)
            for key in client.scan_iter(match=f"{queue}*")
            if client.type(key) == b"list"
            for m in client.lrange(key, 0, -1)
        ]
        assert len(messages) == 1
        assert dt.datetime.fromisoformat(messages[0]["headers"]["eta"]) == run.next_attempt_at
        run.next_attempt_at = None
        CeleryEngine("celery").deliver(run)
        etas = [
            json.loads(m)["headers"]["eta"]
            for key in client.scan_iter(match=f"{queue}*")
            if client.type(key) == b"list"
            for m in client.lrange(key, 0, -1)
        ]
        assert sorted(etas, key=str) == sorted([None, messages[0]["headers"]["eta"]], key=str)
    finally:
        for key in client.scan_iter(match=f"{queue}*"):
            client.delete(key)
