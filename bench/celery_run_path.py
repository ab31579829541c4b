"""Run path cost: N ``number_sum`` runs through taskhub's Celery path against plain Celery tasks.

One worker as deployed (prefork, concurrency 2, prefetch 1, acks_late from settings) serves
every variant in the same run, one after another on a warm worker (20 unmeasured runs each):

- ``taskhub``: ``taskhub.run_job`` messages for one job, each with its own ``scheduled_for``
  slot and the beat's own message options, so each claims and records a ``JobRun``.
- ``a``: a plain sync task whose result django-celery-results stores.
- ``b``: the same with ``ignore_result=True``.
- ``c``: ``b`` calling an async function with ``anyio.run`` per call.
- ``d``: ``b`` awaiting it on taskhub's long-lived loop (``tasks_app.runner.loop.submit(coro).result()``).

Then ``a`` and ``taskhub`` on a worker with Celery's own defaults (rows marked ``°``,
``bench/settings_celery_defaults.py``): no ``CELERY_DB_REUSE_MAX``, so Celery's Django fixup
closes the database connections before and after every task, and no ``result_extended``. That
``a`` is the stock peer as a user gets it, the run-path goal's baseline (issue 12: taskhub at
least 2.5x its throughput, and at least 0.5x ``b``'s). Last, ``taskhub`` and ``a`` again on a
worker with ``bench/settings_db_reuse.py`` (rows marked ``*``; the project's settings now set
``CELERY_DB_REUSE_MAX`` themselves, so these repeat the first rows: a look at the noise).

Wall time runs from the first send to the moment the broker holds none of the variant's
messages, waiting or unacknowledged (acks_late: a message is acknowledged after its task and
its result write). Completions are checked against the worker's "succeeded" lines and the
history or result rows; ``pg_sessions_per_task`` is the growth of ``pg_stat_database.sessions``
over the variant divided by N. Usage: ``python bench/celery_run_path.py [--quick]``.
"""

import datetime as dt
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

DB = "taskhub_bench_run_path"
WARMUP = 20
VARIANTS = {
    "taskhub": ("taskhub.run_job", "taskhub run_job + JobRun history"),
    "a": ("bench.peer.add", "plain task + django-db result"),
    "b": ("bench.peer.add_no_result", "plain task, ignore_result"),
    "c": ("bench.peer.add_anyio_run", "plain task + anyio.run per call"),
    "d": ("bench.peer.add_process_loop", "plain task + long-lived loop"),
}
WORKERS = [
    ("", "taskhub.settings", ["taskhub", "a", "b", "c", "d"]),
    ("°", "bench.settings_celery_defaults", ["a", "taskhub"]),
    ("*", "bench.settings_db_reuse", ["taskhub", "a"]),
]
WORKER_LABELS = {"": "worker", "°": "worker-celery-defaults", "*": "worker-db-reuse"}


def run(args) -> None:
    n = 100 if args.quick else 2000
    with common.Bench("run-path", [DB], keep_logs=args.keep_logs) as bench:
        common.setup_django(DB)
        import redis

        from taskhub.celery import app

        broker = redis.Redis.from_url(common.REDIS_TASKHUB)
        job = _job()
        results = {}
        for mark, settings, labels in WORKERS:
            worker = bench.worker(
                WORKER_LABELS[mark],
                DB,
                common.REDIS_TASKHUB,
                "-I",
                "bench.peer_tasks",
                DJANGO_SETTINGS_MODULE=settings,
            )
            bench.wait_for_line(worker, "worker ready", 60)
            with app.producer_or_acquire() as producer:
                measured = {
                    label: _measure(bench, broker, worker, _sender(app, producer, job, label), n) for label in labels
                }
            time.sleep(1.0)  # the worker's log writer is a thread: let it catch up
            for label, (wall, offset, sessions) in measured.items():
                results[label + mark] = (wall, _trace_lines(worker, offset, VARIANTS[label][0]), sessions)
            bench.stop(worker)
        print(_report(n, results, job))


def _job():
    from django.utils import timezone

    from tasks_app.models import Job

    # A one-off far ahead never fires by itself; max_running above the concurrency keeps
    # parallel runs of this one job from being skipped as overlaps.
    return Job.objects.create(
        name="bench-run-path",
        handler="number_sum",
        kwargs={"x": 20, "y": 22},
        engine="celery",
        schedule_type="once",
        max_running=4,
        run_at=timezone.now() + dt.timedelta(days=365),
    )


def _sender(app, producer, job, label: str):
    from django.utils import timezone

    from tasks_app.engines.celery.messages import TASK, message_kwargs, message_options

    counter = iter(range(10**9))
    if label != "taskhub":
        name = VARIANTS[label][0]
        return lambda: app.send_task(name, kwargs={"x": next(counter), "y": 1}, producer=producer)
    base = timezone.now() - dt.timedelta(days=1)
    options = message_options(job)  # what the beat sends: queue, priority, time limits

    def send():
        slot = base + dt.timedelta(milliseconds=next(counter))  # its own slot, so its own JobRun
        app.send_task(TASK, kwargs=message_kwargs(job.pk, slot), producer=producer, **options)

    return send


