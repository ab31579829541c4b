"""Overdue jobs: a slot passed by more than the job's grace with no run at all (models/overdue.py).

The clock is held: ``overdue_jobs(now=...)`` is a pure question of the rows and ``now``.
"""

import datetime as dt

import pytest

from tasks_app.models import Job, JobRun, RunStatus, Trigger
from tasks_app.models.overdue import overdue_jobs
from tests.factories import job_factory

pytestmark = pytest.mark.django_db

MINUTE = dt.timedelta(minutes=1)
T0 = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)  # a whole minute, and a multiple of 60 s since the epoch


def _every_minute(**overrides) -> Job:
    job = job_factory(schedule_type="interval", interval_seconds=60, misfire_grace_seconds=30, **overrides)
    Job.objects.filter(pk=job.pk).update(updated_at=T0 + dt.timedelta(seconds=1))  # edited just after the 12:00 slot
    return Job.objects.get(pk=job.pk)


def _names(now) -> list[str]:
    return [o.job.name for o in overdue_jobs(now=now)]


def test_a_slot_with_no_run_is_overdue_after_its_grace():
    job = _every_minute()
    assert _names(T0 + MINUTE + dt.timedelta(seconds=29)) == []  # 12:01 slot, within its 30 s grace
    [late] = overdue_jobs(now=T0 + MINUTE + dt.timedelta(seconds=31))
    assert (late.job, late.slot, late.since) == (job, T0 + MINUTE, T0 + MINUTE + dt.timedelta(seconds=30))


def test_a_run_of_any_outcome_for_the_slot_means_not_overdue_until_the_next_one_is_missed():
    job = _every_minute()
    for status in (RunStatus.FAILED, RunStatus.SKIPPED):
        JobRun.objects.update_or_create(
            job=job, scheduled_for=T0 + MINUTE, defaults={"engine": job.engine, "status": status}
        )
        assert _names(T0 + MINUTE + dt.timedelta(seconds=59)) == []
    [late] = overdue_jobs(now=T0 + 2 * MINUTE + dt.timedelta(seconds=31))
    assert late.slot == T0 + 2 * MINUTE


def test_paused_jobs_and_run_now_runs_do_not_count():
    paused, other = _every_minute(enabled=False), _every_minute()
    JobRun.objects.create(job=other, engine=other.engine, scheduled_for=T0 + MINUTE, trigger=Trigger.RUN_NOW)
    assert _names(T0 + 2 * MINUTE) == [other.name]
    assert paused.name not in _names(T0 + 10 * MINUTE)


def test_an_edit_resets_the_clock_and_jitter_extends_the_grace():
    job = _every_minute(jitter_seconds=20)
    assert _names(T0 + MINUTE + dt.timedelta(seconds=45)) == []  # 30 s grace + 20 s jitter
    assert _names(T0 + MINUTE + dt.timedelta(seconds=51)) == [job.name]
    Job.objects.filter(pk=job.pk).update(updated_at=T0 + MINUTE + dt.timedelta(seconds=50))  # resumed, say
    assert _names(T0 + MINUTE + dt.timedelta(seconds=51)) == []


def test_a_one_off_job_is_overdue_once_and_never_after_its_run():
    job = job_factory(schedule_type="once", misfire_grace_seconds=10)
    after = job.run_at + dt.timedelta(seconds=11)
    assert _names(after) == [job.name]
    JobRun.objects.create(job=job, engine=job.engine, scheduled_for=job.run_at, status=RunStatus.SUCCEEDED)
    assert _names(after + dt.timedelta(days=365)) == []


def test_a_job_whose_handler_is_gone_is_overdue_and_an_unreadable_schedule_is_not():
    gone = _every_minute()
    unreadable = job_factory(schedule_type="cron", cron_expression="* * * * *", timezone="Europe/Paris")
    Job.objects.filter(pk=gone.pk).update(handler="removed_handler", updated_at=T0)
    Job.objects.filter(pk=unreadable.pk).update(timezone="Mars/Olympus_Mons", updated_at=T0)
    assert _names(T0 + 10 * MINUTE) == [gone.name]


def test_the_longest_overdue_comes_first():
    early, late = _every_minute(), _every_minute()
    Job.objects.filter(pk=early.pk).update(updated_at=T0 - 5 * MINUTE)
    assert _names(T0 + 3 * MINUTE) == [early.name, late.name]
