"""The admin in a real browser: Chromium drives the pages an operator uses, against a live server.

The job's runs are executed by real engine processes (``runapscheduler``, then a Celery
worker after the engine switch) sharing the test database, so what the pages show is what
an operator would see. Screenshots of the key pages land in ``artifacts/browser/``.
"""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from tasks_app.models import Job, JobRun, SchedulerHeartbeat
from tasks_app.scheduling.describe import describe_schedule
from tests.browser import PASSWORD, admin_page, browser, log_in, screenshot, superuser  # noqa: F401  (fixtures)
from tests.processes import processes, wait_for  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db(transaction=True)
RUN_WAIT_MS = 30_000


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def wait_for_leader(processes, scheduler: str):
    def leading():
        row = SchedulerHeartbeat.objects.filter(scheduler=scheduler).first()
        return row is not None and (timezone.now() - row.beat_at).total_seconds() < 5

    assert wait_for(leading, timeout=30), f"no {scheduler} leader came up"


def fits_without_scrolling(page) -> bool:
    """Whether a change list's table fits its page (1400 px wide here) without a horizontal scroll bar."""
    return page.evaluate(
        "() => { const r = document.querySelector('#changelist .results'); return r.scrollWidth <= r.clientWidth; }"
    )


def recent_run_row(page, trigger: str):
    """The newest row of the job page's table of recent runs with this trigger."""
    return page.locator("#job-recent-runs tbody tr", has_text=trigger).first


def test_a_wrong_password_is_refused_and_the_right_one_opens_the_admin(browser, live_server, superuser):
    context = browser.new_context(base_url=live_server.url)
    page = context.new_page()
    log_in(page, live_server.url, superuser.username, "not the password")
    expect(page.locator(".errornote")).to_contain_text("Please enter the correct username and password")
    log_in(page, live_server.url, superuser.username, PASSWORD)
    page.wait_for_url(f"{live_server.url}/admin/")
    expect(page.locator("#user-tools")).to_contain_text(superuser.username)
    context.close()


