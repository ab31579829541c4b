"""The admin: lists, filters, the job form, actions, buttons, permissions and the run pages."""

import datetime as dt
import itertools

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from tasks_app.handlers.registry import registry
from tasks_app.models import Job, JobRun
from tasks_app.scheduling.describe import describe_schedule
from tests.helpers import wait_for

JOBS = reverse("admin:tasks_app_job_changelist")
RUNS = reverse("admin:tasks_app_jobrun_changelist")
_slots = itertools.count(1)


# -- helpers ---------------------------------------------------------------------------------
@pytest.fixture
def in_process_engines(memory_engines):
    """Both engines in this process (conftest's ``memory_engines``, which stops their pools after the test).

    What the admin does is under test here, not an engine: the engines have their own suites.
    """
    return memory_engines


def job_url(view, job):
    return reverse(f"admin:tasks_app_job_{view}", args=[job.pk])


def run_url(view, run):
    return reverse(f"admin:tasks_app_jobrun_{view}", args=[run.pk])


def make_run(job, **fields):
    """A run row as the runner would leave it; each in its own slot unless told."""
    slot = dt.datetime(2030, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=next(_slots))
    return JobRun.objects.create(
        **{
            "job": job,
            "engine": job.engine,
            "scheduled_for": slot,
            "status": "succeeded",
            "kwargs": job.kwargs,
            **fields,
        }
    )


def staff(client, django_user_model, *codenames):
    """Log ``client`` in as a staff user with exactly these tasks_app permissions."""
    user = django_user_model.objects.create_user(f"staff-{'-'.join(codenames) or 'none'}", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="tasks_app", codename__in=codenames))
    client.force_login(user)
    return client


def messages_of(response) -> list[str]:
    """The messages shown on the page a POST redirected to (``follow=True``)."""
    return [str(message) for message in response.context["messages"]]


def listed(response) -> list[str]:
    return sorted(str(obj) for obj in response.context["cl"].result_list)


def act(client, changelist, action, *objs, **extra):
    data = {"action": action, "_selected_action": [obj.pk for obj in objs], **extra}
    return client.post(changelist, data, follow=True)


def form_data(**overrides):
    """A complete add/change form for a cron job, as the browser posts it."""
    data = {
        "name": "nightly-report",
        "description": "",
        "handler": "number_sum",
        "kwargs": '{"x": 1, "y": 2}',
        "schedule_type": "cron",
        "cron_expression": "0 3 * * *",
        "interval_seconds": "",
        "run_at_0": "",
        "run_at_1": "",
        "timezone": "Europe/Amsterdam",
        "enabled": "on",
        "engine": "apscheduler",
        "queue": "default",
        "priority": "5",
        "timeout_seconds": "",
        "max_retries": "",
        "retry_backoff_seconds": "",
        "jitter_seconds": "0",
        "misfire_grace_seconds": "300",
        "alert_after_failures": "0",
        "alert_when_overdue": "on",
        "alert_emails": "",
        "coalesce": "on",
        "max_running": "1",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


# -- the job list ----------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_job_list_costs_the_same_queries_for_30_jobs_as_for_one(
    admin_client, make_job, django_assert_max_num_queries
):
    first = make_job(name="first")
    make_run(first, status="failed")
    with CaptureQueriesContext(connection) as one_job:
        assert admin_client.get(JOBS).status_code == 200
    for i in range(29):
        kind = ("cron", "interval", "once")[i % 3]
        job = make_job(name=f"job-{i:02}", schedule_type=kind, enabled=i % 4 != 0)
        for status in ("succeeded", "failed", "running")[: i % 4]:
            make_run(job, status=status)
    with django_assert_max_num_queries(len(one_job)):
        response = admin_client.get(JOBS)
    assert response.status_code == 200 and len(response.context["cl"].result_list) == 30
    assert 'class="taskhub-badge taskhub-failed">Failed<' in response.text


