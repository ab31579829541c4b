"""A tidy admin in a real browser: the index's order, the engine internals, the run list on a 1280 px
screen, a paused job's title and the time zone help. Screenshots land in ``artifacts/browser/``."""

import datetime as dt

import pytest
from django.utils import timezone

from tasks_app.models import JobRun
from tests.browser import admin_page, browser, screenshot, superuser  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def top(page, selector: str) -> float:
    return page.locator(selector).first.bounding_box()["y"]


def test_the_index_shows_taskhub_first_and_the_engine_internals_collapsed_and_read_only(admin_page, make_job):
    page = admin_page
    make_job(name="nightly-report")
    page.goto("/admin/")
    assert top(page, ".app-tasks_app") < top(page, "#taskhub-dashboard") < top(page, ".app-auth")
    rows = page.locator(".app-tasks_app tbody tr th a")
    expect(rows).to_have_text(["Jobs", "Runs", "API clients"])
    internals = page.locator("#engine-internals")
    assert internals.get_attribute("open") is None  # collapsed
    expect(internals.locator(".app-engine_internals")).to_be_hidden()
    assert top(page, ".app-auth") < top(page, "#engine-internals")
    screenshot(page, "index")

    page.click("#engine-internals summary")
    expect(internals.locator("a", has_text="Celery beat: periodic tasks")).to_be_visible()
    expect(internals.locator("a.addlink")).to_have_count(0)
    screenshot(page, "index-engine-internals")

    page.goto("/admin/#engine-internals")  # where the sidebar's "Engine internals" leads: open
    expect(internals.locator("a", has_text="Celery beat: periodic tasks")).to_be_visible()
    internals.locator("a", has_text="Celery beat: periodic tasks").first.click()
    expect(page.locator("#changelist")).to_be_visible()
    expect(page.locator("select[name=action]")).to_have_count(0)  # no actions
    expect(page.locator(".object-tools a.addlink")).to_have_count(0)  # no add
    screenshot(page, "engine-internals-periodic-tasks")


def test_the_run_list_fits_1280_px_without_wrapping_job_names(admin_page, make_job):
    page = admin_page
    page.set_viewport_size({"width": 1280, "height": 900})
    now = timezone.now()
    statuses = ["succeeded", "failed", "running", "queued", "skipped", "timed_out", "cancelled"]
    longest = "reports.monthly-revenue-by-region-and-product-line-export-" + "x" * 41  # 100 characters, the most
    for index in range(21):
        name = longest if index == 20 else f"warehouse-nightly-export-{index:02}"
        job = make_job(name=name, timezone="America/Argentina/Buenos_Aires")
        status = statuses[index % len(statuses)]
        JobRun.objects.create(
            job=job,
            engine=job.engine,
            status=status,
            trigger=("schedule", "run_now", "api", "retry")[index % 4],
            scheduled_for=now - dt.timedelta(minutes=index, seconds=7),
            started_at=now - dt.timedelta(minutes=index),
            duration_seconds=1234.5 if status != "queued" else None,
            attempt=3,
            worker="worker-host-01.example.internal:123456",
            progress=0.5 if status == "running" else None,
            progress_message="copying partition 12 of 24" if status == "running" else "",
        )
    page.goto("/admin/tasks_app/jobrun/")
    expect(page.locator("#result_list tbody tr")).to_have_count(21)
    fits = page.evaluate(
        "() => { const r = document.querySelector('#changelist .results'); return [r.scrollWidth, r.clientWidth]; }"
    )
    assert fits[0] <= fits[1], f"the run list is {fits[0]} px wide in {fits[1]} px"
    lines = page.evaluate(
        "() => [...document.querySelectorAll('#result_list td.field-job_link a')].map(a => a.getClientRects().length)"
    )
    assert lines == [1] * 21, "a job name wraps"
    expect(page.locator(f"#result_list td.field-job_link a[title='{longest}']")).to_have_count(1)  # whole on hover
    screenshot(page, "run-list-1280")


def test_a_paused_job_says_so_and_the_zone_help_follows_the_schedule_type(admin_page, make_job):
    page = admin_page
    job = make_job(name="quarterly-close", enabled=False, schedule_type="cron", cron_expression="0 6 1 */3 *")
    page.goto(f"/admin/tasks_app/job/{job.pk}/change/")
    expect(page.locator("#content h2", has_text="quarterly-close").locator("#job-paused")).to_have_text("Paused")
    help_text = page.locator(".field-timezone .taskhub-zone-help:visible")
    expect(help_text).to_have_count(1)
    expect(help_text).to_contain_text("cron expression is read in")
    screenshot(page, "job-page-paused")

    page.select_option("#id_schedule_type", "interval")
    expect(help_text).to_have_count(1)
    expect(help_text).to_contain_text("interval ticks count from 1970-01-01 UTC")
    page.select_option("#id_schedule_type", "once")
    expect(help_text).to_contain_text("Run at is entered in")
    expect(help_text).not_to_contain_text("cron expression")

    page.click("#job-toggle")  # resumed: the label goes
    expect(page.locator("#job-paused")).to_have_count(0)

    page.click(".object-tools a.historylink")  # and the job's history says who resumed it, and when
    expect(page.locator("#change-history tbody tr").last).to_contain_text("Resumed.")
    expect(page.locator("#change-history tbody tr").last).to_contain_text("operator")
    screenshot(page, "job-history")
