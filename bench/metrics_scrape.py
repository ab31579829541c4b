"""How long a ``/metrics`` scrape takes with 1,000,000 runs of 1,000 jobs in the history (Postgres).

Fills ``taskhub_bench_metrics`` (a copy of the migrated template) in two ``INSERT … SELECT
generate_series`` statements: N jobs (interval schedules; every 10th paused, every 100th
naming a handler that is gone, so it is broken) and M runs, one slot per run spread over the
last 30 days, each job's runs a mix of statuses (85 % succeeded, 6 % failed, 2 % timed out,
3 % skipped, 1 % cancelled; the newest 2,000 runs also queued and running), lateness 0-3 s,
durations 0-20 s, a duplicate claim on every 997th. Then, in this process, GET ``/metrics``
through Django's test client as a loopback client:

- first scrapes: each folds up to 100,000 finished runs into the run tally (``first_ms`` is
  the first; ``catchup`` how many it took until the fold had nothing left to do);
- then S (quick: 5) scrapes at steady state: ``p50_ms`` and ``max_ms``, the body's size and
  the queries of one scrape;
- "history row by row": the same S times, the one query a scrape would need without the tally
  (finished runs per job, engine and status over the whole table), for comparison.

Usage: ``python bench/metrics_scrape.py [--quick] [--runs M] [--jobs N] [--scrapes S]``
(M 1,000,000, N 1,000, S 20 unless given; quick: 20,000 runs of 100 jobs). Needs Postgres at
``BENCH_POSTGRES_URL``; no Redis. Takes the machine-wide benchmark lock.
"""

import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

DB = "taskhub_bench_metrics"
GOAL_MS = 200

JOBS_SQL = """
INSERT INTO tasks_app_job (name, description, handler, kwargs, schedule_type, cron_expression, interval_seconds,
  timezone, enabled, engine, queue, priority, jitter_seconds, misfire_grace_seconds, coalesce, max_running,
  declared_in_code, created_at, updated_at)
SELECT 'bench-' || lpad(i::text, 5, '0'), '', CASE WHEN i %% 100 = 99 THEN 'bench_gone' ELSE 'number_sum' END,
  '{"x": 1, "y": 2}', 'interval', '', %(interval)s, 'UTC', i %% 10 <> 0,
  CASE WHEN i %% 2 = 0 THEN 'celery' ELSE 'apscheduler' END, 'default', 5, 0, 300, true, 1, false,
  now() - interval '31 days', now() - interval '31 days'
FROM generate_series(0, %(jobs)s - 1) AS i
"""

# Run n belongs to job n mod N; its status follows n div N, so every job has the whole mix.
RUNS_SQL = """
INSERT INTO tasks_app_jobrun (job_id, engine, status, trigger, scheduled_for, kwargs, created_at, started_at,
  finished_at, duration_seconds, attempt, attempts, error, reason, worker, celery_task_id, progress_message,
  cancel_requested, duplicate_claims)
SELECT j.id, j.engine, s.status, 'schedule', s.slot, '{}', s.slot,
  CASE WHEN s.status NOT IN ('queued', 'skipped') THEN s.slot + s.late * interval '1 second' END,
  CASE WHEN s.status NOT IN ('queued', 'running') THEN s.slot + (s.late + s.took) * interval '1 second' END,
  CASE WHEN s.status NOT IN ('queued', 'running', 'skipped') THEN s.took END,
  1, '[]', '', '', '', '', '', false, CASE WHEN s.n %% 997 = 0 THEN 1 ELSE 0 END
FROM (
  SELECT n, n %% %(jobs)s AS job_no, now() - (%(runs)s - n) * %(step)s * interval '1 second' AS slot,
    random() * 3 AS late, random() * 20 AS took,
    CASE WHEN n > %(runs)s - 2000 AND n %% 50 = 0 THEN 'queued'
         WHEN n > %(runs)s - 2000 AND n %% 50 = 1 THEN 'running'
         WHEN (n / %(jobs)s) %% 100 < 6 THEN 'failed' WHEN (n / %(jobs)s) %% 100 < 8 THEN 'timed_out'
         WHEN (n / %(jobs)s) %% 100 < 11 THEN 'skipped' WHEN (n / %(jobs)s) %% 100 < 12 THEN 'cancelled'
         ELSE 'succeeded' END AS status
  FROM generate_series(1, %(runs)s) AS n
) AS s JOIN tasks_app_job AS j ON j.name = 'bench-' || lpad(s.job_no::text, 5, '0')
"""