@pytest.mark.django_db
def test_the_list_shows_schedule_next_run_in_the_jobs_zone_and_the_last_run(admin_client, make_job):
    job = make_job(name="nightly", schedule_type="cron", cron_expression="30 2 * * *", timezone="Europe/Amsterdam")
    make_job(name="paused", enabled=False)
    older = make_run(job, status="failed", created_at=timezone.now() - dt.timedelta(hours=2))
    newest = make_run(
        job,
        status="succeeded",
        created_at=timezone.now() - dt.timedelta(hours=1),
        scheduled_for=older.scheduled_for - dt.timedelta(days=1),
    )
    response = admin_client.get(JOBS)
    row = next(r for r in response.text.split("<tr") if ">nightly<" in r)
    assert escape(describe_schedule(job)) in row
    assert ">02:30:00 CET<" in row or ">02:30:00 CEST<" in row  # next run, in the job's own zone
    assert 'taskhub-succeeded">Succeeded<' in row and run_url("change", newest) in row  # the newest by created_at
    paused_row = next(r for r in response.text.split("<tr") if ">paused<" in r)
    assert 'class="field-next_run">—<' in paused_row


@pytest.mark.django_db
def test_filters_by_last_status_handler_engine_enabled_and_schedule_type(admin_client, make_job):
    failing = make_job(name="failing", handler="fail", kwargs={}, engine="celery")
    make_run(failing, status="succeeded", created_at=timezone.now() - dt.timedelta(hours=1))
    make_run(failing, status="failed")
    fine = make_job(name="fine", schedule_type="cron")
    make_run(fine, status="succeeded")
    make_job(name="never", enabled=False, schedule_type="once")

    def names(**params):
        return listed(admin_client.get(JOBS, params))

    assert names(last_status="failed") == ["failing"]
    assert names(last_status="succeeded") == ["fine"]
    assert names(last_status="never") == ["never"]
    assert names(handler="fail") == ["failing"]
    assert names(handler="number_sum") == ["fine", "never"]
    assert names(engine__exact="celery") == ["failing"]
    assert names(enabled__exact="0") == ["never"]
    assert names(schedule_type__exact="cron") == ["fine"]


@pytest.mark.django_db
def test_the_handler_filter_and_the_form_offer_handlers_registered_at_run_time(admin_client):
    @registry.handler(name="test_late_arrival")
    async def late(n: int) -> int:
        """Registered after the app started."""
        return n

    try:
        handler_filter = next(f for f in admin_client.get(JOBS).context["cl"].filter_specs if f.title == "handler")
        assert "test_late_arrival" in [value for value, _ in handler_filter.lookup_choices]
        choices = dict(
            admin_client.get(reverse("admin:tasks_app_job_add")).context["adminform"].form.fields["handler"].choices
        )
        assert choices["test_late_arrival"] == "test_late_arrival — Registered after the app started."
    finally:
        registry.unregister("test_late_arrival")


@pytest.mark.django_db
def test_a_job_whose_handler_is_gone_still_shows_and_can_be_found(admin_client, make_job):
    job = make_job(name="orphan")
    make_job(name="fine")
    Job.objects.filter(pk=job.pk).update(handler="removed_handler")  # as if its module was dropped
    assert "removed_handler <span" in admin_client.get(JOBS).text  # flagged "not registered"
    assert listed(admin_client.get(JOBS, {"handler": "~unregistered"})) == ["orphan"]
    page = admin_client.get(job_url("change", job))
    assert page.status_code == 200
    assert page.context["adminform"].form.fields["handler"].choices[-1] == (
        "removed_handler",
        "removed_handler — not registered",
    )
    response = admin_client.post(job_url("change", job), form_data(name="orphan", handler="removed_handler"))
    assert response.status_code == 200
    assert "Unknown handler 'removed_handler'" in response.context["adminform"].form.errors["handler"][0]


