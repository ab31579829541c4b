"""/metrics against a running system: a real ``runapscheduler`` process runs a job, the server answers scrapes;
and scrapes beside retention running in another thread, each in its own committed transactions.

The scrape goes over HTTP to the live test server (a loopback client, so no token is needed)
and is read back with prometheus-client's parser, as Prometheus would read it.
"""

import datetime as dt
import threading
import urllib.request

import pytest
from django.db import connection
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from tasks_app.models import JobRun, SchedulerHeartbeat
from tasks_app.models.retention import delete_runs_older_than
from tasks_app.models.run_totals import fold
from tasks_app.monitoring import metrics
from tests.processes import processes, wait_for  # noqa: F401  (fixture)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_a_scrape_of_a_running_system_counts_what_it_runs(live_server, make_job, processes):
    job = make_job(engine="apscheduler", schedule_type="interval", interval_seconds=1, kwargs={"x": 1, "y": 1})
    proc = processes.apscheduler(TASKHUB_ALERT_POLL_SECONDS="0.5")  # its alert courier looks for overdue jobs
    assert wait_for(lambda: JobRun.objects.filter(job=job, status="succeeded").count() >= 2, timeout=40), (
        processes.output(proc)[-3000:]
    )
    assert SchedulerHeartbeat.objects.filter(scheduler="apscheduler").exists()
    succeeded = ("taskhub_runs_total", (("engine", "apscheduler"), ("job", job.name), ("status", "succeeded")))

    first = scrape(live_server.url)
    assert first[succeeded] >= 2
    assert 0 <= first[("taskhub_engine_heartbeat_age_seconds", (("engine", "apscheduler"),))] < 30
    assert first[("taskhub_jobs", (("engine", "apscheduler"), ("state", "enabled")))] == 1
    assert ("taskhub_job_overdue", (("job", job.name),)) not in first  # it runs: no series
    assert first[("taskhub_overdue_jobs", (("engine", "apscheduler"),))] == 0
    assert 0 <= first[("taskhub_overdue_look_age_seconds", ())] < 30  # the process's courier has looked
    assert first[("taskhub_run_duration_seconds_gcount", (("engine", "apscheduler"),))] >= 2

    assert wait_for(lambda: scrape(live_server.url)[succeeded] > first[succeeded], timeout=20)


def test_scrapes_and_folds_beside_retention_never_see_the_counters_go_down(make_job):
    """Retention deletes in many small transactions while scrapes read and fold: each scrape reads one snapshot."""
    if connection.vendor != "postgresql":
        pytest.skip("the snapshot and the folds are Postgres's")
    job = make_job(engine="celery")
    old = timezone.now() - dt.timedelta(days=40)
    JobRun.objects.bulk_create(
        JobRun(
            job=job,
            engine="celery",
            status="failed" if i % 3 else "succeeded",
            scheduled_for=old + dt.timedelta(seconds=i),
            created_at=old + dt.timedelta(seconds=i),
            finished_at=old + dt.timedelta(seconds=i + 1),
            duplicate_claims=i % 2,
        )
        for i in range(300)
    )
    expected = (300, 150)

    def cleanup():
        try:
            delete_runs_older_than(30, batch_size=1)
        finally:
            connection.close()

    worker = threading.Thread(target=cleanup)
    worker.start()
    seen = []
    while worker.is_alive() or not seen:
        if len(seen) % 3 == 0:
            fold(timezone.now(), min_runs=0)
        figures = metrics.read()
        seen.append((sum(figures.runs.values()), sum(figures.duplicate_claims.values())))
    worker.join(timeout=60)
    assert not JobRun.objects.exists()
    assert all(counts == expected for counts in seen), [counts for counts in seen if counts != expected][:5]
    assert len(seen) > 3  # scrapes ran while retention did
