"""The audit trail: every admin action writes a LogEntry saying what changed; API runs name their client."""

import datetime as dt
import itertools
import threading

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import connection, connections
from django.urls import reverse
from django.utils import timezone

from tasks_app.models import ApiClient, Job, JobRun
from tests.helpers import wait_for
from tests.test_admin import JOBS, RUNS, act, form_data, job_url, make_run, messages_of, run_url, staff
from tests.test_api import call, trigger

CLIENTS = reverse("admin:tasks_app_apiclient_changelist")
_slots = itertools.count(1)


def entries(obj) -> list[tuple[int, str, str]]:
    """``(flag, message, user)`` of each LogEntry of ``obj``, oldest first."""
    rows = LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(obj), object_id=str(obj.pk)).order_by(
        "action_time", "pk"
    )
    return [(row.action_flag, row.get_change_message(), row.user.get_username()) for row in rows]


def history(client, obj) -> str:
    return client.get(reverse(f"admin:tasks_app_{obj._meta.model_name}_history", args=[obj.pk])).text


def recent_actions(client) -> str:
    return client.get(reverse("admin:index")).text.split('id="recent-actions-module"')[1]


@pytest.fixture
def live_engines(memory_engines):
    """Runs requested from the admin are executed in this process: the audit trail is under test, not an engine."""
    return memory_engines


# -- job actions -----------------------------------------------------------------------------
@pytest.mark.django_db
def test_enable_and_pause_actions_log_each_job_they_changed(admin_client, admin_user, make_job):
    paused, running = make_job(name="paused", enabled=False), make_job(name="running")
    act(admin_client, JOBS, "enable", paused, running)
    assert entries(paused) == [(CHANGE, "Enabled.", "admin")]
    assert entries(running) == []  # already enabled: nothing changed, nothing logged
    act(admin_client, JOBS, "pause", paused, running)
    assert entries(paused)[-1] == (CHANGE, "Paused.", "admin") and entries(running) == [(CHANGE, "Paused.", "admin")]
    recent = recent_actions(admin_client)
    assert f'href="{job_url("change", running)}">running</a>' in recent
    assert f'href="{job_url("change", paused)}">paused</a>' in recent


@pytest.mark.django_db
def test_the_pause_and_resume_buttons_log_the_change(admin_client, make_job):
    job = make_job(name="nightly")
    admin_client.post(job_url("pause", job))
    admin_client.post(job_url("pause", job))  # already paused: no second entry
    admin_client.post(job_url("resume", job))
    assert entries(job) == [(CHANGE, "Paused.", "admin"), (CHANGE, "Resumed.", "admin")]


@pytest.mark.django_db(transaction=True)
def test_of_two_people_pausing_a_job_at_once_only_the_one_who_changed_it_is_logged(admin_client, make_job):
    """The second waits for the first one's row lock, then finds the job paused: no second entry."""
    import psycopg

    job = make_job(name="nightly")
    params = {k: v for k, v in connection.get_connection_params().items() if k not in ("cursor_factory", "context")}
    responses = []
    with psycopg.connect(**params) as first, psycopg.connect(**params, autocommit=True) as watcher:
        first.execute("UPDATE tasks_app_job SET enabled = false WHERE id = %s", [job.pk])  # in flight

        def pause_too():
            try:
                responses.append(admin_client.post(job_url("pause", job), follow=True))
            finally:
                connections.close_all()  # this thread's own connection

        second = threading.Thread(target=pause_too)
        second.start()

        def waiting():
            return watcher.execute(
                "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
                ['%tasks_app_job"%'],
            ).fetchone()

        assert wait_for(waiting, timeout=10), "the second pause never waited for the first"
        first.commit()
        second.join(30)
    assert messages_of(responses[0]) == ["“nightly” was already paused."]
    assert entries(job) == [] and not Job.objects.get(pk=job.pk).enabled


@pytest.mark.django_db
def test_switch_engine_logs_from_what_to_what(admin_client, make_job):
    a, b = make_job(name="a", engine="apscheduler"), make_job(name="b", engine="celery")
    act(admin_client, JOBS, "switch_to_celery", a, b)
    assert entries(a) == [(CHANGE, "Switched engine from APScheduler to Celery.", "admin")] and entries(b) == []


