"""Alerts in a real browser: the job page's Alerts section and the dashboard's Overdue jobs panel."""

import datetime as dt

import pytest
from django.utils import timezone

from tasks_app.alerts import overdue, streaks
from tasks_app.models import AlertMessage, Job
from tests.browser import admin_page, browser, screenshot, superuser  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db(transaction=True)


def expect(locator):
    from playwright.sync_api import expect as playwright_expect  # imported with the browser fixture's Playwright

    return playwright_expect(locator)


def test_the_job_page_edits_alert_settings_and_lists_its_alerts(admin_page, make_job, taskhub_settings):
    page = admin_page
    taskhub_settings(ALERT_WEBHOOK_URL="http://127.0.0.1:9/hook", ALERT_EMAILS=["ops@example.com"])
    job = make_job(name="flaky-export")
    streaks.open_streak(job, "failing", detail="3 failed run(s) in a row")
    AlertMessage.objects.filter(channel="webhook").update(
        attempts=6, status="failed", last_error="HTTP 502: bad gateway"
    )

    page.goto(f"/admin/tasks_app/job/{job.pk}/change/")
    alerts = page.locator("#job-alerts")
    expect(alerts).to_be_visible()
    expect(alerts.locator("tbody tr")).to_have_count(2)
    expect(alerts.locator("tbody tr", has_text="Webhook")).to_contain_text("HTTP 502: bad gateway")
    expect(alerts.locator("tbody tr", has_text="E-mail")).to_contain_text("Pending")
    screenshot(page, "job-alerts")

    page.fill("#id_alert_after_failures", "3")
    page.fill("#id_alert_emails", "owner@example.com, not-an-address")
    page.click("input[name=_continue]")
    expect(page.locator(".errorlist")).to_contain_text("Not a valid e-mail address: 'not-an-address'.")
    page.fill("#id_alert_emails", "owner@example.com; team@example.com")
    page.click("input[name=_continue]")
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    job.refresh_from_db()
    assert (job.alert_after_failures, job.alert_emails) == (3, "owner@example.com, team@example.com")


def test_the_dashboard_lists_overdue_jobs(admin_page, make_job):
    page = admin_page
    silent = make_job(name="silent-job", schedule_type="interval", interval_seconds=60, misfire_grace_seconds=30)
    Job.objects.filter(pk=silent.pk).update(updated_at=timezone.now() - dt.timedelta(minutes=10))
    make_job(name="quiet-but-fine")
    overdue.sweep()  # an engine process's look: the panel shows what it found
    page.goto("/admin/")
    panel = page.locator("#taskhub-overdue")
    expect(page.locator("#taskhub-overdue-look")).to_contain_text("As of the look")
    expect(panel).to_contain_text("silent-job")
    expect(panel).not_to_contain_text("quiet-but-fine")
    panel.locator("a", has_text="silent-job").click()
    expect(page.locator("#id_alert_when_overdue")).to_be_checked()
    screenshot(page, "overdue-job")