def test_a_cron_job_from_its_form_through_runs_on_both_engines_to_deletion(admin_page, processes):
    page = admin_page
    processes.apscheduler()
    wait_for_leader(processes, "apscheduler")

    # Create it through the form: a bad cron first, and the field says what is wrong.
    page.goto("/admin/tasks_app/job/add/")
    page.fill("#id_name", "browser-report")
    page.select_option("#id_handler", "sleep")
    page.fill("#id_kwargs", '{"seconds": 2, "steps": 4}')
    page.select_option("#id_schedule_type", "cron")
    page.fill("#id_cron_expression", "61 9 * * 1-5")
    page.fill("#id_timezone", "Europe/Amsterdam")
    page.select_option("#id_engine", "apscheduler")
    page.click("input[name=_continue]")
    error = page.locator(".field-cron_expression .errorlist")
    expect(error).to_contain_text("cron minute field '61' is invalid")
    expect(page.locator("#id_name")).to_have_value("browser-report")  # what was typed is kept
    screenshot(page, "job-form-bad-cron")
    assert not Job.objects.filter(name="browser-report").exists()

    page.fill("#id_cron_expression", "15 9 * * 1-5")
    page.click("input[name=_continue]")
    expect(page.locator(".messagelist .success")).to_contain_text("browser-report")
    job = Job.objects.get(name="browser-report")
    assert (job.cron_expression, job.timezone, job.kwargs) == (
        "15 9 * * 1-5",
        "Europe/Amsterdam",
        {"seconds": 2, "steps": 4},
    )

    # The schedule in words and the next five fire times, as the shared slot function has them.
    expect(page.locator(".field-schedule_in_words .readonly")).to_have_text(describe_schedule(job))
    fires = page.locator(".field-next_fire_preview .taskhub-fires li")
    expect(fires).to_have_count(5)
    first = job.next_fire_times(1)[0].astimezone(ZoneInfo("Europe/Amsterdam"))
    expect(fires.first).to_contain_text(f"{first:%Y-%m-%d} 09:15")
    screenshot(page, "job-page")

    # Run it now: the run appears on the job page and reaches "Succeeded" without a reload.
    page.click("#job-run-now")
    expect(page.locator(".messagelist")).to_contain_text("browser-report")
    page.evaluate("window.notReloaded = true")
    row = recent_run_row(page, "Run now")
    expect(row).to_contain_text("APScheduler")
    expect(row).to_contain_text("Succeeded", timeout=RUN_WAIT_MS)
    run = JobRun.objects.get(job=job, trigger="run_now")
    expect(page.locator(f"svg#taskhub-history rect[data-run='{run.pk}']")).to_have_attribute("data-status", "succeeded")
    assert page.evaluate("window.notReloaded") is True
    assert (run.status, run.engine, run.result) == ("succeeded", "apscheduler", {"slept": 2})
    screenshot(page, "job-page-after-run")

    # Pause and resume from the job page.
    page.click("#job-toggle")
    expect(page.locator(".messagelist")).to_have_text("“browser-report” paused.")
    expect(page.locator("#job-toggle")).to_have_text("Resume")
    assert Job.objects.get(pk=job.pk).enabled is False
    page.click("#job-toggle")
    expect(page.locator(".messagelist")).to_have_text("“browser-report” resumed.")
    expect(page.locator("#job-toggle")).to_have_text("Pause")
    assert Job.objects.get(pk=job.pk).enabled is True

    # Switch its engine from the job list, then run it now on Celery.
    processes.worker(concurrency=1)
    page.goto("/admin/tasks_app/job/")
    page.check(f"input[name=_selected_action][value='{job.pk}']")
    page.select_option("select[name=action]", "switch_to_celery")
    page.click("button[name=index]")
    expect(page.locator(".messagelist")).to_contain_text("switched to Celery")
    expect(page.locator("#result_list tbody tr", has_text="browser-report")).to_contain_text("Celery")
    assert Job.objects.get(pk=job.pk).engine == "celery"
    assert fits_without_scrolling(page), "the job list is wider than the page"
    screenshot(page, "job-list")

    page.goto(f"/admin/tasks_app/job/{job.pk}/change/")
    page.click("#job-run-now")
    celery_row = page.locator("#job-recent-runs tbody tr", has_text="Celery").first
    expect(celery_row).to_contain_text("Succeeded", timeout=RUN_WAIT_MS)
    assert JobRun.objects.filter(job=job, engine="celery", status="succeeded").count() == 1

    page.goto("/admin/tasks_app/jobrun/")
    expect(page.locator("#result_list tbody tr")).to_have_count(2)
    assert fits_without_scrolling(page), "the run list is wider than the page"
    screenshot(page, "run-list")

    # Delete it: the confirmation page names its runs, and both are gone after.
    page.goto(f"/admin/tasks_app/job/{job.pk}/change/")
    page.click("a.deletelink")
    expect(page.locator("#content")).to_contain_text("browser-report")
    page.click("input[type=submit]")
    expect(page.locator(".messagelist")).to_contain_text("deleted successfully")
    assert not Job.objects.filter(pk=job.pk).exists()
    assert not JobRun.objects.filter(job_id=job.pk).exists()


def test_a_running_run_shows_its_progress_moving_and_then_its_outcome(admin_page, processes, make_job):
    page = admin_page
    processes.apscheduler()
    wait_for_leader(processes, "apscheduler")
    job = make_job(name="progress-job", handler="sleep", kwargs={"seconds": 6, "steps": 6}, engine="apscheduler")

    page.goto(f"/admin/tasks_app/job/{job.pk}/change/")
    page.click("#job-run-now")
    run = wait_for(lambda: JobRun.objects.filter(job=job, status="running", progress__gt=0).first(), timeout=20)
    assert run, "the run never reported progress"

    page.goto(f"/admin/tasks_app/jobrun/{run.pk}/change/")
    bar = page.locator("#run-progress progress")
    first = float(bar.get_attribute("value"))
    page.evaluate("window.notReloaded = true")
    page.wait_for_function(f"Number(document.querySelector('#run-progress progress').value) > {first}", timeout=10_000)
    assert page.evaluate("window.notReloaded") is True
    expect(page.locator("#run-progress span")).to_contain_text("step")
    screenshot(page, "run-page-running")

    # Once it ends the page reloads itself and shows the outcome.
    expect(page.locator(".field-live_status")).to_contain_text("Succeeded", timeout=RUN_WAIT_MS)
    expect(page.locator(".field-result_json")).to_contain_text('"slept": 6')
    screenshot(page, "run-page-succeeded")


