"""Alerts from real engine processes: two ``runapscheduler`` processes (a leader and a standby, each
with its courier) find a job no engine fires, report it once, and report its recovery once."""

import datetime as dt
import time

import pytest
from django.utils import timezone

from tasks_app.models import AlertMessage, AlertStreak, Job, JobRun, OverdueLook
from tests.alert_receiver import SECRET, Receiver
from tests.processes import processes, wait_for  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_live_engine_processes_report_an_overdue_job_once_and_its_recovery_once(make_job, processes):
    # A celery job with no beat running: its slots pass with no run. runapscheduler is alive.
    hourly = {"engine": "celery", "schedule_type": "interval", "interval_seconds": 3600, "misfire_grace_seconds": 600}
    job = make_job(name="silent-celery-job", **hourly)
    # Another, with its overdue alerts off: the look records it overdue (for the dashboard and /metrics), silently.
    quiet = make_job(name="quiet-celery-job", alert_when_overdue=False, **hourly)
    Job.objects.filter(pk__in=[job.pk, quiet.pk]).update(updated_at=timezone.now() - dt.timedelta(hours=3))
    with Receiver() as receiver:
        fast = {
            "TASKHUB_ALERT_WEBHOOK_URL": receiver.url,
            "TASKHUB_ALERT_WEBHOOK_SECRET": SECRET,
            "TASKHUB_ALERT_POLL_SECONDS": "0.2",
            "TASKHUB_ALERT_OVERDUE_EVERY_SECONDS": "0.5",
        }
        engines = [processes.apscheduler(**fast) for _ in range(2)]
        assert wait_for(lambda: receiver.calls), [processes.output(p)[-2000:] for p in engines]
        [overdue] = receiver.calls
        assert (overdue["kind"], overdue["job"]) == ("overdue", "silent-celery-job")
        assert AlertStreak.objects.get(job=quiet, closed_at__isnull=True).silent
        assert OverdueLook.objects.get(process="apscheduler").overdue == 2

        # It runs again: the hour's slot has a run, and the next is owed 10 minutes after the next hour.
        slot = timezone.now().replace(minute=0, second=0, microsecond=0)
        JobRun.objects.create(job=job, engine="celery", scheduled_for=slot, status="succeeded")
        assert wait_for(lambda: len(receiver.calls) >= 2), [processes.output(p)[-2000:] for p in engines]
        time.sleep(2)  # several more passes of both couriers: nothing more is sent
        assert receiver.kinds() == ["overdue", "recovered"]
        assert receiver.refused == []
        assert list(AlertMessage.objects.values_list("status", flat=True)) == ["sent", "sent"]
