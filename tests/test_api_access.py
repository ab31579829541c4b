"""Access through the trigger API fails closed: a client reaches only the jobs it was explicitly given.

"All jobs" is a choice stored on the client, never read from an empty job list; whatever can
disappear (a job, the client, its enabled flag, its secret) takes access with it. A job or run
outside the client's scope answers exactly as one that does not exist.
"""

import pytest
from django.db import connection, transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks_app.models import Job, JobRun
from tasks_app.models.api_clients import ApiClient, _fernet
from tests.factories import job_factory
from tests.test_api import call, error_of, make_run

NAMES = ("alpha", "bravo", "charlie", "delta", "echo")
TIME_DEPENDENT = {"Expires", "Date"}  # never_cache stamps the current second


def restricted(name="restricted", jobs=(), **fields):
    client, secret = ApiClient.objects.create_client(name=name, allowed_jobs=jobs, **fields)
    client.plain = secret
    return client


def trigger(name, client):
    return call("POST", f"/api/jobs/{name}/trigger", client)


def answer(response):
    """Everything a client sees of a response, but the clock."""
    headers = sorted((k, v) for k, v in response.headers.items() if k not in TIME_DEPENDENT)
    return response.status_code, headers, response.content


# -- the reported defect: deleting a client's only job made it unrestricted -----------------
@pytest.mark.django_db
def test_a_restricted_client_whose_jobs_are_deleted_reaches_nothing(memory_engines):
    echo, other = job_factory(name="echo"), job_factory(name="other")
    run = make_run(other)
    client = restricted(jobs=[echo])
    echo.delete()
    assert error_of(trigger("other", client), 404) == "no job named 'other'"
    assert error_of(call("GET", f"/api/runs/{run.pk}", client), 404) == f"no run {run.pk}"
    assert JobRun.objects.count() == 1


@pytest.mark.django_db
def test_a_client_given_no_jobs_reaches_none_and_one_given_all_reaches_new_ones(memory_engines):
    job_factory(name="before")
    nothing, everything = restricted("nothing"), restricted("everything", all_jobs=True)
    job_factory(name="after")
    for name in ("before", "after"):
        assert error_of(trigger(name, nothing), 404) == f"no job named '{name}'"
        assert trigger(name, everything).status_code == 202


@pytest.mark.django_db
def test_a_job_or_run_not_yours_answers_exactly_as_one_that_does_not_exist(memory_engines):
    mine, theirs = job_factory(name="mine"), job_factory(name="theirs", enabled=False)
    run = make_run(theirs)
    client = restricted(jobs=[mine])
    not_yours = answer(trigger("theirs", client)), answer(call("GET", f"/api/runs/{run.pk}", client))
    assert not_yours[0][0] == not_yours[1][0] == 404  # not 403, not 409 "paused": nothing about the job
    assert b"theirs" not in not_yours[1][2]  # the run's job is not named
    theirs.delete()
    assert (answer(trigger("theirs", client)), answer(call("GET", f"/api/runs/{run.pk}", client))) == not_yours


@pytest.mark.django_db
def test_the_scope_is_read_from_the_rows_at_request_time(memory_engines):
    """A client loaded before it was disabled, deleted or emptied grants nothing afterwards."""
    job = job_factory(name="echo")
    for change in (
        lambda c: ApiClient.objects.filter(pk=c.pk).update(enabled=False),
        lambda c: ApiClient.objects.filter(pk=c.pk).update(all_jobs=False),
        lambda c: ApiClient.objects.filter(pk=c.pk).delete(),
    ):
        client = restricted(all_jobs=True)
        assert client.jobs().filter(pk=job.pk).exists()
        change(client)
        assert not client.jobs().exists()
        ApiClient.objects.filter(pk=client.pk).delete()
    assert not ApiClient(name="unsaved", all_jobs=True).jobs().exists()


@pytest.mark.django_db
def test_a_secret_that_decrypts_to_nothing_verifies_nothing(memory_engines):
    """An empty HMAC key is one anyone can sign with: such a row (raw SQL, a bad migration) is refused."""
    job = job_factory()
    client = restricted(all_jobs=True)
    ApiClient.objects.filter(pk=client.pk).update(secret_encrypted=_fernet().encrypt(b"").decode())
    client.plain = ""
    assert "cannot be verified" in error_of(trigger(job.name, client), 401)
    assert not JobRun.objects.exists()


# -- the property: random jobs, scopes and deletions -----------------------------------------
names = st.sets(st.sampled_from(NAMES))


@pytest.mark.django_db
def test_a_client_never_reaches_a_job_outside_its_explicit_scope(memory_engines):
    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        before=names,
        after=names,
        allowed=names,
        deleted=names,
        all_jobs=st.booleans(),
        fate=st.sampled_from([None, None, None, *REVOKED]),
    )
    def scope_holds(before, after, allowed, deleted, all_jobs, fate):
        after -= before
        with transaction.atomic():
            check_scope(before, after, allowed & before, deleted & (before | after), all_jobs, fate)
            transaction.set_rollback(True)

    scope_holds()


