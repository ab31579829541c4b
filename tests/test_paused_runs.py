"""One rule for running a paused job, kept by every way in (``run_requests.check_runnable``).

Pausing a job pauses its schedule. A person may still run it on purpose — the admin's Run now
and Retry, ``manage.py run_job`` — and is told that the schedule stays paused; an API client
gets 409 unless it is allowed to run paused jobs (``ApiClient.may_run_paused``).
"""

import json

import pytest
from django.core.management import call_command
from django.urls import reverse

from tasks_app.exceptions import RunRefused
from tasks_app.models import JobRun
from tasks_app.models.api_clients import ApiClient
from tasks_app.runner import run_requests
from tests.helpers import wait_for
from tests.test_api import call


@pytest.fixture
def paused(make_job):
    return make_job(name="paused", enabled=False)


def succeeded(run_id) -> bool:
    return bool(wait_for(lambda: JobRun.objects.get(pk=run_id).status == "succeeded"))


@pytest.mark.django_db
def test_the_rule_a_person_may_an_api_client_may_not_unless_allowed(paused):
    run_requests.check_runnable(paused, paused_allowed=True)
    with pytest.raises(RunRefused, match=r"^job 'paused' is paused \(this API client may not run paused jobs\)$"):
        run_requests.check_runnable(paused, paused_allowed=False)
    with pytest.raises(RunRefused):
        run_requests.queue_run(paused, "api")  # an API trigger is refused unless the caller says otherwise
    assert run_requests.queue_run(paused, "run_now").status == "queued"
    assert run_requests.queue_run(paused, "api", paused_allowed=True).trigger == "api"


@pytest.mark.django_db(transaction=True)
def test_the_admin_runs_a_paused_job_and_says_its_schedule_stays_paused(admin_client, paused, memory_engines):
    response = admin_client.post(reverse("admin:tasks_app_job_run", args=[paused.pk]), follow=True)
    run = JobRun.objects.get(job=paused)
    assert [str(m) for m in response.context["messages"]] == [
        f"Run of paused queued (run #{run.pk}).",
        "Paused, so this run only: paused (the schedule stays paused until resumed).",
    ]
    assert succeeded(run.pk)
    paused.refresh_from_db()
    assert not paused.enabled


@pytest.mark.django_db(transaction=True)
def test_run_job_runs_a_paused_job_and_says_so(paused, capsys):
    call_command("run_job", "paused")
    out, err = capsys.readouterr()
    assert json.loads(out) == 3
    assert err == "'paused' is paused: it ran once on request; its schedule stays paused\n"


@pytest.mark.django_db
def test_the_api_refuses_a_paused_job_unless_the_client_may_run_paused_jobs(paused, memory_engines):
    client, secret = ApiClient.objects.create_client(name="ci", all_jobs=True)
    client.plain = secret
    refused = call("POST", "/api/jobs/paused/trigger", client)
    assert refused.status_code == 409
    assert refused.json() == {"error": "job 'paused' is paused (this API client may not run paused jobs)"}
    assert not JobRun.objects.exists()
    ApiClient.objects.filter(pk=client.pk).update(may_run_paused=True)
    client.refresh_from_db()
    client.plain = secret
    accepted = call("POST", "/api/jobs/paused/trigger", client)
    assert accepted.status_code == 202
    assert JobRun.objects.get().trigger == "api"


@pytest.mark.django_db
def test_the_api_client_form_offers_the_choice(admin_client):
    page = admin_client.get(reverse("admin:tasks_app_apiclient_add")).text
    assert 'name="may_run_paused"' in page and "May trigger a job that is paused" in page
    assert not ApiClient._meta.get_field("may_run_paused").default
