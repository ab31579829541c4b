"""How long the admin index takes to render with the dashboard over 100,000 runs.

Creates the Postgres database ``taskhub_bench_dash``, migrates it, bulk-inserts 200 jobs and
100,000 runs spread over the last 24 hours, renders ``/admin/`` through the Django test client
as a superuser 5 times and prints the p50 and max render time, then the same for the run
queries alone (the engine checks wait up to their deadlines, e.g. for a worker ping reply).
Drops the database at the end.

    .venv/bin/python bench/dashboard_render.py [--runs 100000] [--renders 5]
"""

import argparse
import datetime as dt
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_SERVER = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
DB = "taskhub_bench_dash"
STATUSES = ["succeeded"] * 85 + ["failed"] * 6 + ["timed_out"] * 2 + ["skipped"] * 3 + ["queued", "running"] * 2


def psql(sql: str) -> None:
    subprocess.run(["psql", f"{PG_SERVER}/postgres", "-v", "ON_ERROR_STOP=1", "-qc", sql], check=True)


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
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


def fill(runs: int, jobs: int = 200) -> None:
    from django.utils import timezone

    from tasks_app.models import Job, JobRun

    Job.objects.bulk_create(
        [
            Job(
                name=f"bench-{i:03d}",
                handler="number_sum",
                kwargs={"x": 1, "y": 2},
                schedule_type="interval",
                interval_seconds=60,
                engine="celery",
            )
            for i in range(jobs)
        ]
    )
    ids = list(Job.objects.values_list("pk", flat=True))
    now, rng = timezone.now(), random.Random(7)
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


def timings(func, times: int) -> tuple[float, float]:
    seconds = []
    for _ in range(times):
        started = time.perf_counter()
        func()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds) * 1000, max(seconds) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--renders", type=int, default=5)
    args = parser.parse_args()
    psql(f"DROP DATABASE IF EXISTS {DB}")
    psql(f"CREATE DATABASE {DB}")
    try:
        setup_django()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        fill(args.runs)
        print(f"inserted {args.runs} runs over 200 jobs in {time.perf_counter() - started:.1f} s")
        return render(args.renders)
    finally:
        from django.db import connections

        connections.close_all()
        psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


def render(renders: int) -> int:
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.utils import timezone

    from tasks_app.monitoring import dashboard

    client = Client()
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
    now = timezone.now()
    for name, query in [
        ("timeline", lambda: dashboard.timeline(now)),
        ("failing", dashboard.failing_jobs),
        ("slowest", lambda: dashboard.slowest_jobs(now)),
        ("oldest queued", dashboard.oldest_queued),
    ]:
        print(f"    {name}: p50 {timings(query, renders)[0]:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
