"""A slot the APScheduler store let pass without a run (its leader died before the claim
committed) is fired, or recorded as skipped, by the next leader — found by the chaos soak
(``bench/soak_repro_lost_slot.py apscheduler`` reproduces it with real processes). And a slot
beat sent whose worker died before the claim, when the beat leader died within its re-send
grace, is re-sent by the next beat leader (the real-process version is in test_lost_deliveries.py)."""

import datetime as dt
import itertools

import pytest
from django.utils import timezone
from django_apscheduler.models import DjangoJob

from tasks_app.engines.apscheduler.engine import store_id
from tasks_app.engines.apscheduler.service import catch_up_lost_slots
from tasks_app.engines.quarantine import Quarantine
from tasks_app.models import Job, JobRun
from tests.private_redis import private_redis  # noqa: F401  (fixture)

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


# -- beat: a slot sent by a leader that died before its re-send grace -----------------------------
def beat_on(broker_url: str, monkeypatch):
    """Taskhub's beat scheduler as an object the test drives (no process), sending to ``broker_url``."""
    from celery import Celery

    from tasks_app.engines.celery.beat import TaskhubScheduler

    monkeypatch.setenv("CELERY_BROKER_URL", broker_url)  # Celery reads it before its settings
    app = Celery("taskhub", set_as_current=False)  # the engines publish through current_app: leave it the project's
    app.config_from_object("django.conf:settings", namespace="CELERY")
    return TaskhubScheduler(app=app)


def last_slots_of(job, count: int) -> list[dt.datetime]:
    now = timezone.now()
    start = now - dt.timedelta(seconds=job.interval_seconds * (count + 1))
    return list(itertools.takewhile(lambda slot: slot <= now, job.iter_fire_times(after=start)))[-count:]


@pytest.mark.timeout(60)
def test_a_new_beat_leader_re_sends_a_slot_below_the_last_run_that_its_predecessor_sent_and_lost(
    make_job, taskhub_settings, private_redis, monkeypatch
):
    """The soak's lost slots: beat sent the slot, the worker holding it was killed before its claim,
    a later slot ran on another worker, and the beat leader died before its re-send grace was over.
    Its note of the sent slot died with it; the new leader's catch-up starts at the last run."""
    from tests.test_lost_deliveries import queued_slots

    taskhub_settings(REDELIVER_AFTER_SECONDS=7)  # it looks 3 graces below the last run: 4 slots here
    job = make_job(engine="celery", schedule_type="interval", interval_seconds=5)
    edited, lost, received, last = last_slots_of(job, 4)
    Job.objects.filter(pk=job.pk).update(updated_at=edited + dt.timedelta(seconds=1))  # slots before it are not owed
    for slot in (received, last):
        JobRun.objects.create(job=job, engine="celery", scheduled_for=slot, status="succeeded")

    beat = beat_on(private_redis.url, monkeypatch)
    try:
        beat._load_all()  # as on taking the lead
        beat._reap()  # its first pass: the lost slot's grace (7 s) is over and its queue is empty
        sent = queued_slots(private_redis.url)
    finally:
        beat.close()
    assert lost.isoformat() in sent, sent
    assert not {edited.isoformat(), received.isoformat(), last.isoformat()} & set(sent)