@pytest.mark.django_db
def test_search_looks_in_name_description_and_handler(admin_client, make_job):
    make_job(name="nightly-report", description="mails the sales figures")
    make_job(name="probe", handler="http_check", kwargs={"url": "https://example.com"})
    assert listed(admin_client.get(JOBS, {"q": "nightly"})) == ["nightly-report"]
    assert listed(admin_client.get(JOBS, {"q": "sales"})) == ["nightly-report"]
    assert listed(admin_client.get(JOBS, {"q": "http_check"})) == ["probe"]


# -- the job form ----------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_add_form_shows_handler_help_and_a_timezone_datalist(admin_client):
    response = admin_client.get(reverse("admin:tasks_app_job_add"))
    assert response.status_code == 200
    html = response.text
    assert 'data-handler="number_sum"' in html and "<code>x: int</code>" in html  # parameters with types
    assert "{&quot;x&quot;: 1, &quot;y&quot;: 1}" in html  # an example kwargs object
    assert 'list="id_timezone_list"' in html and '<option value="Europe/Amsterdam">' in html
    assert 'name="run_at_0"' in html and 'name="run_at_1"' in html  # the admin's split date/time widget


@pytest.mark.django_db
def test_adding_a_cron_job_through_the_form_stores_it(admin_client):
    response = admin_client.post(reverse("admin:tasks_app_job_add"), form_data(cron_expression="0  3 * * 1-5"))
    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    job = Job.objects.get(name="nightly-report")
    assert (job.handler, job.kwargs, job.schedule_type, job.cron_expression, job.timezone, job.engine) == (
        "number_sum",
        {"x": 1, "y": 2},
        "cron",
        "0 3 * * 1-5",
        "Europe/Amsterdam",
        "apscheduler",
    )
    assert job.interval_seconds is None and job.run_at is None and job.enabled


@pytest.mark.django_db
@pytest.mark.parametrize(
    "field, value, error_field",
    [
        ("cron_expression", "61 * * * *", "cron_expression"),
        ("cron_expression", "0 0 31 2 *", "cron_expression"),
        ("timezone", "Mars/Olympus", "timezone"),
        ("kwargs", '{"x": "1", "y": 2}', "kwargs"),
        ("kwargs", "[1, 2", "kwargs"),
        ("handler", "no_such_handler", "handler"),
    ],
)
def test_bad_input_is_a_field_error_and_stores_nothing(admin_client, field, value, error_field):
    response = admin_client.post(reverse("admin:tasks_app_job_add"), form_data(**{field: value}))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors[error_field]
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_changing_a_job_switches_it_to_an_interval(admin_client, make_job):
    job = make_job(name="nightly-report", schedule_type="cron", cron_expression="0 3 * * *")
    data = form_data(schedule_type="interval", interval_seconds="900", engine="celery", priority="2")
    response = admin_client.post(job_url("change", job), data)
    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    job.refresh_from_db()
    assert (job.schedule_type, job.interval_seconds, job.cron_expression, job.engine, job.priority) == (
        "interval",
        900,
        "",
        "celery",
        2,
    )


@pytest.mark.django_db
def test_deleting_a_job_asks_first_and_deletes_its_runs(admin_client, make_job):
    job = make_job(name="doomed")
    make_run(job)
    confirm = admin_client.get(job_url("delete", job))
    assert confirm.status_code == 200 and "Runs: 1" in confirm.text
    response = admin_client.post(job_url("delete", job), {"post": "yes"})
    assert response.status_code == 302
    assert not Job.objects.filter(pk=job.pk).exists() and not JobRun.objects.exists()


@pytest.mark.django_db
def test_a_user_who_may_delete_jobs_may_delete_one_with_runs(client, django_user_model, make_job):
    job = make_job(name="doomed")
    make_run(job)
    staff(client, django_user_model, "view_job", "delete_job")
    response = client.post(job_url("delete", job), {"post": "yes"})
    assert response.status_code == 302 and not Job.objects.filter(pk=job.pk).exists()


