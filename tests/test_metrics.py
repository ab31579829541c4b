"""/metrics: each family's values against rows made here, read back with prometheus-client's parser.

The run counters are also checked to stay monotonic across retention and the tally's folds
(a hypothesis search over sequences of runs, folds and cleanups), and the access rules
(bearer token when set, loopback only otherwise) through the test client's REMOTE_ADDR.
"""

import datetime as dt
import socket
from collections import Counter

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import F
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from tasks_app.alerts.overdue import sweep
from tasks_app.models import Job, JobRun, RunCountMark, SchedulerHeartbeat
from tasks_app.models.retention import delete_runs_older_than
from tasks_app.models.run_counts import RunTally
from tasks_app.models.run_totals import FOLD_LAG, fold, totals
from tests.factories import job_factory
from tests.helpers import clean_env, python

pytestmark = pytest.mark.django_db

LOOPBACK = {"REMOTE_ADDR": "127.0.0.1"}
FINISHED_STATUSES = ["succeeded", "failed", "timed_out", "cancelled", "skipped"]


def scrape(client, **extra) -> dict[str, list]:
    """``{family name: [samples]}`` of one scrape (every sample of a family, its suffixed names included)."""
    response = client.get("/metrics", **{**LOOPBACK, **extra})
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return {family.name: family.samples for family in text_string_to_metric_families(response.content.decode())}


def value(families, sample_name: str, **labels) -> float | None:
    family = sample_name.removesuffix("_total").removesuffix("_bucket")
    found = [s.value for s in families.get(family, []) if s.name == sample_name and s.labels == labels]
    assert len(found) <= 1, found
    return found[0] if found else None


def run(job, status, ago=dt.timedelta(days=1), **fields) -> JobRun:
    """A run of ``job`` in ``status``, its slot ``ago`` before now (unique per call)."""
    run.slot = getattr(run, "slot", 0) + 1
    slot = timezone.now() - ago - dt.timedelta(microseconds=run.slot)
    finished = status in FINISHED_STATUSES
    fields = {"finished_at": slot + dt.timedelta(seconds=1) if finished else None, **fields}
    return JobRun.objects.create(job=job, engine=job.engine, status=status, scheduled_for=slot, **fields)


# -- the families ------------------------------------------------------------------------------
def test_runs_total_counts_each_final_status_per_job_and_engine(client, make_job):
    one, two = make_job(engine="celery"), make_job(engine="apscheduler")
    for status, count in [("succeeded", 3), ("failed", 2), ("timed_out", 1), ("queued", 2), ("running", 1)]:
        for _ in range(count):
            run(one, status)
    run(two, "skipped")
    run(two, "cancelled")
    families = scrape(client)
    assert families["taskhub_runs"][0].name == "taskhub_runs_total"
    assert value(families, "taskhub_runs_total", job=one.name, engine="celery", status="succeeded") == 3
    assert value(families, "taskhub_runs_total", job=one.name, engine="celery", status="failed") == 2
    assert value(families, "taskhub_runs_total", job=one.name, engine="celery", status="timed_out") == 1
    assert value(families, "taskhub_runs_total", job=two.name, engine="apscheduler", status="skipped") == 1
    assert value(families, "taskhub_runs_total", job=two.name, engine="apscheduler", status="cancelled") == 1
    statuses = {s.labels["status"] for s in families["taskhub_runs"]}
    assert statuses == {"succeeded", "failed", "timed_out", "skipped", "cancelled"}  # never queued or running


def test_duplicate_claims_are_summed_per_job_and_start_at_zero(client, make_job):
    claimed, quiet = make_job(engine="celery"), make_job(engine="celery")
    run(claimed, "succeeded", duplicate_claims=2)
    run(claimed, "running", duplicate_claims=1)
    run(quiet, "succeeded")
    families = scrape(client)
    assert value(families, "taskhub_duplicate_claims_total", job=claimed.name, engine="celery") == 3
    assert value(families, "taskhub_duplicate_claims_total", job=quiet.name, engine="celery") == 0