def test_the_dashboard_and_a_job_page_draw_their_charts(admin_page, make_job):
    page = admin_page
    now = timezone.now()
    good = make_job(name="good-job")
    bad = make_job(name="bad-job")
    for index in range(40):
        job, status = (bad, "failed") if index % 4 == 0 else (good, "succeeded")
        JobRun.objects.create(
            job=job,
            engine=job.engine,
            status=status,
            trigger="schedule",
            created_at=now - dt.timedelta(minutes=30 * index + 1),
            scheduled_for=now - dt.timedelta(minutes=30 * index + 1),
            started_at=now - dt.timedelta(minutes=30 * index),
            finished_at=now - dt.timedelta(minutes=30 * index) + dt.timedelta(seconds=index % 7 + 1),
            duration_seconds=index % 7 + 1,
            error=""
            if status == "succeeded"
            else "Traceback (most recent call last):\nValueError: the upstream said no",
        )

    page.goto("/admin/")
    timeline = page.locator("svg#taskhub-timeline")
    expect(timeline).to_be_visible()
    box = timeline.bounding_box()
    assert box["width"] > 300 and box["height"] > 50
    assert timeline.locator("rect").count() >= 20  # one bar per hour with runs, stacked by status
    expect(timeline.locator("title").first).to_contain_text("Runs per hour")
    expect(page.locator("#taskhub-counts li[data-status=failed] .taskhub-count")).to_have_text("10")
    expect(page.locator("#taskhub-counts li[data-status=succeeded] .taskhub-count")).to_have_text("30")
    expect(page.locator("#taskhub-failing")).to_contain_text("bad-job")
    expect(page.locator("#taskhub-failing")).to_contain_text("ValueError: the upstream said no")
    expect(page.locator("#taskhub-engines tr[data-engine=database]")).to_have_attribute("data-ok", "up")
    page.click("#taskhub-runs details summary")
    expect(page.locator("#taskhub-runs details table")).to_be_visible()  # the chart's table equivalent
    screenshot(page, "dashboard")

    page.goto(f"/admin/tasks_app/job/{good.pk}/change/")
    history = page.locator("svg#taskhub-history")
    expect(history).to_be_visible()
    assert history.bounding_box()["width"] > 300
    assert history.locator("rect").count() == 30
    screenshot(page, "job-history-chart")

    page.goto("/healthz")  # JSON: the browser also asks for /favicon.ico, which must not be a 404
    expect(page.locator("body")).to_contain_text('"database": {"ok": true')


def test_a_view_only_user_sees_jobs_but_no_buttons_and_no_dashboard(browser, live_server, make_job, django_user_model):
    from django.contrib.auth.models import Permission

    viewer = django_user_model.objects.create_user("viewer", password=PASSWORD, is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename="view_job"))
    job = make_job(name="look-only")
    context = browser.new_context(base_url=live_server.url)
    page = context.new_page()
    log_in(page, live_server.url, "viewer", PASSWORD)
    page.wait_for_url(f"{live_server.url}/admin/")
    expect(page.locator("#taskhub-dashboard")).to_have_count(0)  # the dashboard needs view_jobrun

    page.goto(f"/admin/tasks_app/job/{job.pk}/change/")
    expect(page.locator("#content")).to_contain_text("look-only")
    for button in ("#job-run-now", "#job-toggle", "input[name=_save]", "a.deletelink"):
        expect(page.locator(button)).to_have_count(0)
    expect(page.locator("#job-runs")).to_have_count(0)  # nor its runs, without view_jobrun
    screenshot(page, "job-page-view-only")
    context.close()