# -- job actions -----------------------------------------------------------------------------
@pytest.mark.django_db
def test_enable_and_pause_actions(admin_client, make_job):
    a, b = make_job(name="a", enabled=False), make_job(name="b", enabled=False)
    response = act(admin_client, JOBS, "enable", a, b)
    assert response.redirect_chain == [(JOBS, 302)] and messages_of(response) == ["2 jobs enabled."]
    assert set(Job.objects.values_list("enabled", flat=True)) == {True}
    response = act(admin_client, JOBS, "pause", a, b)
    assert messages_of(response) == ["2 jobs paused."]
    assert set(Job.objects.values_list("enabled", flat=True)) == {False}
    assert messages_of(act(admin_client, JOBS, "pause", a)) == ["No job paused: the selected jobs were already paused."]


@pytest.mark.django_db
def test_an_action_bumps_the_change_marker(admin_client, make_job):
    from tasks_app.models import changes

    job = make_job()
    before = changes.version()
    act(admin_client, JOBS, "pause", job)
    assert changes.version() > before


@pytest.mark.django_db
def test_duplicate_action_makes_paused_copies(admin_client, make_job):
    job = make_job(name="nightly", kwargs={"x": 5, "y": 6})
    response = act(admin_client, JOBS, "duplicate", job)
    assert messages_of(response) == ["1 job duplicated (paused): nightly-copy."]
    copy = Job.objects.get(name="nightly-copy")
    assert (copy.enabled, copy.kwargs, copy.handler) == (False, {"x": 5, "y": 6}, job.handler)


@pytest.mark.django_db
def test_switch_engine_actions_go_both_ways(admin_client, make_job):
    a, b = make_job(name="a", engine="apscheduler"), make_job(name="b", engine="celery")
    assert messages_of(act(admin_client, JOBS, "switch_to_celery", a, b)) == ["1 job switched to Celery."]
    assert set(Job.objects.values_list("engine", flat=True)) == {"celery"}
    assert messages_of(act(admin_client, JOBS, "switch_to_apscheduler", a, b)) == ["2 jobs switched to APScheduler."]
    assert set(Job.objects.values_list("engine", flat=True)) == {"apscheduler"}


@pytest.mark.django_db
def test_actions_work_on_a_filtered_list(admin_client, make_job):
    failing = make_job(name="failing")
    make_run(failing, status="failed")
    response = act(admin_client, f"{JOBS}?last_status=failed", "pause", failing)
    assert messages_of(response) == ["1 job paused."]
    assert not Job.objects.get(pk=failing.pk).enabled


@pytest.mark.django_db(transaction=True)
def test_run_now_action_queues_and_runs_each_job(admin_client, make_job, in_process_engines):
    a, b = make_job(name="a", kwargs={"x": 1, "y": 2}), make_job(name="b", kwargs={"x": 20, "y": 22})
    response = act(admin_client, JOBS, "run_now", a, b)
    [message] = messages_of(response)
    runs = {run.job.name: run for run in JobRun.objects.select_related("job")}
    assert message == f"2 runs queued: a (run #{runs['a'].pk}), b (run #{runs['b'].pk})."
    assert wait_for(lambda: set(JobRun.objects.values_list("status", flat=True)) == {"succeeded"})
    assert sorted(JobRun.objects.values_list("result", flat=True)) == [3, 42]
    assert set(JobRun.objects.values_list("trigger", flat=True)) == {"run_now"}


@pytest.mark.django_db
def test_run_now_is_refused_while_a_run_now_is_still_queued(admin_client, make_job):
    busy, idle = make_job(name="busy"), make_job(name="idle", enabled=False)
    make_run(busy, status="queued", trigger="run_now", scheduled_for=timezone.now())
    JobRun.objects.create(
        job=idle, engine=idle.engine, status="queued", trigger="run_now", scheduled_for=timezone.now()
    )
    response = act(admin_client, JOBS, "run_now", busy, idle)
    assert messages_of(response) == [
        "Not run: a run-now of 'busy' is already queued; a run-now of 'idle' is already queued."
    ]
    assert JobRun.objects.count() == 2


