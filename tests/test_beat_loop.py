"""Celery beat's fire/reload loop (``TaskhubScheduler.tick``), stepped with a clock the test holds.

Beat here is the real scheduler on the test database — the leader lock, the change marker,
the misfire policy's skipped rows — with two stand-ins: its clock is the test's
(``now``; ``sleep`` moves it, as time would pass while beat waits) and its messages go to a
list instead of the broker (``send_messages``). So "what does beat send at T" is a plain
question, asked without a beat process and without a real second passing (compare huey's
tests, which step a ``MemoryHuey`` at explicit timestamps). The wiring to a real broker and
worker stays in ``test_celery_engine.py``.
"""

import base64
import datetime as dt
import itertools
import json
import uuid
from dataclasses import dataclass

import pytest
import redis
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskhub.celery import app
from tasks_app.engines.celery import beat_delivery
from tasks_app.engines.celery.beat import TaskhubScheduler
from tasks_app.engines.celery.messages import message_kwargs, message_options
from tasks_app.engines.listener import ChangeListener
from tasks_app.models import Job, JobRun
from tasks_app.scheduling.misfire import plan
from tests.services import REDIS_URL, require
from tests.test_poison import POISON, poison

pytestmark = pytest.mark.django_db

# In the past, so a job made now owes no slot before beat's clock starts (its last edit is later).
T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
US = dt.timedelta(microseconds=1)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


@dataclass(frozen=True)
class Sent:
    job_id: int
    scheduled_for: dt.datetime
    at: dt.datetime  # beat's clock when it sent the message
    kwargs: dict
    options: dict


class SteppedBeat(TaskhubScheduler):
    """Beat with a clock the test holds and an outbox instead of a broker."""

    def __init__(self, start: dt.datetime):
        self.clock = self.until = start
        self.outbox: list[Sent] = []
        self.batches: list[int] = []  # messages per send_messages call
        super().__init__(app=app)

    def now(self) -> dt.datetime:
        return self.clock

    def sleep(self, seconds: float) -> None:
        self.clock = min(self.clock + dt.timedelta(seconds=seconds), self.until)

    def send_messages(self, messages) -> None:
        self.batches.append(len(messages))
        for kwargs, job in messages:
            slot = dt.datetime.fromisoformat(kwargs["scheduled_for"])
            self.outbox.append(Sent(kwargs["job_id"], slot, self.clock, kwargs, message_options(job)))

    def tick_at(self, moment: dt.datetime) -> list[tuple[int, dt.datetime]]:
        """One pass of the loop at ``moment`` (its wait takes no time): what it sent, as ``(job id, slot)``."""
        self.clock = self.until = moment
        return self._step()

    def run_until(self, moment: dt.datetime) -> list[tuple[int, dt.datetime]]:
        """Run the loop, each wait moving the clock as long as beat asked to wait, through ``moment``."""
        self.until, sent = moment, []
        for _ in range(100_000):
            last = self.clock >= moment
            sent += self._step()
            if last:
                return sent
        raise AssertionError(f"beat's waits did not move its clock past {self.clock}")

    def _step(self) -> list[tuple[int, dt.datetime]]:
        before = len(self.outbox)
        self.tick()
        assert self.leading_since is not None, "beat is not leading: the lock is taken, or the database failed"
        return [(m.job_id, m.scheduled_for) for m in self.outbox[before:]]


@pytest.fixture
def beat(monkeypatch):
    # The test's writes are never committed, so no NOTIFY reaches a listener: beat reads the
    # change marker instead, as it does without LISTEN (SQLite, a lost LISTEN connection).
    monkeypatch.setattr(ChangeListener, "open", classmethod(lambda cls, using="default": None))
    scheduler = SteppedBeat(T0)
    yield scheduler
    scheduler.close()


def celery_job(make_job, **fields) -> Job:
    return make_job(engine="celery", **fields)


def every(make_job, seconds: int, **fields) -> Job:
    return celery_job(make_job, schedule_type="interval", interval_seconds=seconds, **fields)