@pytest.mark.django_db
def test_duplicate_logs_the_copy_as_added_and_the_original(admin_client, make_job):
    job = make_job(name="nightly")
    act(admin_client, JOBS, "duplicate", job)
    copy = Job.objects.get(name="nightly-copy")
    assert entries(copy) == [(ADDITION, "Added as a paused copy of “nightly”.", "admin")]
    assert entries(job) == [(CHANGE, "Duplicated as “nightly-copy” (paused).", "admin")]


@pytest.mark.django_db
def test_a_user_without_the_permission_leaves_no_entry(client, django_user_model, make_job):
    job = make_job()
    staff(client, django_user_model, "view_job")
    act(client, JOBS, "pause", job)
    assert client.post(job_url("pause", job)).status_code == 403
    assert entries(job) == [] and Job.objects.get(pk=job.pk).enabled


@pytest.mark.django_db(transaction=True)
def test_run_now_logs_the_run_on_its_job_and_the_run_names_who_asked(admin_client, make_job, live_engines):
    a, b = make_job(name="a"), make_job(name="b")
    act(admin_client, JOBS, "run_now", a, b)
    admin_client.post(job_url("run", a))
    runs = list(JobRun.objects.filter(job=a).order_by("pk"))
    [run_b] = JobRun.objects.filter(job=b)
    assert entries(a) == [(CHANGE, f"Run now: run #{run.pk} queued.", "admin") for run in runs]
    assert entries(b) == [(CHANGE, f"Run now: run #{run_b.pk} queued.", "admin")]
    assert {run.requested_by for run in [*runs, run_b]} == {"user admin"}
    page = admin_client.get(run_url("change", run_b)).text
    assert "Requested by" in page and "user admin" in page
    assert wait_for(lambda: not JobRun.objects.filter(status__in=["queued", "running"]).exists())


@pytest.mark.django_db
def test_a_refused_run_now_logs_nothing(admin_client, make_job):
    job = make_job()
    make_run(job, status="queued", trigger="run_now", scheduled_for=timezone.now())
    act(admin_client, JOBS, "run_now", job)
    assert entries(job) == []


# -- run actions -----------------------------------------------------------------------------
@pytest.mark.django_db
def test_cancel_logs_each_live_run_and_its_job(admin_client, make_job):
    job = make_job(name="nightly")
    queued, running, done = (make_run(job, status=s) for s in ("queued", "running", "succeeded"))
    act(admin_client, RUNS, "cancel", queued, running, done)
    assert entries(queued) == [(CHANGE, "Cancel requested (it was queued: cancelled).", "admin")]
    assert entries(running) == [(CHANGE, "Cancel requested (it was running: it stops at its next heartbeat).", "admin")]
    assert entries(done) == []
    assert sorted(message for _, message, _ in entries(job)) == [
        f"Cancel requested for run #{queued.pk} (it was queued: cancelled).",
        f"Cancel requested for run #{running.pk} (it was running: it stops at its next heartbeat).",
    ]
    assert "Cancel requested (it was queued: cancelled)." in history(admin_client, queued)


@pytest.mark.django_db(transaction=True)
def test_retry_logs_the_new_run_on_the_failed_run_and_its_job(admin_client, make_job, live_engines):
    job = make_job(name="nightly")
    failed = make_run(job, status="failed", error="RuntimeError: boom")
    act(admin_client, RUNS, "retry", failed)
    retry = JobRun.objects.get(trigger="retry")
    assert entries(failed) == [(CHANGE, f"Retried as run #{retry.pk}.", "admin")]
    assert entries(job) == [(CHANGE, f"Retry of run #{failed.pk} queued as run #{retry.pk}.", "admin")]
    assert retry.requested_by == "user admin"
    assert wait_for(lambda: JobRun.objects.get(pk=retry.pk).status == "succeeded")


@pytest.mark.django_db(transaction=True)
def test_a_jobs_history_shows_edits_and_actions_together_and_keeps_them_after_its_runs_go(
    admin_client, make_job, live_engines
):
    job = make_job(name="nightly-report", schedule_type="cron", cron_expression="0 3 * * *")
    admin_client.post(job_url("change", job), form_data(cron_expression="0 4 * * *"))
    admin_client.post(job_url("pause", job))
    admin_client.post(job_url("run", job))
    assert wait_for(lambda: JobRun.objects.filter(job=job, status="succeeded").exists())
    failed = make_run(job, status="failed")
    act(admin_client, RUNS, "retry", failed)
    assert wait_for(lambda: JobRun.objects.filter(job=job, trigger="retry", status="succeeded").exists())
    act(admin_client, JOBS, "switch_to_celery", job)
    JobRun.objects.filter(job=job).delete()  # retention

    page = history(admin_client, job)
    expected = ["Cron expression", "Paused.", "Run now: run #", "Retry of run #", "Switched engine from"]
    positions = [page.index(text) for text in expected]
    assert positions == sorted(positions), "the history is in the order things happened"


