"""The operator's dashboard: what the admin index shows about engines and the last 24 hours of runs.

What it is: read-only queries, each a single aggregate over ``JobRun`` (or ``Job`` with
subqueries; on Postgres the failing and slowest jobs are ``ranked_jobs.py``'s statements), so
the page costs the same few queries for 100 runs or 100,000; and the engine
status (scheduler heartbeats, Celery workers, broker, database), each with a deadline so a
dead broker never hangs the page. ``admin_dashboard.py`` turns these into a page; ``charts.py``
draws them.

What it is not: no writes, no permissions (the caller checks them) and no HTML.
"""

import datetime as dt
import math
from concurrent.futures import TimeoutError as FutureTimeout
from functools import partial

from django.db import connection
from django.db.models import Count, OuterRef, Subquery, Value, Window
from django.db.models.functions import Coalesce, RowNumber, TruncHour
from django.utils import timezone

from tasks_app.models import Job, JobRun, RunStatus, heartbeats, overdue_looks, problems
from tasks_app.monitoring import health, ranked_jobs

WINDOW = dt.timedelta(hours=24)
FAILED = (RunStatus.FAILED, RunStatus.TIMED_OUT)
OUTCOMES = (RunStatus.SUCCEEDED, *FAILED)  # a run that executed and ended; skipped/cancelled say nothing
WORKERS_WINDOW = 0.3  # seconds the ping waits for more replies: plenty on a LAN
WORKERS_DEADLINE = 1.0  # seconds engines() waits for the ping: its window, connecting, and room to spare
PYTHON_PERCENTILE_RUNS = 1000
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
OVERDUE_SHOWN = 20