def test_duration_histogram_counts_the_last_hours_runs_under_each_bucket(client, make_job):
    job = make_job(engine="celery")
    for seconds in (0.05, 0.3, 2.0, 50.0, 4000.0):
        run(job, "succeeded", ago=dt.timedelta(minutes=10), duration_seconds=seconds)
    run(job, "failed", ago=dt.timedelta(hours=3), duration_seconds=0.01)  # finished before the window
    run(job, "skipped", ago=dt.timedelta(minutes=10))  # no duration
    families = scrape(client)
    buckets = {
        s.labels["le"]: s.value
        for s in families["taskhub_run_duration_seconds"]
        if s.name.endswith("_bucket") and s.labels["engine"] == "celery"
    }
    assert buckets["0.1"] == 1 and buckets["0.5"] == 2 and buckets["2.5"] == 3
    assert buckets["60.0"] == 4 and buckets["3600.0"] == 4 and buckets["+Inf"] == 5
    assert value(families, "taskhub_run_duration_seconds_gcount", engine="celery") == 5
    assert value(families, "taskhub_run_duration_seconds_gsum", engine="celery") == pytest.approx(4052.35)
    assert value(families, "taskhub_run_duration_seconds_gcount", engine="apscheduler") == 0


def test_lateness_histogram_is_start_minus_slot_of_first_attempts(client, make_job):
    job = make_job(engine="apscheduler")
    for late in (0.005, 0.2, 7.0):
        r = run(job, "succeeded", ago=dt.timedelta(minutes=5))
        JobRun.objects.filter(pk=r.pk).update(started_at=r.scheduled_for + dt.timedelta(seconds=late))
    retried = run(job, "failed", ago=dt.timedelta(minutes=5), attempt=2)
    JobRun.objects.filter(pk=retried.pk).update(started_at=retried.scheduled_for + dt.timedelta(seconds=100))
    families = scrape(client)
    buckets = {
        s.labels["le"]: s.value
        for s in families["taskhub_run_lateness_seconds"]
        if s.name.endswith("_bucket") and s.labels["engine"] == "apscheduler"
    }
    assert (buckets["0.01"], buckets["0.25"], buckets["5.0"], buckets["10.0"], buckets["+Inf"]) == (1, 2, 2, 3, 3)
    assert value(families, "taskhub_run_lateness_seconds_gsum", engine="apscheduler") == pytest.approx(7.205)


def test_queued_running_and_the_oldest_due_queued_run(client, make_job):
    celery, aps = make_job(engine="celery"), make_job(engine="apscheduler")
    before = timezone.now()
    run(celery, "queued", ago=dt.timedelta(seconds=120))
    run(celery, "queued", ago=dt.timedelta(hours=5), next_attempt_at=before + dt.timedelta(minutes=10))  # a retry
    run(aps, "running")
    families = scrape(client)
    elapsed = (timezone.now() - before).total_seconds()
    assert value(families, "taskhub_queued_runs", engine="celery") == 2
    assert value(families, "taskhub_queued_runs", engine="apscheduler") == 0
    assert value(families, "taskhub_running_runs", engine="apscheduler") == 1
    age = value(families, "taskhub_oldest_queued_run_age_seconds", engine="celery")
    assert 120 <= age <= 120 + elapsed + 1  # the due one, not the retry waiting in the future
    assert value(families, "taskhub_oldest_queued_run_age_seconds", engine="apscheduler") == 0


def test_heartbeat_age_per_engine_of_the_schedulers_that_ran(client):
    now = timezone.now()
    SchedulerHeartbeat.objects.create(
        scheduler="beat", leader="host:1", started_at=now, beat_at=now - dt.timedelta(seconds=42)
    )
    families = scrape(client)
    elapsed = (timezone.now() - now).total_seconds()
    assert 42 <= value(families, "taskhub_engine_heartbeat_age_seconds", engine="celery") <= 42 + elapsed + 1
    assert value(families, "taskhub_engine_heartbeat_age_seconds", engine="apscheduler") is None


def test_jobs_by_engine_and_state(client, make_job):
    make_job(engine="celery")
    make_job(engine="celery", enabled=False)
    broken = make_job(engine="apscheduler")
    Job.objects.filter(pk=broken.pk).update(handler="gone_handler")  # written past validation
    families = scrape(client)
    states = {(s.labels["engine"], s.labels["state"]): s.value for s in families["taskhub_jobs"]}
    assert states == {
        ("celery", "enabled"): 1,
        ("celery", "paused"): 1,
        ("celery", "broken"): 0,
        ("apscheduler", "enabled"): 0,
        ("apscheduler", "paused"): 0,
        ("apscheduler", "broken"): 1,
    }


