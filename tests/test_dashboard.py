"""The operator's dashboard on the admin index, and the run history chart on a job's page."""

import datetime as dt
import itertools
import re
import time
import xml.etree.ElementTree as ET

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tasks_app.models import JobRun, SchedulerHeartbeat
from tasks_app.monitoring import dashboard
from tests.processes import processes, wait_for  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db(transaction=False)

INDEX = reverse("admin:index")
SVG = "{http://www.w3.org/2000/svg}"
_slots = itertools.count(1)


def make_run(job, ago: dt.timedelta = dt.timedelta(hours=1), **fields):
    """A run created ``ago`` before now, in its own slot; finished ones get a finish time and a duration."""
    created = timezone.now() - ago
    values = {
        "job": job,
        "engine": job.engine,
        "status": "succeeded",
        "created_at": created,
        "scheduled_for": dt.datetime(2030, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=next(_slots)),
    }
    values.update(fields)
    if values["status"] not in ("queued", "running") and "finished_at" not in fields:
        values["finished_at"] = created + dt.timedelta(seconds=values.get("duration_seconds") or 1)
        values.setdefault("duration_seconds", 1.0)
    return JobRun.objects.create(**values)


@pytest.fixture
def staff(client, django_user_model):
    def login(*codenames):
        user = django_user_model.objects.create_user(f"staff-{'-'.join(codenames) or 'none'}", is_staff=True)
        user.user_permissions.set(
            Permission.objects.filter(content_type__app_label="tasks_app", codename__in=codenames)
        )
        client.force_login(user)
        return client

    return login


@pytest.fixture
def operator(staff):
    return staff("view_jobrun", "view_job")


def section(html: str, element_id: str) -> str:
    match = re.search(rf'<div class="module" id="{element_id}">(.*?)</div>', html, re.S)
    assert match, f"no #{element_id} on the page"
    return match.group(1)


def svg(html: str, chart_id: str) -> ET.Element:
    match = re.search(rf'<svg [^>]*id="{chart_id}".*?</svg>', html, re.S)
    assert match, f"no #{chart_id} chart on the page"
    return ET.fromstring(match.group(0))


def bars(chart: ET.Element) -> list[ET.Element]:
    return chart.findall(f"{SVG}rect")


# -- who sees it -----------------------------------------------------------------------------
def test_shown_to_staff_who_may_view_runs(operator):
    html = operator.get(INDEX).content.decode()
    assert 'id="taskhub-dashboard"' in html
    assert 'id="content-main"' in html  # the stock app list is still there


def test_not_shown_without_view_jobrun(staff, django_assert_max_num_queries):
    client = staff("view_job")
    with django_assert_max_num_queries(6):  # no dashboard query runs for them
        response = client.get(INDEX)
    assert response.status_code == 200
    assert "taskhub-dashboard" not in response.content.decode()
    assert "taskhub_dashboard" not in response.context


def test_job_names_are_links_only_for_users_who_may_view_jobs(staff, make_job):
    job = make_job()
    make_run(job, status="failed", error="ValueError: boom")
    html = section(staff("view_jobrun").get(INDEX).content.decode(), "taskhub-failing")
    assert job.name in html
    assert reverse("admin:tasks_app_job_change", args=[job.pk]) not in html


# -- runs of the last 24 hours ---------------------------------------------------------------
def test_counts_by_status_of_the_last_24_hours(operator, make_job):
    job = make_job()
    for status, n in {"succeeded": 3, "failed": 2, "queued": 1, "skipped": 1}.items():
        for _ in range(n):
            make_run(job, status=status)
    make_run(job, ago=dt.timedelta(hours=30), status="failed")  # outside the window
    html = operator.get(INDEX).content.decode()
    counts = dict(re.findall(r'<li data-status="(\w+)">.*?<span class="taskhub-count">(\d+)</span>', html))
    assert counts == {
        "queued": "1",
        "running": "0",
        "succeeded": "3",
        "failed": "2",
        "timed_out": "0",
        "cancelled": "0",
        "skipped": "1",
    }
    assert "Runs, last 24 hours (7)" in html


