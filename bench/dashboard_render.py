"""How long the admin index (the dashboard), the job list and ``/metrics`` take over many jobs and runs.

Creates the Postgres database ``taskhub_bench_dash``, migrates it, bulk-inserts N jobs (200
unless ``--jobs``; every 100th an every-minute job with no run for two hours, so it is overdue,
the others yearly and on time) and 100,000 runs spread over the last 24 hours. Then the overdue
look an engine process's alert courier makes (``OverdueWatch``: its first walk over every job,
and a second, incremental look), timed. Then, through the Django test client as a superuser,
renders ``/admin/`` 5 times and prints the p50 and max render time, the same for the run
queries alone (the engine checks wait up to their deadlines, e.g. for a worker ping reply), the
job list ``/admin/tasks_app/job/`` and a ``/metrics`` scrape (with its size). Takes the
machine-wide benchmark lock; drops the database at the end.

    .venv/bin/python bench/dashboard_render.py [--jobs 200] [--runs 100000] [--renders 5]
"""

import argparse
import datetime as dt
import logging
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import common  # noqa: E402  (after the path)

PG_SERVER = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
DB = "taskhub_bench_dash"
OVERDUE_EVERY = 100
STATUSES = ["succeeded"] * 85 + ["failed"] * 6 + ["timed_out"] * 2 + ["skipped"] * 3 + ["queued", "running"] * 2


def psql(sql: str) -> None:
    subprocess.run(["psql", f"{PG_SERVER}/postgres", "-v", "ON_ERROR_STOP=1", "-qc", sql], check=True)


def setup_django() -> None:
    os.environ.update(
        {
            "DATABASE_URL": f"{PG_SERVER}/{DB}",
            "DJANGO_SETTINGS_MODULE": "taskhub.settings",
            "TASKHUB_ENV_FILE": os.devnull,
            "TASKHUB_SECRETS_FILE": os.devnull,
            "ALLOWED_HOSTS": "testserver,localhost",
            "DEBUG": "false",
        }
    )
    os.environ.setdefault("SECRET_KEY", "bench-only-not-a-secret")
    os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/7")  # the worker ping; not a shared DB
    import django

    django.setup()


def fill(runs: int, jobs: int) -> None:
    from django.utils import timezone

    from tasks_app.models import Job, JobRun

    for start in range(0, jobs, 5000):
        Job.objects.bulk_create(_job(i) for i in range(start, min(start + 5000, jobs)))
    now, rng = timezone.now(), random.Random(7)
    # Every 100th job has owed a run every minute for two hours: it is overdue, as with a dead engine.
    Job.objects.filter(schedule_type="interval").update(updated_at=now - dt.timedelta(hours=2))
    ids = list(Job.objects.values_list("pk", flat=True))
    batch = []
    for i in range(runs):
        created = now - dt.timedelta(seconds=rng.uniform(0, 24 * 3600))
        status = rng.choice(STATUSES)
        finished = status not in ("queued", "running")
        seconds = rng.lognormvariate(0, 1.2) * (1 + ids[i % jobs] % 7) if finished else None
        batch.append(
            JobRun(
                job_id=ids[i % jobs],
                engine="celery",
                status=status,
                created_at=created,
                scheduled_for=now - dt.timedelta(days=2, seconds=i),  # one slot per run
                started_at=created if status != "queued" else None,
                finished_at=created + dt.timedelta(seconds=seconds) if finished else None,
                duration_seconds=seconds,
                error="Traceback ...\nRuntimeError: bench" if status in ("failed", "timed_out") else "",
            )
        )
        if len(batch) == 5000:
            JobRun.objects.bulk_create(batch)
            batch = []
    JobRun.objects.bulk_create(batch)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE tasks_app_jobrun")


