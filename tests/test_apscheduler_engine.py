"""The APScheduler engine with a real ``runapscheduler`` process on Postgres."""

import datetime as dt
import os
import signal

import pytest
from django.db import connection
from django.utils import timezone

from tasks_app.engines import request_run
from tasks_app.engines.apscheduler.engine import SlotTrigger
from tasks_app.engines.base import EngineUnavailable
from tasks_app.models import Job, JobRun, SchedulerHeartbeat
from tasks_app.scheduling import slots
from tests.processes import processes, wait_for  # noqa: F401  (fixture)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]


def aps_job(make_job, **fields):
    return make_job(engine="apscheduler", **fields)


def runs(job, **filters):
    return list(JobRun.objects.filter(job=job, **filters).order_by("scheduled_for"))


def leader_pid():
    row = SchedulerHeartbeat.objects.filter(scheduler="apscheduler").first()
    return int(row.leader.rsplit(":", 1)[1]) if row else None


def start_leader(processes):
    proc = processes.apscheduler()
    assert wait_for(lambda: leader_pid() == proc.pid, timeout=30), processes.output(proc)[-3000:]
    return proc


def test_interval_and_one_off_jobs_fire_and_are_recorded(make_job, processes):
    # Cron takes the same path through the trigger (test_both_engines_report_the_same_fire_times_across_dst
    # compares it with the slot function); waiting for a whole minute would prove no more.
    every_second = aps_job(make_job, schedule_type="interval", interval_seconds=1, kwargs={"x": 1, "y": 1})
    once = aps_job(
        make_job, schedule_type="once", run_at=timezone.now() + dt.timedelta(seconds=4), kwargs={"x": 3, "y": 3}
    )
    start_leader(processes)
    assert wait_for(lambda: len(runs(every_second, status="succeeded")) >= 3)
    assert wait_for(lambda: runs(once, status="succeeded"))
    [ran] = runs(once)
    assert (ran.scheduled_for, ran.result, ran.engine) == (once.run_at, 6, "apscheduler")
    ticks = [r.scheduled_for for r in runs(every_second)]
    assert len(ticks) == len(set(ticks)) and all(t.microsecond == 0 for t in ticks)

    from django_apscheduler.models import DjangoJobExecution

    assert DjangoJobExecution.objects.filter(job_id=f"taskhub-job-{every_second.pk}", status="Executed").exists()


def test_edits_pauses_resumes_and_deletes_reach_the_running_scheduler(make_job, processes):
    start_leader(processes)
    job = aps_job(make_job, schedule_type="once", run_at=timezone.now() + dt.timedelta(hours=1))
    for _ in range(3):  # a one-off moved to 2 s ahead runs then, without a restart
        job.refresh_from_db()
        job.run_at = timezone.now() + dt.timedelta(seconds=2)
        job.save()
        assert wait_for(lambda: runs(job, scheduled_for=job.run_at, status="succeeded"), timeout=10)

    ticking = aps_job(make_job, schedule_type="interval", interval_seconds=1)
    witness = aps_job(make_job, schedule_type="interval", interval_seconds=1)  # shares every slot with ticking
    assert wait_for(lambda: len(runs(ticking)) >= 2)
    Job.objects.filter(pk=ticking.pk).pause()
    paused_at = timezone.now()
    # The scheduler went on firing: the witness ran a slot a second after any of ticking's that could still have run.
    assert wait_for(lambda: runs(witness, scheduled_for__gt=paused_at + dt.timedelta(seconds=2)))
    assert not runs(ticking, scheduled_for__gt=paused_at + dt.timedelta(seconds=1))
    Job.objects.filter(pk=ticking.pk).enable()
    resumed_at = timezone.now()
    assert wait_for(lambda: runs(ticking, scheduled_for__gt=resumed_at))
    ticking.delete()
    from django_apscheduler.models import DjangoJob

    assert wait_for(lambda: not DjangoJob.objects.filter(id=f"taskhub-job-{ticking.pk}").exists(), timeout=5)


def test_run_now_reaches_the_scheduler_and_says_so_when_none_runs(make_job, processes):
    job = aps_job(make_job, kwargs={"x": 4, "y": 5})
    with pytest.raises(EngineUnavailable, match="runapscheduler"):
        request_run(job)
    [queued] = runs(job)
    assert queued.status == "queued"
    start_leader(processes)
    assert wait_for(lambda: JobRun.objects.get(pk=queued.pk).status == "succeeded")  # picked up at start
    run = request_run(job)
    assert wait_for(lambda: JobRun.objects.get(pk=run.pk).status == "succeeded", timeout=5)
    assert JobRun.objects.get(pk=run.pk).result == 9