class MetricsBench(common.Bench):
    """One database, no Redis, no processes: the scrapes run in this process."""

    lock_reason = ""

    def prepare(self) -> None:
        common.create_databases(self.databases, self.log_dir)

    def clean_up(self) -> None:
        common.drop_databases(self.databases)


def options(parser) -> None:
    parser.add_argument("--runs", type=int, default=1_000_000, help="runs in the history (default %(default)s)")
    parser.add_argument("--jobs", type=int, default=1_000, help="jobs (default %(default)s)")
    parser.add_argument("--scrapes", type=int, default=20, help="timed scrapes (default %(default)s)")


def run(args) -> None:
    runs, jobs, scrapes = (20_000, 100, 5) if args.quick else (args.runs, args.jobs, args.scrapes)
    if runs < 1 or jobs < 1 or scrapes < 1:
        raise common.BenchError("--runs, --jobs and --scrapes must be at least 1")
    with MetricsBench("metrics-scrape", [DB], keep_logs=args.keep_logs):
        common.setup_django(DB)
        warnings.filterwarnings("ignore", message="No directory at")  # whitenoise: no collectstatic for a bench
        started = time.perf_counter()
        _fill(runs, jobs)
        fill_s = time.perf_counter() - started
        print(_report(runs, jobs, scrapes, fill_s, _scrapes(scrapes), _row_by_row(scrapes)))


def _fill(runs: int, jobs: int) -> None:
    from django.db import connection

    step = 30 * 24 * 3600 / runs
    with connection.cursor() as cursor:
        cursor.execute(JOBS_SQL, {"jobs": jobs, "interval": max(1, round(step * jobs))})
        cursor.execute(RUNS_SQL, {"jobs": jobs, "runs": runs, "step": step})
        cursor.execute("VACUUM ANALYZE tasks_app_jobrun")  # what autovacuum does to a table this size soon after
        cursor.execute("ANALYZE tasks_app_job")


def _scrapes(times: int) -> dict:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from tasks_app.models import RunCountMark

    client = Client(REMOTE_ADDR="127.0.0.1", SERVER_NAME="localhost")

    def scrape() -> tuple[float, bytes]:
        started = time.perf_counter()
        response = client.get("/metrics")
        if response.status_code != 200:
            raise common.BenchError(f"/metrics answered {response.status_code}: {response.content[:200]!r}")
        return (time.perf_counter() - started) * 1000, response.content

    first_ms, _ = scrape()
    catchup, folded_to = 1, None
    while catchup < 100:  # until a scrape's fold finds nothing to do
        mark = RunCountMark.objects.values_list("counted_to", flat=True).first()
        if mark == folded_to:
            break
        folded_to = mark
        scrape()
        catchup += 1
    timings = [scrape()[0] for _ in range(times)]
    with CaptureQueriesContext(connection) as queries:
        _, body = scrape()
    return {"first": first_ms, "catchup": catchup, "timings": timings, "kb": len(body) / 1024, "queries": len(queries)}


def _row_by_row(times: int) -> list[float]:
    from django.db.models import Count

    from tasks_app.models import FINISHED, JobRun

    timings = []
    for _ in range(times):
        started = time.perf_counter()
        list(JobRun.objects.filter(status__in=FINISHED).values_list("job_id", "engine", "status").annotate(Count("pk")))
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def _report(runs, jobs, scrapes, fill_s, tally, plain) -> str:
    headers = ["way", "runs", "jobs", "first_ms", "catchup", "p50_ms", "max_ms", "kb", "queries"]
    p50, worst = statistics.median(tally["timings"]), max(tally["timings"])
    rows = [
        ["taskhub /metrics", runs, jobs, tally["first"], tally["catchup"], p50, worst, tally["kb"], tally["queries"]],
        ["history row by row", runs, jobs, "n/a", "n/a", statistics.median(plain), max(plain), "n/a", 1],
    ]
    notes = [
        f"{scrapes} scrapes at steady state through Django's test client; goal p50 <= {GOAL_MS} ms "
        f"({'met' if p50 <= GOAL_MS else 'NOT met'}); counting the history row by row costs "
        f"{common.ratio(statistics.median(plain), p50):.2f}x a whole scrape's p50 for the run counters alone",
        f"filled {runs} runs over {jobs} jobs in {fill_s:.1f} s (INSERT ... SELECT generate_series)",
        common.machine_note(),
    ]
    return common.table(f"metrics_scrape: /metrics over {runs} runs of {jobs} jobs", headers, rows, notes)


if __name__ == "__main__":
    common.main(run, "metrics_scrape.py", "How long a /metrics scrape takes over a long run history.", options=options)