def of(job: Job, sent) -> list[dt.datetime]:
    return [slot for job_id, slot in sent if job_id == job.pk]


def skipped(job: Job) -> list[tuple[dt.datetime, str]]:
    runs = JobRun.objects.filter(job=job, status="skipped").order_by("scheduled_for")
    return [(run.scheduled_for, run.reason.split(":")[0]) for run in runs]


def write_past_validation(job: Job, **fields) -> None:
    """Store ``fields`` as raw SQL or an older version could (``update`` neither validates nor hides it from beat)."""
    Job.objects.filter(pk=job.pk).update(**fields)


# -- the banner -----------------------------------------------------------------------------------
def test_the_banner_says_what_is_true_before_and_after_the_leader_lock_is_decided(make_job, beat, caplog):
    celery_job(make_job)
    # Celery prints the banner before the first tick: nothing is decided yet, and it says so.
    assert beat.info == '    . taskhub: waiting for the leader lock (then "beat is leader", or it stands by)'
    with caplog.at_level("INFO", logger="tasks_app.beat"):
        beat.tick_at(T0)
    assert beat.info == "    . taskhub: 1 jobs, leader"
    assert [r.getMessage() for r in caplog.records if r.name == "tasks_app.beat"][0] == "beat is leader"
    second = SteppedBeat(T0)
    caplog.clear()
    try:
        with caplog.at_level("INFO", logger="tasks_app.beat"):
            assert second.tick() == second.tick() == second.standby_poll
    finally:
        second.close()
    said = [r.getMessage() for r in caplog.records if r.name == "tasks_app.beat"]
    assert said == ["beat is standing by: another beat is leader"]  # once, not at every poll


# -- the due-heap ---------------------------------------------------------------------------------
def test_a_slot_fires_once_at_its_time_not_a_microsecond_before_and_then_the_next_is_due(make_job, beat):
    job = every(make_job, 10)
    assert beat.tick_at(T0) == []  # leads, loads; the next slot is at +10 s
    assert beat.tick_at(at(10) - US) == []
    assert beat.tick_at(at(10)) == [(job.pk, at(10))]
    assert beat.tick_at(at(10)) == []  # the same instant again: already sent
    assert beat.tick_at(at(20) - US) == []
    assert beat.tick_at(at(20)) == [(job.pk, at(20))]


def test_the_message_names_the_job_and_slot_and_takes_the_jobs_queue(make_job, beat):
    job = every(make_job, 10, queue="reports")
    beat.tick_at(T0)
    beat.tick_at(at(10))
    [message] = beat.outbox
    assert message.kwargs == {
        "job_id": job.pk,
        "scheduled_for": at(10).isoformat(),
        "attempt": 1,
        "trigger": "schedule",
    }
    assert message.options["queue"] == "reports"


def test_two_minutes_of_mixed_jobs_fire_each_slot_once_exactly_on_time(make_job, beat):
    tens, fifteens = every(make_job, 10), every(make_job, 15)
    minutely = celery_job(make_job, schedule_type="cron", cron_expression="* * * * *")
    once = celery_job(make_job, schedule_type="once")
    write_past_validation(once, run_at=at(25))  # a run_at on beat's clock, in the real past
    paused = every(make_job, 10, enabled=False)
    elsewhere = make_job(engine="apscheduler", schedule_type="interval", interval_seconds=10)

    sent = beat.run_until(at(120))
    assert of(tens, sent) == [at(s) for s in range(10, 121, 10)]
    assert of(fifteens, sent) == [at(s) for s in range(15, 121, 15)]
    assert of(minutely, sent) == [at(60), at(120)]
    assert of(once, sent) == [at(25)]
    assert of(paused, sent) == of(elsewhere, sent) == []
    assert len(sent) == len(set(sent)) == 12 + 8 + 2 + 1
    # Beat's own waits end on the slots: each is sent at its instant, never before or after it.
    assert all(message.at == message.scheduled_for for message in beat.outbox)
    assert not JobRun.objects.filter(status="skipped").exists()


