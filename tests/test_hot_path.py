"""The hot path in statements: a scheduled run's claim, a tick's batch, and the overlap limit they keep.

Counts statements (``CaptureQueriesContext``), never time. The property test searches for a mix
of existing runs and new slots in which the one-statement claim lets more runs start than the
locked claim's count allows, or runs a slot twice.
"""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks_app import runner
from tasks_app.models import Job, JobRun
from tasks_app.runner import claims, slot_inserts
from tasks_app.runner.slot_inserts import Slot
from tests.factories import job_factory

pytestmark = pytest.mark.django_db(transaction=True)

SLOT = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _postgres():
    if not slot_inserts.available():
        pytest.skip("the one-statement claim is Postgres's; elsewhere every claim is the locked one")


def test_a_scheduled_run_that_succeeds_costs_at_most_three_statements(make_job):
    job = make_job(kwargs={"x": 2, "y": 40})
    runner.run_slot(job.pk, SLOT - dt.timedelta(minutes=1), "celery")  # a warm connection, as a worker has
    with CaptureQueriesContext(connection) as queries:
        run = runner.run_slot(job.pk, SLOT, "celery")
    assert run.status == "succeeded" and run.result == 42
    statements = [q["sql"].split()[0].upper() for q in queries.captured_queries]
    assert len(statements) <= 3, statements
    assert statements == ["WITH", "UPDATE"]  # the claim (insert + job, one statement), the outcome
    run.refresh_from_db()
    assert (run.status, run.result, run.lane, run.worker) == ("succeeded", 42, None, claims.worker_id())


def test_a_tick_of_many_slots_is_claimed_in_one_statement(make_job):
    jobs = [make_job(kwargs={"x": i, "y": 1}) for i in range(50)]
    slots = [Slot(job.pk, SLOT) for job in jobs]
    with CaptureQueriesContext(connection) as queries:
        runs = claims.claim_many(slots, "apscheduler")
    assert len(queries.captured_queries) == 1
    assert [run.job.name for run in runs] == [job.name for job in jobs]  # each run comes with its job
    assert {run.lane for run in runs} == {1} and all(run.status == "running" for run in runs)


def test_a_batch_runs_side_by_side_and_records_each(make_job, fresh_calls):
    jobs = [make_job(handler="test_count", kwargs={"key": f"b{i}", "delay": 0.3}) for i in range(20)]
    runs = runner.run_slots([Slot(job.pk, SLOT) for job in jobs], "apscheduler")
    assert all(run.status == "succeeded" for run in runs)
    assert sorted(fresh_calls) == sorted(f"b{i}" for i in range(20))
    finished = JobRun.objects.filter(job__in=jobs)
    spread = max(r.started_at for r in finished) - min(r.started_at for r in finished)
    # Side by side: the last handler started before the first one (0.3 s long) ended.
    assert spread < dt.timedelta(seconds=0.3), spread
    assert not finished.filter(lane__isnull=False).exists()


def test_a_slot_twice_in_one_batch_runs_once(make_job, fresh_calls):
    job = make_job(handler="test_count", kwargs={"key": "twice"})
    runs = runner.run_slots([Slot(job.pk, SLOT), Slot(job.pk, SLOT)], "apscheduler")
    assert fresh_calls["twice"] == 1 and sum(run is not None for run in runs) == 1
    assert JobRun.objects.get(job=job).duplicate_claims == 1


def test_a_lane_left_behind_by_an_ended_run_is_freed_by_the_locked_claim(make_job):
    job = make_job()
    JobRun.objects.create(job=job, engine="celery", scheduled_for=SLOT, status="failed", lane=1)  # by hand
    run = runner.run_slot(job.pk, SLOT + dt.timedelta(minutes=1), "celery")
    assert run.status == "succeeded"
    assert list(JobRun.objects.filter(lane__isnull=False)) == []