# -- job page: preview, recent runs, buttons -------------------------------------------------
@pytest.mark.django_db
def test_the_job_page_previews_the_next_5_fires_in_the_jobs_zone(admin_client, make_job):
    job = make_job(schedule_type="cron", cron_expression="30 2 * * *", timezone="Europe/Amsterdam")
    html = admin_client.get(job_url("change", job)).text
    preview = html.split('class="taskhub-fires"')[1].split("</ol>")[0]
    assert preview.count("<li>") == 5
    assert preview.count(" 02:30:00 CET (01:30:00 UTC)") + preview.count(" 02:30:00 CEST (00:30:00 UTC)") == 5
    assert "Schedule in words" in html and escape(describe_schedule(job)) in html


@pytest.mark.django_db
def test_the_job_page_lists_its_last_10_runs_with_links_and_progress(admin_client, make_job):
    job = make_job()
    runs = [make_run(job, created_at=timezone.now() - dt.timedelta(minutes=20 - i)) for i in range(12)]
    running = make_run(job, status="running", progress=0.25, progress_message="a quarter")
    html = admin_client.get(job_url("change", job)).text
    table = html.split("Last 10 runs")[1].split("</table>")[0]
    assert table.count("<tr>") == 1 + 10
    assert run_url("change", running) in table and '<progress max="1" value="0.25"' in table
    assert run_url("change", runs[-1]) in table and run_url("change", runs[1]) not in table


@pytest.mark.django_db
def test_the_job_page_polls_its_recent_runs_faster_while_one_is_live(admin_client, make_job):
    job = make_job()
    make_run(job)
    page = admin_client.get(job_url("change", job)).text
    assert f'id="job-runs" data-url="{job_url("runs", job)}" data-live="0"' in page

    running = make_run(job, status="running", progress=0.5, progress_message="half")
    fragment = admin_client.get(job_url("runs", job))
    assert fragment.status_code == 200 and fragment.text.lstrip().startswith('<div id="job-runs"')
    assert 'id="taskhub-history"' in fragment.text  # the chart comes along
    assert 'data-live="1"' in fragment.text and run_url("change", running) in fragment.text
    assert '<progress max="1" value="0.5"' in fragment.text and "<html" not in fragment.text


@pytest.mark.django_db
def test_the_recent_runs_need_permission_to_view_jobs_and_runs(client, django_user_model, make_job):
    job = make_job()
    staff(client, django_user_model)
    assert client.get(job_url("runs", job)).status_code == 403
    assert client.get(reverse("admin:tasks_app_job_runs", args=[987654])).status_code == 403
    client.logout()
    staff(client, django_user_model, "view_job")
    assert client.get(job_url("runs", job)).status_code == 403  # runs need view_jobrun too
    assert 'id="job-runs"' not in client.get(job_url("change", job)).text
    client.logout()
    staff(client, django_user_model, "view_job", "view_jobrun")
    assert client.get(job_url("runs", job)).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_the_run_now_button_queues_a_run_and_returns_to_the_job(admin_client, make_job, in_process_engines):
    job = make_job(name="nightly-report")
    page = admin_client.get(job_url("change", job)).text
    assert f'action="{job_url("run", job)}"' in page
    response = admin_client.post(job_url("run", job), follow=True)
    assert response.redirect_chain == [(job_url("change", job), 302)]
    run = JobRun.objects.get(job=job)
    assert messages_of(response) == [f"Run of nightly-report queued (run #{run.pk})."]
    assert wait_for(lambda: JobRun.objects.get(pk=run.pk).status == "succeeded")
    assert admin_client.get(job_url("run", job)).status_code == 405  # POST only