# -- a burst: many slots due at the same instant ----------------------------------------------------
def quiet_housekeeping(beat: SteppedBeat) -> None:
    """No heartbeat, reaper or lock check in the next ticks: what is left is firing and the change poll."""
    beat._next_beat = beat._next_reap = beat._next_lock_check = float("inf")


def test_a_tick_sends_its_due_slots_in_one_go_with_no_statement_per_slot(make_job, beat):
    burst = [celery_job(make_job, schedule_type="once") for _ in range(40)]
    for job in burst:
        write_past_validation(job, run_at=at(20))  # forty one-offs at the same instant: midnight
    tens = [every(make_job, 10) for _ in range(5)]
    beat.tick_at(T0)
    quiet_housekeeping(beat)
    with CaptureQueriesContext(connection) as five:
        assert sorted(beat.tick_at(at(10))) == sorted((job.pk, at(10)) for job in tens)
    with CaptureQueriesContext(connection) as forty_five:
        sent = beat.tick_at(at(20))
    assert sorted(sent) == sorted((job.pk, at(20)) for job in burst + tens)
    assert beat.batches[-2:] == [5, 45]  # one send per tick, whatever the count
    # Nothing skipped, nothing written: 45 due slots cost the statements 5 do (the tick's change poll).
    assert len(forty_five.captured_queries) == len(five.captured_queries) <= 2, forty_five.captured_queries
    assert not JobRun.objects.exists()


def test_beat_puts_a_batch_of_messages_on_redis_in_one_pipeline(make_job, beat):
    require(REDIS_URL, "Redis")
    queue = f"burst-test-{uuid.uuid4().hex[:12]}"
    jobs = [celery_job(make_job, queue=queue) for _ in range(30)]
    # kombu publishes one by one where a pipeline could be replayed (retry_on_timeout and the like).
    assert beat.producer.supports_batch_publish
    client = redis.Redis.from_url(REDIS_URL)
    try:
        TaskhubScheduler.send_messages(beat, [(message_kwargs(job.pk, at(10)), job) for job in jobs])
        raw = [m for key in client.scan_iter(match=f"{queue}*") for m in client.lrange(key, 0, -1)]
    finally:
        client.delete(*client.scan_iter(match=f"{queue}*"))
    messages = [json.loads(m) for m in raw]
    bodies = [json.loads(base64.b64decode(m["body"])) for m in messages]
    # 30 slots of one tick whose jobs share routing and limits: one run_slots message (BEAT_BATCH_SIZE 50)
    assert [m["headers"]["task"] for m in messages] == ["taskhub.run_slots"]
    slots = [slot for _, kwargs, _ in bodies for slot in kwargs["slots"]]
    assert sorted(slot["job_id"] for slot in slots) == sorted(job.pk for job in jobs)
    assert {slot["scheduled_for"] for slot in slots} == {at(10).isoformat()}


def test_slots_are_packed_by_routing_and_limits_up_to_the_batch_size(make_job):
    quick = [celery_job(make_job) for _ in range(5)]
    slow = [celery_job(make_job, timeout_seconds=600) for _ in range(2)]
    lone = celery_job(make_job, queue="reports")
    messages = [(message_kwargs(job.pk, at(10)), job) for job in quick + slow + [lone]]
    packed = list(beat_delivery.packed(messages, size=3))
    assert [(task, len(kwargs.get("slots", [kwargs]))) for task, kwargs, _ in packed] == [
        ("taskhub.run_slots", 3),
        ("taskhub.run_slots", 2),
        ("taskhub.run_slots", 2),
        ("taskhub.run_job", 1),
    ]
    assert [options for _, _, options in packed] == [message_options(j) for j in (quick[0], quick[3], slow[0], lone)]
    assert [task for task, _, _ in beat_delivery.packed(messages, size=1)] == ["taskhub.run_job"] * 8
    # A job that owes several slots (a catch-up without coalesce) has them in separate messages.
    owed = [(message_kwargs(quick[0].pk, at(s)), quick[0]) for s in (10, 11, 12)]
    assert [k["scheduled_for"] for _, k, _ in beat_delivery.packed(owed, size=3)] == [
        at(s).isoformat() for s in (10, 11, 12)
    ]