# What can happen to a client after it was given its scope, and the refusal each one gets.
REVOKED = {
    "disabled": (lambda c: ApiClient.objects.filter(pk=c.pk).update(enabled=False), "this API key is disabled"),
    "deleted": (lambda c: ApiClient.objects.filter(pk=c.pk).delete(), "unknown API key"),
    "rotated": (lambda c: c.rotate_secret(), "bad signature"),
}


def check_scope(before, after, allowed, deleted, all_jobs, fate):
    jobs = {name: job_factory(name=name) for name in sorted(before)}
    runs = {name: make_run(job).pk for name, job in jobs.items()}
    client = restricted(jobs=[jobs[name] for name in allowed], all_jobs=all_jobs)
    jobs.update({name: job_factory(name=name) for name in sorted(after)})
    runs.update({name: make_run(jobs[name]).pk for name in sorted(after)})
    Job.objects.filter(name__in=deleted).delete()
    if fate:
        REVOKED[fate][0](client)
    existing = set(jobs) - deleted
    reachable = set() if fate else existing if all_jobs else allowed - deleted

    refused = {}
    for name in NAMES:
        status = call("GET", f"/api/runs/{runs[name]}", client) if name in runs else None
        triggered = trigger(name, client)
        if fate:
            assert error_of(triggered, 401) == REVOKED[fate][1]
            assert status is None or error_of(status, 401) == REVOKED[fate][1]
        elif name in reachable:
            assert triggered.status_code == 202 and status.status_code == 200, (name, triggered.content)
        else:
            assert error_of(triggered, 404) == f"no job named '{name}'"
            refused[name] = answer(triggered), status and answer(status)
    # Now nothing exists: every refusal above must have been indistinguishable from that.
    Job.objects.all().delete()
    for name, (triggered, status) in refused.items():
        assert answer(trigger(name, client)) == triggered
        if status is not None:
            assert answer(call("GET", f"/api/runs/{runs[name]}", client)) == status
    assert set(JobRun.objects.filter(trigger="api").values_list("job__name", flat=True)) <= reachable


# -- existing clients keep their meaning through the migration -------------------------------
@pytest.mark.django_db(transaction=True)
def test_the_migration_gives_clients_with_no_jobs_all_jobs_and_keeps_restricted_ones():
    from django.db.migrations.executor import MigrationExecutor

    before, after = [("tasks_app", "0003_api_clients")], [("tasks_app", "0004_apiclient_all_jobs")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps
        job = old.get_model("tasks_app", "Job").objects.create(
            name="echo",
            handler="number_sum",
            kwargs={"x": 1, "y": 2},
            schedule_type="interval",
            interval_seconds=3600,
            engine="apscheduler",
            timezone="UTC",
        )
        OldClient = old.get_model("tasks_app", "ApiClient")
        OldClient.objects.create(name="unrestricted", key_id="thk_a", secret_encrypted="x", created_at=timezone.now())
        OldClient.objects.create(
            name="restricted", key_id="thk_b", secret_encrypted="x", created_at=timezone.now()
        ).allowed_jobs.set([job.pk])
        MigrationExecutor(connection).migrate(after)
    finally:  # the later tests need the current schema whatever happened here
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    assert dict(ApiClient.objects.values_list("name", "all_jobs")) == {"unrestricted": True, "restricted": False}


@pytest.mark.django_db(transaction=True)
def test_migrating_back_switches_off_a_client_that_may_use_no_job():
    """The old schema reads an empty list as all jobs: going back must not widen a client."""
    from django.db.migrations.executor import MigrationExecutor

    job = job_factory(name="echo")
    restricted("none")
    restricted("all", all_jobs=True)
    ApiClient.objects.filter(name="all").get().allowed_jobs.set([job])  # as a raw write could leave it
    restricted("some", jobs=[job])
    before = [("tasks_app", "0003_api_clients")]
    executor = MigrationExecutor(connection)
    try:
        executor.migrate(before)
        old = executor.loader.project_state(before).apps.get_model("tasks_app", "ApiClient")
        state = {c.name: (c.enabled, c.allowed_jobs.count()) for c in old.objects.all()}
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    assert state == {"none": (False, 0), "all": (True, 0), "some": (True, 1)}


@pytest.mark.django_db
def test_a_client_deleted_in_the_admin_is_refused(admin_client, memory_engines):
    from django.urls import reverse

    job = job_factory()
    gone, kept = restricted("gone", all_jobs=True), restricted("kept", all_jobs=True)
    changelist = reverse("admin:tasks_app_apiclient_changelist")
    response = admin_client.post(
        changelist, {"action": "delete_selected", "_selected_action": [gone.pk], "post": "yes"}
    )
    assert response.status_code == 302 and list(ApiClient.objects.values_list("name", flat=True)) == ["kept"]
    assert error_of(trigger(job.name, gone), 401) == "unknown API key"
    assert trigger(job.name, kept).status_code == 202