# -- the overlap limit, searched ----------------------------------------------------------------
existing_run = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["running", "running", "succeeded", "queued", "failed"]),
        "fresh": st.booleans(),  # heartbeat within the stale time
        "lane": st.none() | st.integers(1, 4),
    }
)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    max_running=st.integers(1, 3),
    existing=st.lists(existing_run, max_size=4),
    new_slots=st.lists(st.integers(0, 5), min_size=1, max_size=6),
)
def test_claims_never_start_more_than_max_running_and_never_a_slot_twice(max_running, existing, new_slots):
    JobRun.objects.all().delete()
    Job.objects.all().delete()
    job = job_factory(max_running=max_running)
    now = timezone.now()
    counting = 0
    used_lanes = set()
    for index, row in enumerate(existing):
        heartbeat = now if row["fresh"] else now - dt.timedelta(hours=1)
        lane = row["lane"] if row["lane"] not in used_lanes else None
        used_lanes.add(lane)
        JobRun.objects.create(
            job=job,
            engine="celery",
            scheduled_for=SLOT - dt.timedelta(hours=index + 1),
            status=row["status"],
            heartbeat_at=heartbeat,
            started_at=heartbeat,
            worker="elsewhere:1",
            lane=lane,
        )
        counting += row["status"] == "running" and row["fresh"]
    slots = [Slot(job.pk, SLOT + dt.timedelta(minutes=m)) for m in new_slots]
    runs = claims.claim_many(slots, "celery")
    started = [run for run in runs if run is not None]
    assert len(started) <= max(0, max_running - counting)
    assert len({run.scheduled_for for run in started}) == len(started)
    held = list(JobRun.objects.filter(job=job, lane__isnull=False).values_list("lane", flat=True))
    assert len(held) == len(set(held)) and all(1 <= lane <= max(max_running, 4) for lane in held)
    for run in started:
        assert run.status == "running" and run.lane is not None and 1 <= run.lane <= max_running


def _prepared_on_this_connection() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0].split()[0].upper() for row in cursor.fetchall()]


def test_a_run_prepares_its_claim_and_outcome_and_a_setting_turns_that_off(make_job, taskhub_settings):
    job = make_job(kwargs={"x": 2, "y": 40})
    connection.close()  # a fresh connection: nothing prepared on it yet
    taskhub_settings(PREPARED_STATEMENTS=False)
    assert runner.run_slot(job.pk, SLOT, "celery").result == 42
    assert _prepared_on_this_connection() == []
    taskhub_settings(PREPARED_STATEMENTS=True)
    for minutes in (1, 2):
        assert runner.run_slot(job.pk, SLOT + dt.timedelta(minutes=minutes), "celery").result == 42
    assert sorted(_prepared_on_this_connection()) == ["UPDATE", "WITH"]  # prepared once, reused


def _executions_since_prepared() -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements")
        return {row[0].split()[0].upper(): row[1] for row in cursor.fetchall()}


def test_a_connection_makes_its_prepared_statements_again_so_no_plan_outlives_the_table_it_was_made_for(
    make_job, monkeypatch
):
    """A generic plan made while the runs table was small would keep scanning it whole as it grows."""
    from tasks_app.runner import prepared

    job = make_job(kwargs={"x": 2, "y": 40})
    connection.close()
    monkeypatch.setattr(prepared, "REPREPARE_AFTER", 10)  # 5 runs: a claim and an outcome each
    for minutes in range(4):
        assert runner.run_slot(job.pk, SLOT + dt.timedelta(minutes=minutes), "celery").result == 42
    assert _executions_since_prepared() == {"WITH": 4, "UPDATE": 4}
    for minutes in range(4, 8):
        assert runner.run_slot(job.pk, SLOT + dt.timedelta(minutes=minutes), "celery").result == 42
    assert _executions_since_prepared() == {"WITH": 3, "UPDATE": 3}  # made again at the sixth run