def percentile(values: list[float], fraction: float) -> float | None:
    """``percentile_cont`` in Python: linear interpolation between the closest ranks."""
    if not values:
        return None
    values = sorted(values)
    rank = fraction * (len(values) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return values[low] + (values[high] - values[low]) * (rank - low)


# -- runs ------------------------------------------------------------------------------------
def recent(now: dt.datetime):
    return JobRun.objects.filter(created_at__gte=now - WINDOW, created_at__lte=now)


def timeline(now: dt.datetime) -> list[dict]:
    """``[{"hour", "status", "count"}]`` for every non-empty (hour, status) of the window, in UTC."""
    rows = (
        recent(now)
        .annotate(hour=TruncHour("created_at", tzinfo=dt.UTC))
        .values("hour", "status")
        .annotate(count=Count("id"))
        .order_by("hour", "status")
    )
    return list(rows)


def counts_by_status(cells: list[dict]) -> dict[str, int]:
    """Runs per status, every status present (0 when none), from the timeline's cells."""
    counts = dict.fromkeys(RunStatus.values, 0)
    for cell in cells:
        counts[cell["status"]] += cell["count"]
    return counts


def failing_jobs(limit: int = 10) -> list[Job]:
    """Jobs whose latest finished run failed or timed out, annotated with that run and the streak's start."""
    if connection.vendor == "postgresql":
        return ranked_jobs.failing_jobs(limit)  # one grouping instead of look-ups per job: see there
    return failing_jobs_by_lookups(limit)


def failing_jobs_by_lookups(limit: int = 10) -> list[Job]:
    """``failing_jobs()`` on any database: the latest outcome and the streak looked up for each job that ever failed."""
    outcomes = JobRun.objects.filter(job=OuterRef("pk"), status__in=OUTCOMES, finished_at__isnull=False)
    latest = outcomes.order_by("-finished_at", "-pk")
    last_success = (
        JobRun.objects.filter(job=OuterRef(OuterRef("pk")), status=RunStatus.SUCCEEDED, finished_at__isnull=False)
        .order_by("-finished_at")
        .values("finished_at")[:1]
    )
    streak = (
        outcomes.filter(status__in=FAILED, finished_at__gt=Coalesce(Subquery(last_success), Value(EPOCH)))
        .order_by("finished_at")
        .values("finished_at")[:1]
    )
    # Only jobs with a failed run at all (the status index finds them) get the per-job look-ups: at
    # 100,000 jobs, asking every job for its latest outcome costs a second.
    ever_failed = JobRun.objects.filter(status__in=FAILED).values("job_id")
    return list(
        Job.objects.filter(pk__in=ever_failed)
        .annotate(last_outcome=Subquery(latest.values("status")[:1]))
        .filter(last_outcome__in=FAILED)
        .annotate(
            last_run_id=Subquery(latest.values("pk")[:1]),
            last_error=Subquery(latest.values("error")[:1]),
            failing_since=Subquery(streak),
        )
        .order_by("failing_since", "name")[:limit]
    )


def slowest_jobs(now: dt.datetime, limit: int = 5) -> list[dict]:
    """``[{"job_id", "job__name", "p95", "runs"}]``: the jobs with the longest p95 duration in the window."""
    if connection.vendor == "postgresql":
        return ranked_jobs.slowest_jobs(now, now - WINDOW, limit)  # a percentile only for jobs that can rank
    return slowest_jobs_in_python(now, limit)


def slowest_jobs_in_python(now: dt.datetime, limit: int = 5) -> list[dict]:
    """``slowest_jobs()`` on any database: one query for each job's last runs, the percentile in Python."""
    timed = recent(now).filter(duration_seconds__isnull=False)
    rows = (
        timed.annotate(rank=Window(RowNumber(), partition_by="job_id", order_by="-created_at"))
        .filter(rank__lte=PYTHON_PERCENTILE_RUNS)
        .values_list("job_id", "job__name", "duration_seconds")
    )
    durations = {}
    for job_id, name, seconds in rows:
        durations.setdefault((job_id, name), []).append(seconds)
    jobs = [
        {"job_id": job_id, "job__name": name, "p95": percentile(values, 0.95), "runs": len(values)}
        for (job_id, name), values in durations.items()
    ]
    return sorted(jobs, key=lambda job: (-job["p95"], job["job__name"]))[:limit]


def oldest_queued() -> JobRun | None:
    return JobRun.objects.filter(status=RunStatus.QUEUED).select_related("job").order_by("created_at", "pk").first()


# -- engines ---------------------------------------------------------------------------------
def start_worker_ping():
    """Start pinging every Celery worker on the health pool; ``engines()`` collects the answer."""
    return health.submit(partial(health.ping_workers, WORKERS_WINDOW))


def engines(now: dt.datetime, workers) -> dict[str, dict]:
    """Schedulers, workers, broker and database; answers within about ``WORKERS_DEADLINE`` whatever is down.

    ``workers`` is a ping started earlier with ``start_worker_ping()``, so that it runs alongside other queries.
    """
    checks = health.report(["database", "broker"])["checks"]
    try:
        checks["workers"] = workers.result(timeout=WORKERS_DEADLINE)
    except FutureTimeout:
        checks["workers"] = {"ok": False, "error": f"no answer within {WORKERS_DEADLINE:g} s"}
    return {**heartbeats.statuses(now), **checks}


def overview(now: dt.datetime | None = None) -> dict:
    """Everything the dashboard shows; a fixed number of queries."""
    now = now or timezone.now()
    workers = start_worker_ping()  # waits on the broker while the queries below wait on the database
    cells = timeline(now)
    runs = {
        "timeline": cells,
        "counts": counts_by_status(cells),
        "failing": failing_jobs(),
        "overdue_look": (look := overdue_looks.last_look(now)),
        # As the engines' last look found them (open overdue streaks): one more query when any, never a walk.
        "overdue": overdue_looks.longest_overdue(OVERDUE_SHOWN) if look and look.overdue else [],
        "overdue_count": look.overdue if look else 0,
        "slowest": slowest_jobs(now),
        "oldest_queued": oldest_queued(),
    }
    runs["broken"], runs["broken_count"] = problems.broken(Job.objects.filter(enabled=True), limit=20)
    return {"now": now, "since": now - WINDOW, "engines": engines(now, workers), **runs}


def job_history(job: Job, limit: int = 50) -> list[JobRun]:
    """The job's last ``limit`` runs, oldest first (one query, only the columns a chart needs)."""
    runs = job.runs.order_by("-created_at", "-pk").only(
        "pk", "status", "created_at", "scheduled_for", "duration_seconds"
    )[:limit]
    return list(reversed(runs))