# -- edits reach the loop -------------------------------------------------------------------------
def test_an_interval_change_governs_from_the_next_tick(make_job, beat):
    job, other = every(make_job, 10), every(make_job, 30)
    assert of(job, beat.run_until(at(15))) == [at(10)]
    job.interval_seconds = 60
    job.save()
    sent = beat.run_until(at(65))
    assert of(job, sent) == [at(60)]  # the old schedule's 20, 30, 40, 50 are gone
    assert of(other, sent) == [at(30), at(60)]


def test_a_pause_stops_the_next_slot_and_a_resume_owes_nothing_from_the_pause(make_job, beat):
    job, other = every(make_job, 10), every(make_job, 10)
    beat.run_until(at(15))
    Job.objects.filter(pk=job.pk).pause()
    sent = beat.run_until(at(45))
    assert of(job, sent) == [] and of(other, sent) == [at(20), at(30), at(40)]
    Job.objects.filter(pk=job.pk).enable()
    assert of(job, beat.run_until(at(65))) == [at(50), at(60)]
    assert skipped(job) == []  # slots of the pause were never owed


def test_a_deleted_job_is_dropped_from_the_heap(make_job, beat):
    job, other = every(make_job, 10), every(make_job, 10)
    beat.run_until(at(15))
    job_id = job.pk
    job.delete()
    sent = beat.run_until(at(45))
    assert [slot for job_id_sent, slot in sent if job_id_sent == job_id] == []
    assert of(other, sent) == [at(20), at(30), at(40)] and job_id not in beat.jobs


def test_a_job_switched_to_apscheduler_leaves_beat_and_one_switched_back_returns(make_job, beat):
    job = every(make_job, 10)
    beat.run_until(at(15))
    Job.objects.filter(pk=job.pk).switch_engine("apscheduler")
    assert beat.run_until(at(45)) == []
    Job.objects.filter(pk=job.pk).switch_engine("celery")
    assert of(job, beat.run_until(at(65))) == [at(50), at(60)]


def test_a_job_created_while_beat_runs_fires_from_its_next_slot(make_job, beat):
    beat.run_until(at(15))
    job = every(make_job, 10)
    assert of(job, beat.run_until(at(35))) == [at(20), at(30)]


# -- one bad row never stops it -------------------------------------------------------------------
def test_broken_rows_are_skipped_with_their_reason_while_the_others_fire(make_job, beat, caplog):
    good = every(make_job, 10)
    broken = {
        kind: poison(celery_job(make_job, schedule_type="cron", cron_expression="0 3 * * *"), **fields)
        for kind, (fields, _) in POISON.items()
    }
    # Valid, at the very end of the calendar: its jitter must not overflow past year 9999.
    celery_job(
        make_job, schedule_type="once", jitter_seconds=3600, run_at=dt.datetime(9999, 12, 31, 23, 59, tzinfo=dt.UTC)
    )

    assert beat.run_until(at(60)) == [(good.pk, at(s)) for s in range(10, 61, 10)]
    assert set(beat.quarantine.reasons) == {job.pk for job in broken.values()}
    for kind, (_, reason) in POISON.items():
        assert reason in beat.quarantine.reasons[broken[kind].pk], kind
    skipped_line = "job cannot be scheduled; skipped until it is fixed"
    logged = [r.job_id for r in caplog.records if r.getMessage() == skipped_line]
    assert sorted(logged) == sorted(job.pk for job in broken.values())  # each logged, once


def test_a_job_broken_by_an_edit_is_skipped_and_fires_again_once_fixed(make_job, beat):
    good, job = every(make_job, 10), every(make_job, 10)
    beat.run_until(at(15))
    write_past_validation(job, timezone="Nowhere/Gone")
    sent = beat.run_until(at(35))
    assert of(job, sent) == [] and of(good, sent) == [at(20), at(30)]
    assert job.pk in beat.quarantine
    write_past_validation(job, timezone="UTC")
    sent = beat.run_until(at(55))
    assert of(job, sent) == of(good, sent) == [at(40), at(50)]
    assert job.pk not in beat.quarantine