@pytest.mark.django_db
def test_rotating_a_secret_is_logged_on_the_client(admin_client):
    client, _ = ApiClient.objects.create_client(name="deploy")
    admin_client.post(CLIENTS, {"action": "rotate_secret", "_selected_action": [client.pk]})
    assert entries(client) == [(CHANGE, "Rotated the secret.", "admin")]


# -- API runs --------------------------------------------------------------------------------
@pytest.fixture
def ci():
    client, secret = ApiClient.objects.create_client(name="ci", all_jobs=True)
    client.plain = secret
    return client


@pytest.mark.django_db(transaction=True)
def test_an_api_run_names_its_client_on_the_run_page(admin_client, make_job, ci, live_engines):
    job = make_job(name="add-numbers")
    run_id = trigger(job.name, ci).json()["run"]
    run = JobRun.objects.get(pk=run_id)
    assert (run.api_client_id, run.requested_by) == (ci.pk, f"API client ci ({ci.key_id})")
    page = admin_client.get(run_url("change", run)).text
    assert (
        f'<a href="{reverse("admin:tasks_app_apiclient_change", args=[ci.pk])}">API client ci ({ci.key_id})</a>' in page
    )
    assert wait_for(lambda: JobRun.objects.get(pk=run_id).status == "succeeded")


@pytest.mark.django_db
def test_a_user_who_may_not_view_clients_sees_the_name_without_a_link(client, django_user_model, make_job, ci):
    job = make_job()
    run = make_run(job, trigger="api", requested_by=ci.requester, api_client=ci)
    staff(client, django_user_model, "view_jobrun", "view_job")
    page = client.get(run_url("change", run)).text
    assert ci.requester in page and reverse("admin:tasks_app_apiclient_change", args=[ci.pk]) not in page


@pytest.mark.django_db(transaction=True)
def test_deleting_a_client_keeps_who_asked_and_grants_nobody_its_runs(admin_client, make_job, ci, live_engines):
    job = make_job(name="add-numbers")
    run_id = trigger(job.name, ci).json()["run"]
    assert wait_for(lambda: JobRun.objects.get(pk=run_id).status == "succeeded")
    requester = ci.requester
    admin_client.post(reverse("admin:tasks_app_apiclient_delete", args=[ci.pk]), {"post": "yes"})
    assert not ApiClient.objects.filter(pk=ci.pk).exists()

    run = JobRun.objects.get(pk=run_id)  # the run stays, with who asked; only the link is gone
    assert (run.api_client_id, run.requested_by) == (None, requester)
    assert f"{requester} (deleted since)" in admin_client.get(run_url("change", run)).text

    # A new client of the same name is another client: it is not linked to the old runs, and it
    # reads a run only through its own jobs, as any client does.
    again, secret = ApiClient.objects.create_client(name="ci")
    again.plain = secret
    assert not JobRun.objects.filter(api_client=again).exists()
    assert call("GET", f"/api/runs/{run_id}", again).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_asking_for_a_run_grants_no_access_to_it_later(make_job, ci, live_engines):
    job = make_job(name="add-numbers")
    run_id = trigger(job.name, ci).json()["run"]
    assert wait_for(lambda: JobRun.objects.get(pk=run_id).status == "succeeded")
    assert call("GET", f"/api/runs/{run_id}", ci).status_code == 200
    ApiClient.objects.filter(pk=ci.pk).update(all_jobs=False)  # its scope shrinks to no job
    assert call("GET", f"/api/runs/{run_id}", ci).status_code == 404


@pytest.mark.django_db
def test_scheduled_runs_and_old_runs_say_nobody_asked(admin_client, make_job):
    run = make_run(make_job(), scheduled_for=dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    page = admin_client.get(run_url("change", run)).text
    assert "Requested by" in page and run.requested_by == "" and run.api_client_id is None
