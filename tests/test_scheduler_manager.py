"""The SchedulerManager's generic API, on a real APScheduler with django-apscheduler's store:
``add_cron``/``add_interval``/``add_date`` with a deferred start, ``pause``/``resume``/``modify``/``remove``."""

import datetime as dt
import gc
import threading

import pytest
from django_apscheduler.models import DjangoJob

from tasks_app.engines.apscheduler import SlotTrigger
from tasks_app.engines.apscheduler.manager import SchedulerManager
from tests.helpers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

calls: dict[str, list] = {}
_lock = threading.Lock()


def record(key: str) -> None:
    """The scheduled function, referenced as ``tests.test_scheduler_manager:record``."""
    with _lock:
        calls.setdefault(key, []).append(dt.datetime.now(dt.UTC))


FUNC = "tests.test_scheduler_manager:record"


@pytest.fixture
def manager():
    calls.clear()
    manager = SchedulerManager(workers=2, defaults={"jitter": 0})
    yield manager
    manager.shutdown(wait=True)
    gc.collect()  # the scheduler's threads are gone; their database connections close as they are collected


def test_registrations_before_start_are_applied_at_start(manager):
    assert manager.add_interval(FUNC, 1, id="every-second", args=["deferred"]) is None  # not running yet
    assert manager.add_cron(FUNC, "0 7 * * MON-FRI", id="weekdays", timezone="Europe/Amsterdam", args=["cron"]) is None
    assert not DjangoJob.objects.exists()
    manager.start()
    assert set(DjangoJob.objects.values_list("id", flat=True)) == {"every-second", "weekdays"}
    assert wait_for(lambda: len(calls.get("deferred", [])) >= 2, timeout=10)
    weekdays = manager.scheduler.get_job("weekdays")
    assert weekdays.trigger == SlotTrigger("cron", cron_expression="0 7 * * MON-FRI", timezone="Europe/Amsterdam")
    assert weekdays.next_run_time.astimezone(dt.UTC).weekday() < 5


def test_pause_resume_modify_and_remove_act_on_one_schedule(manager):
    manager.start()
    manager.add_interval(FUNC, 1, id="ticker", args=["ticker"])
    manager.add_interval(FUNC, 1, id="other", args=["other"])
    assert wait_for(lambda: len(calls.get("ticker", [])) >= 1, timeout=10)

    manager.pause("ticker")
    assert manager.scheduler.get_job("ticker").next_run_time is None
    paused_at = len(calls["ticker"])
    assert wait_for(lambda: len(calls.get("other", [])) >= 3, timeout=10)  # the other one goes on meanwhile
    assert len(calls["ticker"]) <= paused_at + 1  # at most the fire that was already under way

    manager.resume("ticker")
    assert wait_for(lambda: len(calls["ticker"]) >= paused_at + 2, timeout=10)

    manager.modify("ticker", args=["renamed"])
    assert wait_for(lambda: len(calls.get("renamed", [])) >= 1, timeout=10)

    manager.remove("ticker")
    manager.remove("ticker")  # removing what is gone is no error
    assert manager.scheduler.get_job("ticker") is None
    assert not DjangoJob.objects.filter(id="ticker").exists()


def test_add_date_fires_once(manager):
    manager.start()
    at = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=2)
    manager.add_date(FUNC, at, id="once", args=["once"])
    fired = wait_for(lambda: calls.get("once"), timeout=10)
    assert fired[0] >= at
    assert wait_for(lambda: manager.scheduler.get_job("once") is None, timeout=5)  # a date job leaves the store
    assert len(calls["once"]) == 1
