"""Runner overhead per run on this machine's database, side by side in one process.

For N runs of ``number_sum`` it times: the handler alone on the process loop; one plain
ORM insert of a history row (the least any recorded run costs); and the whole runner
path (claim under the job's row lock, run, heartbeat-free finish). Usage:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/taskhub_bench python bench/runner_overhead.py [--runs N]
"""

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "taskhub.settings")
os.environ.setdefault("SECRET_KEY", "bench-only")


def timed(n, fn) -> float:
    started = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - started) / n * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    import django

    django.setup()
    from django.db import connection

    from tasks_app import runner
    from tasks_app.handlers.bundled import number_sum
    from tasks_app.models import Job, JobRun
    from tasks_app.runner import loop

    Job.objects.filter(name="bench-runner-overhead").delete()
    job = Job.objects.create(
        name="bench-runner-overhead",
        handler="number_sum",
        kwargs={"x": 1, "y": 2},
        schedule_type="interval",
        interval_seconds=3600,
        max_running=1,
    )
    base = dt.datetime(2031, 1, 1, tzinfo=dt.UTC)
    handler_ms = timed(args.runs, lambda i: loop.submit(number_sum(1, 2)).result())
    insert_ms = timed(
        args.runs,
        lambda i: JobRun.objects.create(
            job=job, engine="celery", status="succeeded", scheduled_for=base + dt.timedelta(seconds=i)
        ),
    )
    JobRun.objects.filter(job=job).delete()
    runner_ms = timed(args.runs, lambda i: runner.run_slot(job.pk, base + dt.timedelta(seconds=i), "celery"))
    job.delete()
    print(f"database: {connection.vendor}, runs: {args.runs}")
    print(f"{'path':<34}{'ms per run':>12}")
    for name, ms in (
        ("handler alone (process loop)", handler_ms),
        ("one history row insert", insert_ms),
        ("runner.run_slot (claim+run+record)", runner_ms),
    ):
        print(f"{name:<34}{ms:>12.3f}")
    print(
        f"runner overhead over the handler: {runner_ms - handler_ms:.3f} ms; "
        f"{runner_ms / insert_ms:.1f}x one row insert"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
