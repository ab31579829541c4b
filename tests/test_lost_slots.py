"""A slot the APScheduler store let pass without a run (its leader died before the claim
committed) is fired, or recorded as skipped, by the next leader — found by the chaos soak
(``bench/soak_repro_lost_slot.py apscheduler`` reproduces it with real processes)."""

import datetime as dt

import pytest
from django.utils import timezone
from django_apscheduler.models import DjangoJob

from tasks_app.engines.apscheduler.engine import store_id
from tasks_app.engines.apscheduler.service import catch_up_lost_slots
from tasks_app.engines.quarantine import Quarantine
from tasks_app.models import Job, JobRun

pytestmark = pytest.mark.django_db


class Manager:
    """What ``catch_up_lost_slots`` uses of a SchedulerManager: its quarantine and ``run_slot``."""

    def __init__(self):
        self.quarantine = Quarantine("apscheduler")
        self.fired = []

    def run_slot(self, job_id, slot):
        self.fired.append((job_id, slot))


def tick(seconds: int, back: int) -> dt.datetime:
    now = timezone.now()
    return now - dt.timedelta(seconds=(now.timestamp() % seconds) + back * seconds)


def setup_job(make_job, store_next: dt.datetime | None, **fields):
    job = make_job(engine="apscheduler", schedule_type="interval", interval_seconds=10, **fields)
    Job.objects.filter(pk=job.pk).update(updated_at=timezone.now() - dt.timedelta(minutes=10))
    JobRun.objects.create(job=job, engine="apscheduler", scheduled_for=tick(10, 5), status="succeeded")
    if store_next:
        DjangoJob.objects.create(id=store_id(job.pk), next_run_time=store_next, job_state=b"")
    return job


def test_slots_between_the_last_run_and_the_stores_next_are_caught_up_by_the_misfire_policy(make_job):
    job = setup_job(make_job, store_next=tick(10, 1))  # the store moved on past 3 slots that never ran
    manager = Manager()
    assert catch_up_lost_slots(manager) == 1
    assert manager.fired == [(job.pk, tick(10, 2))]  # coalesced: the latest lost slot runs
    skipped = JobRun.objects.filter(job=job, status="skipped").values_list("scheduled_for", flat=True)
    assert sorted(skipped) == [tick(10, 4), tick(10, 3)]


def test_nothing_is_caught_up_when_the_store_fires_next_after_the_last_run(make_job):
    setup_job(make_job, store_next=tick(10, 4))
    manager = Manager()
    assert catch_up_lost_slots(manager) == 0 and manager.fired == []
    assert not JobRun.objects.filter(status="skipped").exists()


def test_without_coalesce_each_lost_slot_within_grace_runs(make_job):
    job = setup_job(make_job, store_next=tick(10, 1), coalesce=False)
    manager = Manager()
    assert catch_up_lost_slots(manager) == 3
    assert [slot for _, slot in manager.fired] == [tick(10, 4), tick(10, 3), tick(10, 2)]
    assert all(job_id == job.pk for job_id, _ in manager.fired)
