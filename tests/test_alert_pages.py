"""Where people see alerts: the job page's last alerts, and the dashboard's overdue jobs."""

import datetime as dt
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tasks_app.alerts import overdue, streaks
from tasks_app.models import AlertMessage, Job

pytestmark = pytest.mark.django_db


def module(html: str, element_id: str) -> str:
    match = re.search(rf'<div class="module" id="{element_id}">(.*?)</div>', html, re.S)
    assert match, f"no #{element_id} on the page"
    return match.group(1)


def test_the_job_page_shows_its_alerts_read_only(admin_client, make_job, taskhub_settings):
    taskhub_settings(ALERT_WEBHOOK_URL="http://127.0.0.1:9/hook", ALERT_EMAILS=["ops@example.com"])
    job = make_job(alert_after_failures=3, alert_emails="owner@example.com")
    streaks.open_streak(job, "failing", detail="3 failed run(s) in a row")
    AlertMessage.objects.filter(channel="webhook").update(status="failed", attempts=6, last_error="HTTP 500: boom")
    AlertMessage.objects.filter(channel="email").update(status="sent", attempts=1, sent_at=timezone.now())
    html = admin_client.get(reverse("admin:tasks_app_job_change", args=[job.pk])).content.decode()
    table = re.search(r'<table class="taskhub-table" id="job-alerts">.*?</table>', html, re.S).group(0)
    rows = re.findall(r"<tr><td>.*?</tr>", table, re.S)
    assert len(rows) == 2
    assert all("Failing" in row for row in rows)
    email = next(row for row in rows if "E-mail" in row)
    webhook = next(row for row in rows if "Webhook" in row)
    assert "Sent" in email and "Failed" in webhook and "HTTP 500: boom" in webhook
    assert 'name="recent_alerts"' not in html  # a panel, not a form field
    assert 'name="alert_after_failures"' in html and 'value="owner@example.com"' in html


def test_the_job_page_says_when_there_are_no_alerts(admin_client, make_job):
    job = make_job()
    html = admin_client.get(reverse("admin:tasks_app_job_change", args=[job.pk])).content.decode()
    assert "No alerts yet." in html


def test_a_bad_address_in_the_admin_is_a_field_error(admin_client, make_job):
    job = make_job()
    page = admin_client.get(reverse("admin:tasks_app_job_change", args=[job.pk]))
    data = {
        k: v for k, v in page.context["adminform"].form.initial.items() if v is not None and not isinstance(v, dict)
    }
    data.update(kwargs='{"x": 1, "y": 2}', alert_emails="ops@example.com, nobody", alert_after_failures="2")
    response = admin_client.post(reverse("admin:tasks_app_job_change", args=[job.pk]), data)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["alert_emails"] == ["Not a valid e-mail address: 'nobody'."]
    assert Job.objects.get(pk=job.pk).alert_after_failures == 0


def overdue_jobs(make_job, count: int, **fields) -> list[Job]:
    """``count`` every-minute jobs with no run for an hour: overdue since about 59 minutes."""
    jobs = [
        make_job(schedule_type="interval", interval_seconds=60, misfire_grace_seconds=30, **fields)
        for _ in range(count)
    ]
    Job.objects.filter(pk__in=[job.pk for job in jobs]).update(updated_at=timezone.now() - dt.timedelta(hours=1))
    return jobs


def overdue_panel(admin_client) -> str:
    return module(admin_client.get(reverse("admin:index")).content.decode(), "taskhub-overdue")


def test_the_dashboard_lists_overdue_jobs_with_since_when(admin_client, make_job):
    late = make_job(name="silent-job", schedule_type="interval", interval_seconds=60, misfire_grace_seconds=30)
    quiet = make_job(name="quiet-job", schedule_type="interval", interval_seconds=60, alert_when_overdue=False)
    Job.objects.filter(pk__in=[late.pk, quiet.pk]).update(updated_at=timezone.now() - dt.timedelta(minutes=10))
    make_job(name="fine-job")  # yearly: nothing owed
    overdue.sweep()  # an engine process's look
    html = overdue_panel(admin_client)
    assert "silent-job" in html and "fine-job" not in html
    assert "quiet-job" in html  # its alerts are off, yet it is overdue all the same
    assert "Overdue since" in html and "(2)" in html
    assert 'data-recent="yes"' in html and "As of the look" in html
    assert not AlertMessage.objects.filter(job=quiet).exists()
    Job.objects.filter(pk=late.pk).pause()  # paused: not overdue, before any look says so
    assert "silent-job" not in overdue_panel(admin_client)


def test_the_dashboard_says_when_nothing_is_overdue(admin_client, make_job):
    make_job()
    overdue.sweep()
    html = overdue_panel(admin_client)
    assert "None: every enabled job" in html and 'data-recent="yes"' in html


def test_the_dashboard_says_plainly_when_no_engine_process_looks_for_overdue_jobs(admin_client, make_job):
    """The page never walks the jobs itself: without a recent look it says so, and shows what the last one found."""
    [late] = overdue_jobs(make_job, 1)
    html = overdue_panel(admin_client)
    assert late.name not in html  # overdue, but no engine process has looked
    assert "Unknown." in html and "No engine process has looked for overdue jobs yet" in html
    assert 'data-recent="no"' in html

    overdue.sweep(now=timezone.now() - dt.timedelta(minutes=10))  # the last look, ten minutes ago
    html = overdue_panel(admin_client)
    assert "Out of date: the last look for overdue jobs was 10" in html and 'data-recent="no"' in html
    assert late.name in html  # what it found then

    overdue.sweep()
    assert 'data-recent="yes"' in overdue_panel(admin_client)


def test_the_overdue_panel_costs_the_same_queries_for_10_or_200_overdue_jobs(admin_client, make_job):
    overdue_jobs(make_job, 10)
    overdue.sweep()
    with CaptureQueriesContext(connection) as few:
        html = overdue_panel(admin_client)
    assert "(10)" in html and html.count("<tr><td>") == 10

    overdue_jobs(make_job, 190, alert_when_overdue=False)
    overdue.sweep()
    with CaptureQueriesContext(connection) as many:
        html = overdue_panel(admin_client)
    assert "(200; the 20 longest overdue shown)" in html and html.count("<tr><td>") == 20
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]