def test_failing_job_with_its_last_error_line_and_since_when(operator, make_job):
    failing, recovered = make_job(name="nightly-export"), make_job(name="recovered-job")
    make_run(failing, ago=dt.timedelta(hours=5), status="succeeded")
    first = make_run(
        failing,
        ago=dt.timedelta(hours=3),
        status="failed",
        error="Traceback (most recent call last):\n  ...\nValueError: first failure",
    )
    make_run(
        failing,
        ago=dt.timedelta(hours=2),
        status="timed_out",
        error="Traceback (most recent call last):\n  File x\nTimeoutError: took longer than 30 s",
    )
    make_run(failing, ago=dt.timedelta(minutes=5), status="running")  # not finished: does not count
    make_run(recovered, ago=dt.timedelta(hours=2), status="failed", error="KeyError: 'x'")
    make_run(recovered, ago=dt.timedelta(hours=1), status="succeeded")

    html = section(operator.get(INDEX).content.decode(), "taskhub-failing")
    assert "nightly-export" in html and "recovered-job" not in html
    assert "TimeoutError: took longer than 30 s" in html
    assert "Traceback" not in html and "first failure" not in html
    assert f"{first.finished_at.astimezone(dt.UTC):%Y-%m-%d %H:%M}" in html  # failing since the first of the streak
    assert "Timed out" in html


def test_slowest_job_by_p95_duration(operator, make_job):
    slow, fast = make_job(name="slow-report"), make_job(name="fast-ping")
    for seconds in range(1, 101):
        make_run(slow, duration_seconds=float(seconds))
        make_run(fast, duration_seconds=0.5)
    make_run(fast, ago=dt.timedelta(hours=30), duration_seconds=5000.0)  # outside the window

    rows = dashboard.slowest_jobs(timezone.now())
    assert [row["job__name"] for row in rows] == ["slow-report", "fast-ping"]
    assert rows[0]["p95"] == pytest.approx(95.05) and rows[0]["runs"] == 100
    html = section(operator.get(INDEX).content.decode(), "taskhub-slowest")
    assert html.index("slow-report") < html.index("fast-ping")
    assert "1 min 35 s" in html


def test_python_percentile_matches_percentile_cont():
    assert dashboard.percentile([float(n) for n in range(1, 101)], 0.95) == pytest.approx(95.05)
    assert dashboard.percentile([3.0], 0.95) == 3.0
    assert dashboard.percentile([], 0.95) is None


def needs_postgres():
    if connection.vendor != "postgresql":
        pytest.skip("ranked_jobs.py's statements: Postgres")


def test_slowest_ranks_as_a_percentile_for_every_job_would(make_job):
    """A job with one very long run but a short p95 must not crowd out the jobs whose p95 ranks."""
    needs_postgres()
    outlier = make_job(name="a-outlier")  # the longest run of all, yet the lowest p95
    for _ in range(40):
        make_run(outlier, duration_seconds=1.0)
    make_run(outlier, duration_seconds=9000.0)
    for n, name in enumerate(["b", "c", "d", "e", "f", "g", "h"]):
        job = make_job(name=f"{name}-steady")
        for seconds in range(1, 21):
            make_run(job, duration_seconds=float(seconds * (n + 1)))
    for name in ["tie-1", "tie-2", "tie-3"]:  # tied with each other; sorted by name
        make_run(make_job(name=name), duration_seconds=200.0)

    now = timezone.now()
    for limit in (1, 3, 5, 8, 20):
        assert dashboard.slowest_jobs(now, limit) == dashboard.slowest_jobs_in_python(now, limit), limit
    names = [row["job__name"] for row in dashboard.slowest_jobs(now, 5)]
    assert names == ["tie-1", "tie-2", "tie-3", "h-steady", "g-steady"]


def test_slowest_ties_at_the_last_place_are_broken_by_name(make_job):
    needs_postgres()
    for name in ["f", "e", "d", "c", "b", "a"]:  # made in reverse: the ids do not decide
        make_run(make_job(name=f"{name}-same"), duration_seconds=7.0)
    assert [row["job__name"] for row in dashboard.slowest_jobs(timezone.now(), 5)] == [
        "a-same",
        "b-same",
        "c-same",
        "d-same",
        "e-same",
    ]