@pytest.mark.django_db
def test_pause_and_resume_buttons(admin_client, make_job):
    job = make_job(name="nightly")
    assert f'action="{job_url("pause", job)}"' in admin_client.get(job_url("change", job)).text
    response = admin_client.post(job_url("pause", job), follow=True)
    assert response.redirect_chain == [(job_url("change", job), 302)] and messages_of(response) == ["“nightly” paused."]
    assert not Job.objects.get(pk=job.pk).enabled
    assert f'action="{job_url("resume", job)}"' in admin_client.get(job_url("change", job)).text
    assert messages_of(admin_client.post(job_url("resume", job), follow=True)) == ["“nightly” resumed."]
    assert Job.objects.get(pk=job.pk).enabled
    assert admin_client.get(job_url("pause", job)).status_code == 405


@pytest.mark.django_db
def test_the_buttons_are_csrf_protected(make_job, django_user_model):
    from django.test import Client

    job = make_job()
    client = Client(enforce_csrf_checks=True)
    client.force_login(django_user_model.objects.create_superuser("root", password="pw"))
    assert client.post(job_url("pause", job)).status_code == 403
    assert client.post(job_url("run", job)).status_code == 403
    assert Job.objects.get(pk=job.pk).enabled and not JobRun.objects.exists()


# -- permissions -----------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_view_only_user_sees_jobs_read_only_and_cannot_run_them(client, django_user_model, make_job):
    job = make_job()
    staff(client, django_user_model, "view_job")
    changelist = client.get(JOBS)
    assert changelist.status_code == 200 and listed(changelist) == [job.name]
    action_form = changelist.context["action_form"]
    assert action_form is None or "run_now" not in dict(action_form.fields["action"].choices)
    page = client.get(job_url("change", job))
    assert page.status_code == 200 and not page.context["has_change_permission"]
    assert job_url("run", job) not in page.text and job_url("pause", job) not in page.text
    assert client.post(job_url("run", job)).status_code == 403
    assert client.post(job_url("pause", job)).status_code == 403
    assert client.post(job_url("change", job), form_data(name=job.name)).status_code == 403
    assert not JobRun.objects.exists() and Job.objects.get(pk=job.pk).enabled


@pytest.mark.django_db(transaction=True)
def test_a_user_who_may_run_jobs_but_not_change_them_can_run_now(
    client, django_user_model, make_job, in_process_engines
):
    job = make_job(name="nightly")
    staff(client, django_user_model, "view_job", "run_job")
    choices = dict(client.get(JOBS).context["action_form"].fields["action"].choices)
    assert "run_now" in choices and "pause" not in choices
    page = client.get(job_url("change", job))
    assert job_url("run", job) in page.text and job_url("pause", job) not in page.text
    assert not page.context["has_change_permission"]
    assert client.post(job_url("run", job)).status_code == 302
    assert act(client, JOBS, "pause", job).status_code == 200  # not an action this user has: nothing happens
    assert client.post(job_url("change", job), form_data(name="renamed")).status_code == 403
    assert wait_for(lambda: JobRun.objects.filter(job=job, status="succeeded").exists())
    assert Job.objects.get(pk=job.pk).enabled and Job.objects.get(pk=job.pk).name == "nightly"


# -- runs ------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_run_list_shows_badges_links_and_progress_in_constant_queries(
    admin_client, make_job, django_assert_max_num_queries
):
    job = make_job(name="nightly", timezone="Europe/Amsterdam")
    make_run(
        job,
        status="failed",
        error="Traceback...\nRuntimeError: boom",
        duration_seconds=1.25,
        scheduled_for=dt.datetime(2029, 7, 1, 1, 30, tzinfo=dt.UTC),
    )
    with CaptureQueriesContext(connection) as one_run:
        assert admin_client.get(RUNS).status_code == 200
    make_run(job, status="running", progress=0.4, progress_message="40%")
    for i in range(28):
        make_run(make_job(), status=("succeeded", "skipped", "cancelled", "timed_out")[i % 4])
    with django_assert_max_num_queries(len(one_run)):
        response = admin_client.get(RUNS)
    assert len(response.context["cl"].result_list) == 30
    assert 'taskhub-failed">Failed<' in response.text and 'taskhub-running">Running<' in response.text
    assert 'taskhub-cancelled">Cancelled<' in response.text
    assert job_url("change", job) in response.text and "1.2 s" in response.text
    assert '<progress max="1" value="0.4"' in response.text
    assert '>2029-07-01</span> <span class="taskhub-nowrap">03:30:00 CEST<' in response.text  # in its job's zone