def test_job_overdue_is_one_for_each_overdue_job_as_the_engines_last_look_found_it(client, make_job):
    long_ago = timezone.now() - dt.timedelta(hours=2)
    late = make_job(schedule_type="interval", interval_seconds=60, misfire_grace_seconds=30, engine="celery")
    quiet = make_job(schedule_type="interval", interval_seconds=60, alert_when_overdue=False, engine="celery")
    paused_later = make_job(schedule_type="interval", interval_seconds=60, engine="apscheduler")
    Job.objects.filter(pk__in=[late.pk, quiet.pk, paused_later.pk]).update(updated_at=long_ago)  # no run since
    fresh, paused = make_job(), make_job(enabled=False)

    families = scrape(client)  # no engine process has looked: nothing is claimed, and the look's age is absent
    assert value(families, "taskhub_job_overdue", job=late.name) is None
    assert value(families, "taskhub_overdue_jobs", engine="celery") == 0
    assert families.get("taskhub_overdue_look_age_seconds", []) == []

    sweep()  # an engine process's look
    Job.objects.filter(pk=paused_later.pk).pause()  # a paused job is not overdue, before the next look says so
    families = scrape(client)
    assert value(families, "taskhub_job_overdue", job=late.name) == 1
    assert value(families, "taskhub_job_overdue", job=quiet.name) == 1  # its alerts are off; it is overdue all the same
    for other in (fresh, paused, paused_later):  # jobs that are not overdue have no series at all
        assert value(families, "taskhub_job_overdue", job=other.name) is None
    assert len(families["taskhub_job_overdue"]) == 2
    assert value(families, "taskhub_overdue_jobs", engine="celery") == 2
    assert value(families, "taskhub_overdue_jobs", engine="apscheduler") == 0
    assert 0 <= value(families, "taskhub_overdue_look_age_seconds") < 30


def test_a_deleted_jobs_series_end(client, make_job):
    job = make_job()
    run(job, "succeeded")
    job.delete()
    families = scrape(client)
    assert all(s.labels.get("job") != job.name for samples in families.values() for s in samples)


# -- counters stay monotonic -------------------------------------------------------------------
def test_the_counters_do_not_go_down_when_retention_deletes_runs(client, make_job):
    job = make_job(engine="celery")
    for status in ("succeeded", "succeeded", "failed"):
        run(job, status, ago=dt.timedelta(days=40))
    run(job, "succeeded", ago=dt.timedelta(days=40), duplicate_claims=2)
    run(job, "succeeded", ago=dt.timedelta(days=1))
    before = scrape(client)
    call_command("cleanup_runs", "--older-than", "30", "--batch-size", "2")
    assert JobRun.objects.count() == 1
    after = scrape(client)
    for status, count in (("succeeded", 4), ("failed", 1)):
        labels = {"job": job.name, "engine": "celery", "status": status}
        assert value(before, "taskhub_runs_total", **labels) == value(after, "taskhub_runs_total", **labels) == count
    claims = {"job": job.name, "engine": "celery"}
    assert value(before, "taskhub_duplicate_claims_total", **claims) == 2
    assert value(after, "taskhub_duplicate_claims_total", **claims) == 2
    run(job, "failed")
    assert value(scrape(client), "taskhub_runs_total", job=job.name, engine="celery", status="failed") == 2


def test_runs_deleted_by_hand_stay_counted_and_live_ones_leave_no_series(client, make_job):
    job = make_job(engine="celery")
    done, live = run(job, "failed"), run(job, "running", duplicate_claims=1)
    run(job, "failed")
    JobRun.objects.filter(pk=done.pk).delete()
    live.delete()
    families = scrape(client)
    assert value(families, "taskhub_runs_total", job=job.name, engine="celery", status="failed") == 2
    assert value(families, "taskhub_duplicate_claims_total", job=job.name, engine="celery") == 1
    assert {s.labels["status"] for s in families["taskhub_runs"]} == {"failed"}
    assert JobRun.objects.count() == 1


def test_a_fold_moves_finished_runs_into_the_tally_and_keeps_live_ones_pending(client, make_job):
    if connection.vendor != "postgresql":
        pytest.skip("folds are Postgres's; elsewhere every scrape counts the history row by row")
    job = make_job(engine="celery")
    old = timezone.now() - FOLD_LAG - dt.timedelta(minutes=1)
    done = [run(job, "succeeded", created_at=old) for _ in range(3)]
    live = run(job, "running", created_at=old)
    assert fold(timezone.now(), min_runs=1) >= live.pk - done[0].pk
    assert RunTally.objects.get(job_id=job.pk, status="succeeded").runs == 3
    labels = {"job": job.name, "engine": "celery", "status": "succeeded"}
    assert value(scrape(client), "taskhub_runs_total", **labels) == 3
    JobRun.objects.filter(pk=live.pk).update(status="succeeded", finished_at=timezone.now())
    assert value(scrape(client), "taskhub_runs_total", **labels) == 4  # the pending run, counted once it ended
    fold(timezone.now(), min_runs=0)
    assert RunTally.objects.get(job_id=job.pk, status="succeeded").runs == 4
    assert value(scrape(client), "taskhub_runs_total", **labels) == 4


operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.sampled_from(["queued", "running", *FINISHED_STATUSES]), st.booleans()),
        st.tuples(st.just("end"), st.integers(0, 20), st.sampled_from(["succeeded", "failed"])),
        st.tuples(st.just("claim again"), st.integers(0, 20)),
        st.tuples(st.just("fold"), st.integers(0, 3)),
        st.tuples(st.just("cleanup"), st.integers(1, 3)),
        st.tuples(st.just("delete"), st.integers(0, 20)),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(steps=operations)
@example(steps=[("add", "running", True), ("fold", 0), ("end", 0, "failed"), ("cleanup", 1)])  # pending, then deleted
def test_the_counts_equal_every_run_that_ever_ended_through_any_mix_of_folds_and_cleanups(steps):
    """Whatever runs end, get folded, claimed again or deleted (by retention or by hand), in any order,
    nothing is lost or counted twice."""
    JobRun.objects.all().delete()
    RunTally.objects.all().delete()
    RunCountMark.objects.all().delete()
    job = Job.objects.first() or job_factory(engine="celery")
    ended, claims, previous = Counter(), 0, Counter()
    old = timezone.now() - FOLD_LAG - dt.timedelta(minutes=5)
    for step in steps:
        if step[0] == "add":
            _, status, expired = step
            r = run(job, status, ago=dt.timedelta(days=40 if expired else 1), created_at=old)
            ended[status] += status in FINISHED_STATUSES
        elif step[0] == "end":
            live = list(JobRun.objects.filter(status__in=["queued", "running"]).order_by("pk"))
            if live:
                r = live[step[1] % len(live)]
                JobRun.objects.filter(pk=r.pk).update(status=step[2], finished_at=timezone.now())
                ended[step[2]] += 1
        elif step[0] == "claim again":
            rows = list(JobRun.objects.order_by("pk").values_list("pk", flat=True))
            if rows:
                JobRun.objects.filter(pk=rows[step[1] % len(rows)]).update(duplicate_claims=F("duplicate_claims") + 1)
                claims += 1
        elif step[0] == "fold":
            fold(timezone.now(), min_runs=step[1])
        elif step[0] == "delete":  # by hand, any status: as a superuser in the admin would
            rows = list(JobRun.objects.order_by("pk"))
            if rows:
                rows[step[1] % len(rows)].delete()
        else:
            delete_runs_older_than(30, batch_size=step[1])
        runs, duplicates = totals()
        counted = Counter({status: n for (_, _, status), n in runs.items() if n})
        assert counted == +ended, step
        assert sum(duplicates.values()) == claims, step
        assert all(counted[s] >= previous[s] for s in previous), step  # monotonic, by construction of the above
        previous = counted


def test_a_database_that_does_not_answer_is_a_503_with_one_line():
    with socket.socket() as probe:  # a port nothing listens on: the connection is refused at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = (
        "from django.test import Client\n"
        "response = Client().get('/metrics', REMOTE_ADDR='127.0.0.1')\n"
        "print(response.status_code, response.content.decode(), end='')"
    )
    env = clean_env(SECRET_KEY="k", DATABASE_URL=f"postgres://postgres@127.0.0.1:{port}/nowhere", ALLOWED_HOSTS="*")
    done = python(code, env=env)
    status, _, body = done.stdout.partition(" ")
    assert status == "503", done.stdout + done.stderr
    assert body.startswith("the database did not answer: ") and body.count("\n") == 1, body
    assert "Traceback" not in done.stderr


def test_settings_read_the_token_from_the_environment():
    script = "from tasks_app import conf; print(repr(conf.get('METRICS_TOKEN')))"
    done = python(script, env=clean_env(SECRET_KEY="k", TASKHUB_METRICS_TOKEN="t0ken"))
    assert done.stdout.strip() == "'t0ken'", done.stderr


# -- access --------------------------------------------------------------------------------------
@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_without_a_token_loopback_clients_are_answered(client, address):
    assert client.get("/metrics", REMOTE_ADDR=address).status_code == 200


