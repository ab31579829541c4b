"""Settings that set defaults are read where the default is used, not copied at import."""

import datetime as dt

import pytest
from django.core.management import call_command
from django.utils import timezone

from tasks_app.models import Job, JobRun, RunStatus


@pytest.mark.django_db
def test_a_new_job_takes_its_misfire_grace_from_the_settings(make_job, taskhub_settings):
    assert make_job().misfire_grace_seconds == 300
    taskhub_settings(DEFAULT_MISFIRE_GRACE_SECONDS=45)
    assert make_job().misfire_grace_seconds == 45
    assert Job(name="unsaved").misfire_grace_seconds == 45
    assert make_job(misfire_grace_seconds=7).misfire_grace_seconds == 7


@pytest.mark.django_db
def test_cleanup_runs_keeps_the_retention_the_settings_say(make_job, taskhub_settings, capsys):
    job = make_job()
    for days in (3, 10):
        slot = timezone.now() - dt.timedelta(days=days)
        JobRun.objects.create(
            job=job, engine=job.engine, scheduled_for=slot, status=RunStatus.SUCCEEDED, finished_at=slot
        )
    taskhub_settings(RUN_RETENTION_DAYS=5)
    call_command("cleanup_runs")
    assert "deleted 1 run(s) older than 5 day(s)" in capsys.readouterr().out
    assert JobRun.objects.count() == 1
    call_command("cleanup_runs", "--older-than", "1")
    assert JobRun.objects.count() == 0