@pytest.mark.django_db
def test_run_list_filters_and_search(admin_client, make_job):
    a, b = make_job(name="alpha"), make_job(name="beta", engine="celery")
    make_run(a, status="failed", error="ValueError: disk full")
    make_run(b, status="succeeded", trigger="run_now")
    assert listed(admin_client.get(RUNS, {"status__exact": "failed"}))[0].startswith("alpha")
    assert listed(admin_client.get(RUNS, {"engine__exact": "celery"}))[0].startswith("beta")
    assert listed(admin_client.get(RUNS, {"trigger__exact": "run_now"}))[0].startswith("beta")
    assert listed(admin_client.get(RUNS, {"job__id__exact": a.pk}))[0].startswith("alpha")
    assert [r.split()[0] for r in listed(admin_client.get(RUNS, {"q": "disk full"}))] == ["alpha"]
    assert [r.split()[0] for r in listed(admin_client.get(RUNS, {"q": "beta"}))] == ["beta"]


@pytest.mark.django_db
def test_the_run_page_shows_the_traceback_attempts_and_result(admin_client, make_job):
    job = make_job()
    traceback = 'Traceback (most recent call last):\n  File "x.py", line 1\nRuntimeError: disk <full>'
    run = make_run(
        job,
        status="failed",
        error=traceback,
        attempt=2,
        result={"partial": [1, 2]},
        attempts=[
            {
                "attempt": 1,
                "status": "failed",
                "error": "Traceback...\nValueError: first try",
                "worker": "host:1",
                "started_at": "2030-01-01T00:00:00+00:00",
                "finished_at": "2030-01-01T00:00:02+00:00",
                "duration_seconds": 2.0,
            }
        ],
    )
    response = admin_client.get(run_url("change", run))
    assert response.status_code == 200
    html = response.text
    assert f'<pre class="taskhub-pre taskhub-error">{escape(traceback)}</pre>' in html
    assert "<summary>ValueError: first try</summary>" in html and "host:1" in html and "2.0 s" in html
    assert "&quot;partial&quot;: [\n    1," in html  # pretty JSON
    assert job_url("change", job) in html
    assert 'id="run-progress"' not in html  # a finished run does not poll


@pytest.mark.django_db
def test_a_running_run_shows_a_live_progress_bar_and_its_json(admin_client, make_job):
    run = make_run(make_job(), status="running", progress=0.4, progress_message="40%")
    html = admin_client.get(run_url("change", run)).text
    assert f'id="run-progress" data-url="{run_url("progress", run)}"' in html
    assert '<progress max="1" value="0.4" class="taskhub-progress">40%</progress>' in html
    assert "setTimeout(poll, 2000)" in html
    response = admin_client.get(run_url("progress", run))
    assert response.status_code == 200
    assert response.json() == {
        "status": "running",
        "status_label": "Running",
        "progress": 0.4,
        "progress_message": "40%",
    }


@pytest.mark.django_db
def test_the_progress_endpoint_needs_view_permission(client, django_user_model, make_job):
    run = make_run(make_job(), status="running", progress=0.4)
    staff(client, django_user_model, "view_job")
    assert client.get(run_url("progress", run)).status_code == 403
    assert client.get(reverse("admin:tasks_app_jobrun_progress", args=[987654])).status_code == 403