# -- catching up: the misfire policy --------------------------------------------------------------
def owing_since(job: Job, last_run: dt.datetime) -> None:
    """``job`` last edited an hour before beat's clock starts and last run at ``last_run``."""
    Job.objects.filter(pk=job.pk).update(updated_at=T0 - dt.timedelta(hours=1))
    JobRun.objects.create(job=job, engine="celery", scheduled_for=last_run, status="succeeded")


def test_taking_the_lead_after_downtime_coalesces_into_the_latest_slot_and_records_the_rest(make_job, beat):
    job = every(make_job, 60, misfire_grace_seconds=300, coalesce=True)
    owing_since(job, last_run=at(-600))
    assert beat.tick_at(T0) == [(job.pk, T0)]  # ten slots were owed: -540 s .. 0 s
    assert skipped(job) == [(at(s), "misfire") for s in range(-540, -300, 60)] + [
        (at(s), "coalesced") for s in range(-300, 0, 60)
    ]
    assert beat.tick_at(at(60)) == [(job.pk, at(60))]  # and on from there


def test_taking_the_lead_after_downtime_without_coalesce_sends_each_slot_within_grace(make_job, beat):
    job = every(make_job, 60, misfire_grace_seconds=300, coalesce=False)
    owing_since(job, last_run=at(-600))
    assert beat.tick_at(T0) == [(job.pk, at(s)) for s in range(-300, 1, 60)]
    assert skipped(job) == [(at(s), "misfire") for s in range(-540, -300, 60)]


def test_a_loop_that_stalled_coalesces_what_it_owes_as_apscheduler_does(make_job, beat):
    job = every(make_job, 10, misfire_grace_seconds=60, coalesce=True)
    beat.tick_at(T0)
    assert beat.tick_at(at(35)) == [(job.pk, at(30))]  # 10, 20 and 30 s are owed: the latest runs
    assert skipped(job) == [(at(10), "coalesced"), (at(20), "coalesced")]
    assert beat.tick_at(at(40)) == [(job.pk, at(40))]


def test_a_loop_that_stalled_skips_the_slots_past_grace_and_sends_the_rest(make_job, beat):
    job = every(make_job, 10, misfire_grace_seconds=5, coalesce=False)
    beat.tick_at(T0)
    assert beat.tick_at(at(35)) == [(job.pk, at(30))]  # 5 s late: within grace
    assert skipped(job) == [(at(10), "misfire"), (at(20), "misfire")]
    assert beat.tick_at(at(40)) == [(job.pk, at(40))]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    interval=st.integers(1, 30),
    grace=st.integers(0, 90),
    coalesce=st.booleans(),
    stall=st.integers(0, 240),
)
def test_whatever_the_stall_beat_fires_and_skips_what_the_misfire_policy_plans(
    make_job, monkeypatch, interval, grace, coalesce, stall
):
    """The family behind the coalesce fix: beat's loop must never decide a late slot differently from
    ``misfire.plan`` (which the APScheduler engine applies too), however long it stalled."""
    monkeypatch.setattr(ChangeListener, "open", classmethod(lambda cls, using="default": None))
    job = every(make_job, interval, misfire_grace_seconds=grace, coalesce=coalesce)
    stepped = SteppedBeat(T0)
    try:
        stepped.tick_at(T0)
        resumed = at(stall) + dt.timedelta(microseconds=500)  # between ticks, never on one
        owed = list(itertools.takewhile(lambda t: t <= resumed, job.iter_fire_times(after=T0)))
        fire, skip = plan(job, owed, resumed)
        assert of(job, stepped.tick_at(resumed)) == fire
        assert [(s, reason.split(":")[0]) for s, reason in skip] == skipped(job)
    finally:
        stepped.close()