@pytest.mark.parametrize("address", ["10.1.2.3", "192.168.0.9", "2001:db8::1", "", "not-an-address"])
def test_without_a_token_other_clients_are_refused_whatever_they_forward(client, address):
    response = client.get("/metrics", REMOTE_ADDR=address, HTTP_X_FORWARDED_FOR="127.0.0.1")
    assert response.status_code == 403
    assert response.content.decode().count("\n") == 1 and "TASKHUB_METRICS_TOKEN" in response.content.decode()


@pytest.mark.parametrize("header", ["HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP"])
def test_without_a_token_a_loopback_request_forwarded_by_a_proxy_is_refused(client, header):
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", **{header: "203.0.113.7"}).status_code == 403


@pytest.mark.parametrize(
    "header", [None, "Bearer wrong", "Bearer s3cret-token-x", "Basic czNjcmV0LXRva2Vu", "s3cret-token", "Bearer"]
)
def test_with_a_token_only_the_bearer_of_it_is_answered(client, taskhub_settings, header):
    taskhub_settings(METRICS_TOKEN="s3cret-token")
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    response = client.get("/metrics", **LOOPBACK, **extra)  # loopback needs the token too, once one is set
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.content.decode().count("\n") == 1 and "s3cret" not in response.content.decode()


def test_the_right_bearer_token_is_answered_from_anywhere(client, taskhub_settings):
    taskhub_settings(METRICS_TOKEN="s3cret-token")
    response = client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="bearer s3cret-token")
    assert response.status_code == 200
    assert "taskhub_jobs" in {f.name for f in text_string_to_metric_families(response.content.decode())}


@pytest.mark.parametrize(
    "header",
    ["HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST"],  # what a proxy adds for TASKHUB_BEHIND_PROXY
)
def test_without_a_token_a_loopback_request_with_any_proxy_header_is_refused(client, header):
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", **{header: "https"}).status_code == 403


def test_behind_a_proxy_loopback_proves_nothing_and_the_token_is_needed(client, taskhub_settings):
    """nginx's plain proxy_pass adds no forwarding header: every request would be a loopback one."""
    taskhub_settings(BEHIND_PROXY=True)
    response = client.get("/metrics", **LOOPBACK)
    assert response.status_code == 403
    assert response.content.decode() == (
        "/metrics behind a reverse proxy (TASKHUB_BEHIND_PROXY) needs TASKHUB_METRICS_TOKEN set\n"
    )
    taskhub_settings(BEHIND_PROXY=True, METRICS_TOKEN="s3cret-token")
    assert client.get("/metrics", **LOOPBACK, HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 200


def test_settings_read_behind_proxy_from_the_environment():
    script = "from tasks_app import conf; print(conf.get('BEHIND_PROXY'))"
    assert python(script, env=clean_env(SECRET_KEY="k", TASKHUB_BEHIND_PROXY="true")).stdout.strip() == "True"
    assert python(script, env=clean_env(SECRET_KEY="k")).stdout.strip() == "False"


def test_a_token_with_non_ascii_characters_is_answered_as_a_wsgi_server_hands_it_over(client, taskhub_settings):
    taskhub_settings(METRICS_TOKEN="tökén-ü")
    as_wsgi_gives_it = "tökén-ü".encode().decode("latin-1")  # the UTF-8 bytes Prometheus sends, read as latin-1
    response = client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION=f"Bearer {as_wsgi_gives_it}")
    assert response.status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer tökén-x").status_code == 401


def test_only_get_and_head(client):
    assert client.post("/metrics", **LOOPBACK).status_code == 405
    assert Client(enforce_csrf_checks=True).post("/metrics", **LOOPBACK).status_code == 405  # as a real server does
    assert Client(enforce_csrf_checks=True).post("/healthz").status_code == 405
    assert client.head("/metrics", **LOOPBACK).status_code == 200


def test_openmetrics_when_the_scraper_asks_for_it(client, make_job):
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families

    job = make_job()
    run(job, "succeeded", ago=dt.timedelta(minutes=5), duration_seconds=1.5)
    response = client.get("/metrics", **LOOPBACK, HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")
    assert response["Content-Type"].startswith("application/openmetrics-text")
    families = {f.name: f for f in openmetrics_families(response.content.decode())}
    assert families["taskhub_run_duration_seconds"].type == "gaugehistogram"
    assert families["taskhub_runs"].type == "counter"
