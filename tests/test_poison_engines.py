"""A poison row of each kind, written with raw SQL, beside a healthy job: live beat and runapscheduler
log each poison job once, skip it, and keep firing every other job — at start-up and when a
poison job is enabled while they run."""

import datetime as dt

import pytest

from tasks_app.models import Job, JobRun
from tests.processes import processes, wait_for  # noqa: F401  (fixture)
from tests.test_poison import AMS, POISON, poison

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]
SKIPPED = "job cannot be scheduled; skipped until it is fixed"


def succeeded(job) -> int:
    return JobRun.objects.filter(job=job, status="succeeded").count()


def poison_jobs(make_job, engine: str) -> list[Job]:
    jobs = [
        poison(
            make_job(
                name=f"{engine}-{kind.replace(' ', '-')}",
                engine=engine,
                schedule_type="cron",
                cron_expression="0 3 * * *",
            ),
            **fields,
        )
        for kind, (fields, _) in POISON.items()
    ]
    # Valid, but at the very end of the calendar: jitter must not overflow past year 9999.
    jobs.append(
        make_job(
            name=f"{engine}-year-9999",
            engine=engine,
            schedule_type="once",
            jitter_seconds=3600,
            run_at=dt.datetime(9999, 12, 31, 23, 59, tzinfo=dt.UTC),
        )
    )
    return jobs


def enable_a_poison_job_live(make_job, engine: str) -> Job:
    late = make_job(
        name=f"{engine}-enabled-live", engine=engine, schedule_type="cron", cron_expression="0 3 * * *", enabled=False
    )
    poison(late, cron_expression="30 2/24 * 3 0#5", timezone=AMS)
    Job.objects.filter(pk=late.pk).enable()  # bumps the change marker: the running engine reloads it
    return late


def assert_logged_once_each(output: str, jobs) -> None:
    lines = [line for line in output.splitlines() if SKIPPED in line]
    for job in jobs:
        assert sum(f'"{job.name}"' in line for line in lines) == 1, (job.name, lines)


def assert_keeps_firing(proc, healthy, processes) -> None:
    before = succeeded(healthy)
    assert wait_for(lambda: succeeded(healthy) >= before + 2), processes.output(proc)[-3000:]
    assert proc.poll() is None, processes.output(proc)[-3000:]


def start_apscheduler(processes):
    return processes.apscheduler()


def start_celery(processes):
    processes.worker()
    return processes.beat()


@pytest.mark.parametrize("engine, start", [("apscheduler", start_apscheduler), ("celery", start_celery)])
def test_the_scheduler_skips_poison_rows_and_fires_every_other_job(make_job, processes, engine, start):
    healthy = make_job(name=f"{engine}-healthy", engine=engine, schedule_type="interval", interval_seconds=1)
    poisoned = poison_jobs(make_job, engine)
    scheduler = start(processes)
    assert_keeps_firing(scheduler, healthy, processes)
    late = enable_a_poison_job_live(make_job, engine)
    assert wait_for(lambda: SKIPPED in processes.output(scheduler) and late.name in processes.output(scheduler))
    assert_keeps_firing(scheduler, healthy, processes)
    assert_logged_once_each(processes.output(scheduler), [*poisoned[:-1], late])
    assert not JobRun.objects.filter(job__in=[*poisoned, late]).exists()