def test_failing_jobs_are_those_the_per_job_lookups_find(make_job):
    needs_postgres()
    runs = {}
    for name, outcomes in {
        "relapsed": ["failed", "succeeded", "failed", "failed", "skipped"],
        "never-ok": ["failed", "timed_out"],
        "recovered": ["failed", "failed", "succeeded"],
        "only-ok": ["succeeded"],
        "timed": ["succeeded", "timed_out", "running"],
    }.items():
        job = make_job(name=name)
        runs[name] = [
            make_run(job, ago=dt.timedelta(hours=hours), status=status, error=f"{name} {status}")
            for hours, status in zip(range(len(outcomes), 0, -1), outcomes, strict=True)
        ]

    def shown(rows):
        return [(j.name, j.last_outcome, j.last_run_id, j.last_error, j.failing_since) for j in rows]

    rows = dashboard.failing_jobs()
    assert shown(rows) == shown(dashboard.failing_jobs_by_lookups())
    assert [job.name for job in rows] == ["relapsed", "never-ok", "timed"]  # the longest failing first
    assert rows[0].failing_since == runs["relapsed"][2].finished_at  # the first failure after the success
    assert (rows[0].last_run_id, rows[0].last_outcome) == (runs["relapsed"][3].pk, "failed")
    assert (rows[1].failing_since, rows[1].last_outcome) == (runs["never-ok"][0].finished_at, "timed_out")
    assert [job.name for job in dashboard.failing_jobs(limit=1)] == ["relapsed"]


def test_timeline_planner_knows_the_hours(make_job):
    """The migration's statistics on the hour let Postgres count the timeline in a hash table.

    Without them it expects one group per distinct ``created_at`` and sorts every run; the
    statistics only apply while their expression is the one Django writes for the timeline.
    """
    needs_postgres()
    job = make_job()
    for second in range(0, 2 * 3600, 30):  # 240 creation times in 2 or 3 hours
        make_run(job, ago=dt.timedelta(seconds=second + 60))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE tasks_app_jobrun")
    with CaptureQueriesContext(connection) as queries:
        dashboard.timeline(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + queries.captured_queries[0]["sql"])
        expected_groups = cursor.fetchone()[0][0]["Plan"]["Plan Rows"]
    assert expected_groups <= 10, expected_groups


def test_oldest_queued_run(operator, make_job):
    job = make_job(name="backlogged")
    oldest = make_run(job, ago=dt.timedelta(hours=3), status="queued")
    newer = make_run(job, ago=dt.timedelta(minutes=10), status="queued")
    html = section(operator.get(INDEX).content.decode(), "taskhub-queued")
    assert f"#{oldest.pk}" in html and f"#{newer.pk}" not in html
    assert "backlogged" in html and "waiting 3 h 0 min" in html


# -- charts ----------------------------------------------------------------------------------
def test_timeline_has_one_bar_per_hour_and_status_with_heights_by_count(operator, make_job):
    job = make_job()
    for status, n in {"succeeded": 4, "failed": 2}.items():
        for _ in range(n):
            make_run(job, ago=dt.timedelta(hours=2, minutes=1), status=status)
    for _ in range(1):
        make_run(job, ago=dt.timedelta(hours=6), status="timed_out")
    for _ in range(8):
        make_run(job, ago=dt.timedelta(hours=10), status="succeeded")

    chart = svg(operator.get(INDEX).content.decode(), "taskhub-timeline")
    assert chart.get("role") == "img" and chart.find(f"{SVG}title").text.startswith("Runs per hour")
    rects = bars(chart)
    assert sorted((r.get("data-status"), int(r.get("data-count"))) for r in rects) == [
        ("failed", 2),
        ("succeeded", 4),
        ("succeeded", 8),
        ("timed_out", 1),
    ]
    per_run = {round(float(r.get("height")) / int(r.get("data-count")), 1) for r in rects}
    assert len(per_run) == 1  # heights proportional to counts
    assert all(r.find(f"{SVG}title").text for r in rects)  # every bar names its status in words