@pytest.mark.django_db
def test_runs_cannot_be_added_or_changed_and_only_superusers_delete(admin_client, client, django_user_model, make_job):
    run = make_run(make_job())
    assert admin_client.get(reverse("admin:tasks_app_jobrun_add")).status_code == 403
    page = admin_client.get(run_url("change", run))
    assert not page.context["has_change_permission"] and 'name="_save"' not in page.text
    assert admin_client.post(run_url("change", run), {"status": "failed"}).status_code == 403
    staff(client, django_user_model, "view_jobrun", "delete_jobrun", "view_job")
    assert client.get(run_url("delete", run)).status_code == 403
    choices = client.get(RUNS).context["action_form"]
    assert choices is None or "delete_selected" not in dict(choices.fields["action"].choices)
    assert JobRun.objects.filter(pk=run.pk).exists()
    assert admin_client.post(run_url("delete", run), {"post": "yes"}).status_code == 302
    assert not JobRun.objects.filter(pk=run.pk).exists()


@pytest.mark.django_db
def test_cancel_action_cancels_queued_and_asks_running_runs_to_stop(admin_client, make_job):
    job = make_job()
    queued, running, done = (make_run(job, status=s) for s in ("queued", "running", "succeeded"))
    response = act(admin_client, RUNS, "cancel", queued, running, done)
    assert messages_of(response) == [
        "Cancel requested for 2 runs: queued ones are cancelled, running ones stop at their next heartbeat."
    ]
    queued.refresh_from_db(), running.refresh_from_db(), done.refresh_from_db()
    assert queued.status == "cancelled" and running.cancel_requested and done.status == "succeeded"
    assert messages_of(act(admin_client, RUNS, "cancel", done)) == [
        "No run cancelled: none of the selected runs is queued or running."
    ]


@pytest.mark.django_db(transaction=True)
def test_retry_action_runs_a_failed_run_again_in_a_new_slot(admin_client, make_job, in_process_engines):
    job = make_job(name="nightly", kwargs={"x": 1, "y": 2})
    failed = make_run(job, status="failed", kwargs={"x": 40, "y": 2}, error="RuntimeError: boom")
    fine = make_run(job, status="succeeded")
    response = act(admin_client, RUNS, "retry", failed, fine)
    retry = JobRun.objects.get(trigger="retry")
    assert messages_of(response) == [f"Retry of nightly queued (run #{retry.pk})."]
    assert retry.scheduled_for != failed.scheduled_for and retry.kwargs == {"x": 40, "y": 2}
    assert wait_for(lambda: JobRun.objects.get(pk=retry.pk).status == "succeeded")
    assert JobRun.objects.get(pk=retry.pk).result == 42
    assert messages_of(act(admin_client, RUNS, "retry", fine)) == [
        "No run retried: only failed or timed-out runs can be retried."
    ]


@pytest.mark.django_db
def test_run_actions_need_the_run_job_permission(client, django_user_model, make_job):
    run = make_run(make_job(), status="queued")
    staff(client, django_user_model, "view_jobrun", "view_job")
    action_form = client.get(RUNS).context["action_form"]
    assert action_form is None or not {"cancel", "retry"} & set(dict(action_form.fields["action"].choices))
    act(client, RUNS, "cancel", run)
    assert JobRun.objects.get(pk=run.pk).status == "queued"


@pytest.mark.django_db(transaction=True)
def test_run_now_without_a_live_apscheduler_says_the_run_waits(admin_client, make_job):
    job = make_job(engine="apscheduler")
    response = admin_client.post(
        reverse("admin:tasks_app_job_changelist"), {"action": "run_now", "_selected_action": [job.pk]}, follow=True
    )
    [run] = JobRun.objects.filter(job=job)
    text = " ".join(str(m) for m in response.context["messages"])
    assert run.status == "queued"
    assert (
        f"{job.name} (run #{run.pk}) is queued, but the APScheduler process (manage.py runapscheduler) is not running"
        in text
    )
    assert "Not run" not in text
