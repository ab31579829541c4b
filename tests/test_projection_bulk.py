"""Projecting many jobs into django-celery-beat rows costs a few statements per batch, not four per job
(``beat_rows.project_many``): what ``Job.objects.bulk_create`` and ``sync_jobs`` rely on at 100,000 jobs."""

import io
import json

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_celery_beat.models import PeriodicTask

from tasks_app.engines.celery import beat_rows
from tasks_app.models import Job

pytestmark = pytest.mark.django_db(transaction=True)  # the projection follows the commit

CELERY_ONLY = {
    "celery": "tasks_app.engines.celery.CeleryEngine",
    "apscheduler": "tasks_app.engines.memory.MemoryEngine",
}


def new_jobs(count: int, start: int = 0) -> list[Job]:
    return [
        Job(
            name=f"bulk-{i}",
            handler="number_sum",
            kwargs={"x": i, "y": 1},
            engine="celery",
            schedule_type="cron",
            cron_expression=f"{i % 7} 3 * * *",
            timezone="Europe/Amsterdam",
        )
        for i in range(start, start + count)
    ]


def rows_of(jobs) -> dict[int, PeriodicTask]:
    names = [f"taskhub:{job.pk}:{job.name}" for job in jobs]
    return {int(row.name.split(":")[1]): row for row in PeriodicTask.objects.filter(name__in=names)}


def writes(queries) -> list[str]:
    return [q["sql"].split()[0] for q in queries if q["sql"].startswith(("INSERT", "UPDATE", "DELETE"))]


def test_bulk_create_projects_every_job_in_a_bounded_number_of_statements(taskhub_settings):
    taskhub_settings(ENGINES=CELERY_ONLY)
    with CaptureQueriesContext(connection) as queries:
        jobs = Job.objects.bulk_create(new_jobs(1200))
    rows = rows_of(jobs)
    assert len(rows) == 1200
    row = rows[jobs[8].pk]
    assert (row.crontab.minute, row.crontab.hour, str(row.crontab.timezone)) == ("1", "3", "Europe/Amsterdam")
    assert json.loads(row.kwargs) == {"job_id": jobs[8].pk} and row.task == "taskhub.run_job" and row.enabled
    assert row.queue == jobs[8].queue
    inserts = [q for q in queries if q["sql"].startswith('INSERT INTO "django_celery_beat_periodictask"')]
    assert len(inserts) == 3  # a statement per 500 jobs
    # A handful of statements per distinct schedule (7 here) and per batch; one by one it was ~4 a job (4,800).
    assert len(queries) < 100, len(queries)


def test_a_re_projection_writes_only_the_rows_that_differ(taskhub_settings):
    taskhub_settings(ENGINES=CELERY_ONLY)
    jobs = Job.objects.bulk_create(new_jobs(600))
    Job.objects.filter(pk=jobs[0].pk).update(interval_seconds=90, schedule_type="interval", cron_expression="")
    assert rows_of(jobs[:1])[jobs[0].pk].interval.every == 90 and rows_of(jobs[:1])[jobs[0].pk].crontab is None
    PeriodicTask.objects.filter(name=f"taskhub:{jobs[5].pk}:{jobs[5].name}").update(enabled=False)  # drifted
    with CaptureQueriesContext(connection) as queries:
        beat_rows.project_many(Job.objects.filter(pk__in=[job.pk for job in jobs]))
    assert writes(queries).count("UPDATE") == 2  # the drifted row, and django-celery-beat's change marker
    assert "INSERT" not in writes(queries)
    assert rows_of(jobs[5:6])[jobs[5].pk].enabled


def test_sync_jobs_rebuilds_missing_rows_and_removes_many_at_once(taskhub_settings):
    taskhub_settings(ENGINES=CELERY_ONLY)
    jobs = Job.objects.bulk_create(new_jobs(700))
    PeriodicTask.objects.filter(name__in=[f"taskhub:{job.pk}:{job.name}" for job in jobs[:10]]).delete()
    call_command("sync_jobs", stdout=io.StringIO())
    assert len(rows_of(jobs)) == 700
    beat_rows.remove([job.pk for job in jobs[:600]])  # more than a batch: one pass over the names
    assert set(rows_of(jobs)) == {job.pk for job in jobs[600:]}