def test_timeline_has_a_text_equivalent(operator, make_job):
    make_run(make_job(), status="failed")
    html = section(operator.get(INDEX).content.decode(), "taskhub-runs")
    assert "<details><summary>Runs per hour as a table</summary>" in html
    assert '<ul class="taskhub-legend">' in html and "Failed</li>" in html


def test_job_page_charts_at_most_the_last_50_runs(operator, make_job):
    job = make_job()
    runs = [
        make_run(
            job,
            ago=dt.timedelta(minutes=70 - i),
            duration_seconds=float(i % 7 + 1),
            status="failed" if i % 5 == 0 else "succeeded",
        )
        for i in range(60)
    ]
    html = operator.get(reverse("admin:tasks_app_job_change", args=[job.pk])).content.decode()
    chart = svg(html, "taskhub-history")
    rects = bars(chart)
    assert len(rects) == 50
    assert [int(r.get("data-run")) for r in rects] == [run.pk for run in runs[10:]]  # the last 50, oldest first
    assert {r.get("data-status") for r in rects} == {"failed", "succeeded"}
    tallest = max(rects, key=lambda r: float(r.get("height")))
    assert float(tallest.get("data-duration")) == 7.0
    assert "<details><summary>Runs as a table</summary>" in html


def test_job_page_chart_needs_view_jobrun(staff, make_job):
    job = make_job()
    make_run(job)
    html = staff("view_job").get(reverse("admin:tasks_app_job_change", args=[job.pk])).content.decode()
    assert "taskhub-history" not in html


# -- engines ---------------------------------------------------------------------------------
def test_scheduler_heartbeats(operator):
    now = timezone.now()
    SchedulerHeartbeat.objects.create(scheduler="beat", leader="host-a:101", started_at=now, beat_at=now)
    SchedulerHeartbeat.objects.create(
        scheduler="apscheduler", leader="host-b:202", started_at=now, beat_at=now - dt.timedelta(minutes=10)
    )
    html = section(operator.get(INDEX).content.decode(), "taskhub-engines")
    beat = re.search(r'data-engine="beat" data-ok="(\w+)">(.*?)</tr>', html, re.S)
    aps = re.search(r'data-engine="apscheduler" data-ok="(\w+)">(.*?)</tr>', html, re.S)
    assert beat.group(1) == "up" and "host-a:101" in beat.group(2)
    assert aps.group(1) == "down" and "host-b:202" in aps.group(2)


def test_a_dead_broker_still_renders_promptly(operator):
    with override_settings(CELERY_BROKER_URL="redis://127.0.0.1:1/0"):
        started = time.monotonic()
        response = operator.get(INDEX)
        elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert elapsed < 2.5
    html = section(response.content.decode(), "taskhub-engines")
    assert 'data-engine="broker" data-ok="down"' in html
    assert 'data-engine="workers" data-ok="down"' in html
    assert 'data-engine="database" data-ok="up"' in html


def test_workers_that_answer_a_ping_are_listed(operator, processes):
    from celery.utils.nodenames import default_nodename

    processes.worker(concurrency=1)
    row = wait_for(
        lambda: re.search(
            r'data-engine="workers" data-ok="up">(.*?)</tr>',
            section(operator.get(INDEX).content.decode(), "taskhub-engines"),
            re.S,
        )
    )
    assert row, processes.output(processes.started[0])
    assert f"1 up: {default_nodename(None)}" in row.group(1)


# -- cost ------------------------------------------------------------------------------------
def test_queries_do_not_grow_with_runs(operator, make_job, django_assert_max_num_queries):
    job = make_job()
    make_run(job, status="failed", error="ValueError: x")
    make_run(job, status="queued")
    with CaptureQueriesContext(connection) as few:
        operator.get(INDEX)

    for _ in range(20):
        other = make_job()
        for i in range(10):
            make_run(
                other,
                ago=dt.timedelta(hours=i),
                status=("failed", "succeeded", "queued")[i % 3],
                duration_seconds=float(i + 1),
                error="RuntimeError: no",
            )
    with django_assert_max_num_queries(len(few)):
        operator.get(INDEX)
    assert len(few) <= 12