def _job(i: int):
    from tasks_app.models import Job

    every_minute = i % OVERDUE_EVERY == OVERDUE_EVERY - 1
    return Job(
        name=f"bench-{i:06d}",
        handler="number_sum",
        kwargs={"x": 1, "y": 2},
        schedule_type="interval" if every_minute else "cron",
        interval_seconds=60 if every_minute else None,
        cron_expression="" if every_minute else "0 3 1 1 *",
        engine="celery" if i % 2 else "apscheduler",
    )


def timings(func, times: int) -> tuple[float, float]:
    seconds = []
    for _ in range(times):
        started = time.perf_counter()
        func()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds) * 1000, max(seconds) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--renders", type=int, default=5)
    args = parser.parse_args()
    with open(common.LOCK_PATH, "a+") as lock:
        common._wait_for_lock(lock)
        psql(f"DROP DATABASE IF EXISTS {DB}")
        psql(f"CREATE DATABASE {DB}")
        try:
            setup_django()
            from django.core.management import call_command

            call_command("migrate", verbosity=0)
            started = time.perf_counter()
            fill(args.runs, args.jobs)
            print(f"inserted {args.jobs} jobs and {args.runs} runs in {time.perf_counter() - started:.1f} s")
            look()
            return render(args.renders)
        finally:
            from django.db import connections

            connections.close_all()
            psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


def look() -> None:
    """The overdue look an engine process's courier makes: its first walk over every job, then a later look."""
    from django.utils import timezone

    from tasks_app.alerts.overdue import OverdueWatch

    logging.getLogger("tasks_app.alerts").setLevel(logging.ERROR)  # not a line per overdue job on the console
    watch = OverdueWatch()
    for which in ("first", "next"):
        started = time.perf_counter()
        counts = watch.sweep(timezone.now())
        print(f"the courier's {which} overdue look: {(time.perf_counter() - started) * 1000:.0f} ms, {counts}")


def render(renders: int) -> int:
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.utils import timezone

    from tasks_app.monitoring import dashboard

    client = Client(REMOTE_ADDR="127.0.0.1")  # /metrics answers a loopback client
    client.force_login(get_user_model().objects.create_superuser("bench", "bench@example.com", "pw"))

    def page():
        response = client.get("/admin/")
        assert response.status_code == 200 and b"taskhub-dashboard" in response.content, response.status_code

    def runs_only():
        now = timezone.now()
        dashboard.timeline(now), dashboard.failing_jobs(), dashboard.slowest_jobs(now), dashboard.oldest_queued()

    page()  # warm-up: imports, template compilation, first connections
    p50, worst = timings(page, renders)
    print(f"/admin/ with the dashboard, {renders} renders: p50 {p50:.0f} ms, max {worst:.0f} ms")
    p50, worst = timings(runs_only, renders)
    print(f"  of which the run queries: p50 {p50:.0f} ms, max {worst:.0f} ms")
    p50, worst = timings(lambda: get(client, "/admin/tasks_app/job/", b"result_list"), renders)
    print(f"/admin/tasks_app/job/, {renders} renders: p50 {p50:.0f} ms, max {worst:.0f} ms")
    p50, worst = timings(lambda: get(client, "/metrics", b"taskhub_jobs"), renders)
    body = get(client, "/metrics", b"taskhub_jobs")
    print(f"/metrics, {renders} scrapes: p50 {p50:.0f} ms, max {worst:.0f} ms, {len(body)} bytes, ", end="")
    print(f"{body.count(b'taskhub_job_overdue{')} taskhub_job_overdue series")
    now = timezone.now()
    for name, query in [
        ("timeline", lambda: dashboard.timeline(now)),
        ("failing", dashboard.failing_jobs),
        ("slowest", lambda: dashboard.slowest_jobs(now)),
        ("oldest queued", dashboard.oldest_queued),
    ]:
        print(f"    {name}: p50 {timings(query, renders)[0]:.0f} ms")
    return 0


def get(client, path: str, expect: bytes) -> bytes:
    response = client.get(path)
    assert response.status_code == 200 and expect in response.content, (path, response.status_code)
    return response.content


if __name__ == "__main__":
    sys.exit(main())