def _measure(bench, broker, worker, send, n: int) -> tuple[float, int, int]:
    """Warm up, then (wall seconds for n runs, the worker log offset before them, Postgres sessions opened)."""
    _drain(bench, broker, send, WARMUP)
    time.sleep(1.2)  # Postgres publishes session counts about once a second
    sessions, offset = _sessions(), common.log_size(worker)
    wall = _drain(bench, broker, send, n)
    time.sleep(1.2)
    return wall, offset, _sessions() - sessions


def _drain(bench, broker, send, n: int) -> float:
    """Send ``n`` messages and wait until the broker holds none; the wall seconds from the first send."""
    timeout = 60 + n * 0.25
    started = time.perf_counter()
    for _ in range(n):
        send()
    deadline = time.monotonic() + timeout
    while common.broker_backlog(broker):
        if time.monotonic() > deadline:
            raise common.BenchError(f"{n} runs did not complete within {timeout:g} s")
        bench.check_alive()
        time.sleep(0.005)
    return time.perf_counter() - started


def _sessions() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def _trace_lines(worker, offset: int, task_name: str) -> list[dict]:
    """The worker's 'Task <name>[id] succeeded in <s>s' records after ``offset``."""
    lines = []
    for line in common.log_text(worker, offset).splitlines():
        if '"celery.app.trace"' in line and f"Task {task_name}[" in line:
            record = json.loads(line)
            if "succeeded in" in record["message"]:
                lines.append(record["data"])
    return lines


def _report(n: int, results: dict, job) -> str:
    from django_celery_results.models import TaskResult

    from tasks_app.models import JobRun

    base_rate = n / results["taskhub"][0]
    rows = []
    for label, (wall, traces, sessions) in results.items():
        runtimes = [t["runtime"] * 1000 for t in traces]
        rate = n / wall
        rows.append(
            [
                f"{label}: {VARIANTS[label.rstrip('*°')][1]}",
                n,
                len(traces),
                wall,
                rate,
                rate / base_rate,
                common.percentile(runtimes, 50),
                common.percentile(runtimes, 95),
                sessions / n,
            ]
        )
    runs = JobRun.objects.filter(job=job)
    runs_expected = (n + WARMUP) * sum("taskhub" in labels for _, _, labels in WORKERS)
    results_expected = (n + WARMUP) * sum("a" in labels for _, _, labels in WORKERS)
    durations = list(
        runs.filter(status="succeeded")
        .order_by("scheduled_for")
        .values_list("duration_seconds", flat=True)[: n + WARMUP]
    )
    tenth = max(1, len(durations) // 10)
    rate = {label: n / wall for label, (wall, _, _) in results.items()}
    notes = [
        f"JobRun rows: {runs.filter(status='succeeded').count()} succeeded, {runs.exclude(status='succeeded').count()} "
        f"other (expected {runs_expected}); django-celery-results rows: "
        f"{TaskResult.objects.count()} (expected {results_expected})",
        f"goals (issue 12): taskhub / a° (plain task + django-db result, Celery's defaults) "
        f"{rate['taskhub'] / rate['a°']:.2f}x (goal >= 2.5x); taskhub / b (plain task, no result) "
        f"{rate['taskhub'] / rate['b']:.2f}x (goal >= 0.5x)",
        f"taskhub extra wall time per run vs (b): {(1 / rate['taskhub'] - 1 / rate['b']) * 1000:.2f} ms; "
        f"vs (a): {(1 / rate['taskhub'] - 1 / rate['a']) * 1000:.2f} ms; "
        f"(d) loop / (c) anyio.run throughput: {rate['d'] / rate['c']:.2f}x",
        f"taskhub JobRun duration_seconds p50, first vs last tenth of the first batch: "
        f"{_ms(durations[:tenth])} / {_ms(durations[-tenth:])} ms",
        "° Celery's defaults (bench/settings_celery_defaults.py): no CELERY_DB_REUSE_MAX (a new Postgres session "
        "per task), no result_extended",
        "* a repeat on a worker with bench/settings_db_reuse.py (CELERY_DB_REUSE_MAX=1000, as the project's settings)",
        "wall: first send to broker empty (waiting + unacked); runtime: the worker's own 'succeeded in' figure",
        common.machine_note(),
    ]
    headers = [
        "variant",
        "n",
        "completed",
        "wall_s",
        "tasks_per_s",
        "x_taskhub",
        "runtime_p50_ms",
        "runtime_p95_ms",
        "pg_sessions_per_task",
    ]
    return common.table(
        f"celery_run_path: {n} runs per variant, prefork -c 2, prefetch 1, acks_late", headers, rows, notes
    )


def _ms(seconds) -> str:
    return common.fmt(common.percentile([s * 1000 for s in seconds if s is not None], 50), 2)


if __name__ == "__main__":
    common.main(run, "celery_run_path.py", "Run path cost of taskhub's Celery path against plain Celery tasks.")