def test_the_misfire_policy_after_ten_minutes_of_downtime(make_job, processes):
    import pickle

    from django_apscheduler.models import DjangoJob

    job = aps_job(make_job, schedule_type="cron", cron_expression="* * * * *", misfire_grace_seconds=300, coalesce=True)
    first = start_leader(processes)
    assert wait_for(lambda: leader_pid() and _stored(job))
    os.killpg(first.pid, signal.SIGTERM)
    first.wait(30)
    # The scheduler was down for ten minutes: its stored next run time is ten minutes old.
    down_since = timezone.now() - dt.timedelta(minutes=10)
    row = DjangoJob.objects.get(id=f"taskhub-job-{job.pk}")
    state = pickle.loads(row.job_state)
    state["next_run_time"] = state["trigger"].get_next_fire_time(None, down_since)
    row.job_state, row.next_run_time = pickle.dumps(state), state["next_run_time"]
    row.save()

    started = timezone.now()
    start_leader(processes)
    missed = [s for s in slots.cron_fire_times("* * * * *", "UTC", down_since, 20) if s <= started]
    assert len(missed) in (10, 11)  # 11 when a minute's boundary passed between the two instants
    assert wait_for(lambda: len(runs(job, scheduled_for__lte=started)) == len(missed), timeout=30)
    recorded = runs(job, scheduled_for__lte=started)
    assert [r.scheduled_for for r in recorded] == missed
    ran = [r for r in recorded if r.status != "skipped"]
    assert len(ran) == 1 and ran[0].scheduled_for == missed[-1]  # coalesced into the latest
    reasons = [r.reason.split(":")[0] for r in recorded if r.status == "skipped"]
    late = sum(1 for s in missed[:-1] if started - s > dt.timedelta(seconds=300))
    assert reasons.count("misfire") in (late, late + 1) and reasons.count("misfire") + reasons.count("coalesced") == 9


def _stored(job):
    from django_apscheduler.models import DjangoJob

    return DjangoJob.objects.filter(id=f"taskhub-job-{job.pk}").exists()


def test_two_schedulers_one_effect_per_slot_and_the_standby_takes_over(make_job, processes):
    leader = start_leader(processes)
    standby = processes.apscheduler()
    job = aps_job(
        make_job,
        handler="test_count",
        kwargs={"key": "aps-two"},
        schedule_type="interval",
        interval_seconds=1,
        coalesce=False,
    )
    assert wait_for(lambda: len(runs(job, status="succeeded")) >= 3)  # the leader fires, the standby waits
    os.killpg(leader.pid, signal.SIGKILL)
    killed_at = timezone.now()
    assert wait_for(lambda: leader_pid() == standby.pid, timeout=10), processes.output(standby)[-3000:]
    took_over_at = SchedulerHeartbeat.objects.get(scheduler="apscheduler").beat_at
    assert (took_over_at - killed_at).total_seconds() < 10
    assert wait_for(lambda: len(runs(job, scheduled_for__gt=took_over_at, status="succeeded")) >= 3)
    scheduled = [r.scheduled_for for r in runs(job)]
    assert len(scheduled) == len(set(scheduled)) and len(scheduled) >= 6


def test_two_active_schedulers_without_the_lock_still_run_each_slot_once(make_job, processes, monkeypatch):
    """The slot's unique constraint is the backstop when the lock is bypassed."""
    job = aps_job(
        make_job, handler="test_count", kwargs={"key": "aps-nolock"}, schedule_type="interval", interval_seconds=1
    )
    processes.apscheduler(TASKHUB_LEADER_LOCK="off")
    processes.apscheduler(TASKHUB_LEADER_LOCK="off")
    assert wait_for(lambda: len(runs(job, status="succeeded")) >= 8, timeout=30)
    scheduled = [r.scheduled_for for r in runs(job)]
    assert len(scheduled) == len(set(scheduled))
    assert JobRun.objects.filter(job=job, duplicate_claims__gt=0).exists()  # both fired; one ran


def test_dropped_database_connections_mid_run_leave_nothing_running(make_job, processes):
    start_leader(processes)
    slow = aps_job(make_job, handler="test_slow", kwargs={"seconds": 4}, max_retries=0)
    ticking = aps_job(make_job, schedule_type="interval", interval_seconds=1)
    assert wait_for(lambda: len(runs(ticking, status="succeeded")) >= 2)  # pool threads hold connections
    run = request_run(slow)
    assert wait_for(lambda: JobRun.objects.get(pk=run.pk).status == "running")
    with connection.cursor() as cursor:  # what a Postgres restart does to every client session
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    dropped_at = timezone.now()
    assert wait_for(lambda: JobRun.objects.get(pk=run.pk).status == "succeeded", timeout=60)
    assert wait_for(
        lambda: runs(ticking, scheduled_for__gt=dropped_at + dt.timedelta(seconds=2), status="succeeded"), timeout=30
    )
    assert not JobRun.objects.filter(status="running", heartbeat_at__lt=timezone.now() - dt.timedelta(seconds=10))


def test_sigterm_lets_in_flight_runs_finish_and_exits_0(make_job, processes):
    proc = start_leader(processes)
    slow = aps_job(make_job, handler="test_slow", kwargs={"seconds": 2})
    run = request_run(slow)
    assert wait_for(lambda: JobRun.objects.get(pk=run.pk).status == "running")
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(30) == 0
    assert JobRun.objects.get(pk=run.pk).status == "succeeded"


def test_both_engines_report_the_same_fire_times_across_dst(make_job):
    job = make_job(schedule_type="cron", cron_expression="30 2 * * *", timezone="Europe/Amsterdam")
    start = dt.datetime(2027, 3, 26, tzinfo=dt.UTC)
    expected = job.next_fire_times(8, after=start)
    trigger, fired, previous = SlotTrigger.for_job(job), [], None
    for _ in range(8):
        previous = trigger.get_next_fire_time(previous, start)
        fired.append(previous)
    assert fired == expected
    assert expected[2] == dt.datetime(2027, 3, 28, 1, 0, tzinfo=dt.UTC)  # 02:30 does not exist that night
    autumn = job.next_fire_times(3, after=dt.datetime(2027, 10, 30, tzinfo=dt.UTC))
    assert autumn[1] == dt.datetime(2027, 10, 31, 0, 30, tzinfo=dt.UTC)  # the first 02:30, once
