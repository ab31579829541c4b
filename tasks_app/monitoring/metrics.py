"""The figures ``/metrics`` reports, read from the database at scrape time in one snapshot.

Each is an aggregate query (or the run tally's totals, ``models.run_totals``), so it is right whatever
process runs where, and a scrape costs the same few queries at 1,000 runs or 1,000,000: the
run counters read the tally plus the runs since its mark, the histograms the last hour's runs
(through an index on ``finished_at``), the rest the few queued and running runs, the
schedulers' heartbeats, the jobs, and the overdue jobs as the engines' last look found them
(``overdue_looks``: their open overdue streaks, never a walk over every job's schedule).
``read()`` first folds the finished runs past the mark into the tally (Postgres; the one
write, skipped when another scrape is doing it).

What it is not: no Prometheus types (``prometheus.py`` turns these into metric families), no
access control (the view checks it).
"""

import dataclasses
import datetime as dt
import logging
from collections import Counter

from django.db import DatabaseError, connection, transaction
from django.db.models import Count, DurationField, ExpressionWrapper, F, Min, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from tasks_app.models import Engine, Job, JobRun, RunStatus, SchedulerHeartbeat, overdue_looks, problems, run_totals

log = logging.getLogger("taskhub.metrics")

WINDOW = dt.timedelta(hours=1)
DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600)
LATENESS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
SCHEDULER_ENGINE = {"beat": Engine.CELERY, "apscheduler": Engine.APSCHEDULER}
JOB_STATES = ("enabled", "paused", "broken")


@dataclasses.dataclass
class Histogram:
    """Cumulative counts per upper bound (the last is +Inf, i.e. all) and the sum of the values."""

    counts: list[int]
    total: float


@dataclasses.dataclass
class Figures:
    runs: Counter  # (job, engine, status) -> finished runs ever
    duplicate_claims: Counter  # (job, engine) -> later claims of a slot that did not run
    durations: dict[str, Histogram]  # engine -> runs finished in the window, by duration
    lateness: dict[str, Histogram]  # engine -> first attempts finished in the window, by start - slot
    queued: dict[str, int]  # engine -> runs queued now
    running: dict[str, int]  # engine -> runs running now
    oldest_queued_age: dict[str, float]  # engine -> seconds the longest-waiting due queued run has waited
    heartbeat_age: dict[str, float]  # engine -> seconds since its scheduler's leader last beat
    jobs: dict[tuple[str, str], int]  # (engine, state) -> jobs
    overdue: list[str]  # the overdue jobs, as the engines' last look found them
    overdue_count: dict[str, int]  # engine -> overdue jobs
    overdue_look_age: float | None  # seconds since an engine process last looked for overdue jobs (None: never)


def read(now: dt.datetime | None = None) -> Figures:
    """Every figure at ``now``; all read from one snapshot of the database."""
    now = now or timezone.now()
    try:
        run_totals.fold(now)
    except DatabaseError as exc:  # the counts stay right without it; only the next scrape costs more
        log.warning("could not fold finished runs into the tally", extra={"error": str(exc)})
    with transaction.atomic():
        _one_snapshot()
        return _read(now)


def _one_snapshot() -> None:
    """Postgres reads each statement at its own moment; a scrape must not see a run deleted and not yet tallied."""
    if connection.vendor == "postgresql" and len(connection.atomic_blocks) == 1:  # not inside a caller's transaction
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")


def _read(now: dt.datetime) -> Figures:
    jobs = list(Job.objects.values_list("pk", "name", "engine", "enabled"))
    names = {pk: name for pk, name, _, _ in jobs}
    runs, duplicates = run_totals.totals()
    live = _live_runs(now)
    recent = JobRun.objects.filter(finished_at__gt=now - WINDOW, finished_at__lte=now)
    lateness = ExpressionWrapper(F("started_at") - F("scheduled_for"), output_field=DurationField())
    return Figures(
        runs=Counter({(names[j], e, s): n for (j, e, s), n in runs.items() if j in names}),
        duplicate_claims=Counter({(names[j], e): n for (j, e), n in duplicates.items() if j in names}),
        durations=_histograms(recent.filter(duration_seconds__isnull=False), F("duration_seconds"), DURATION_BUCKETS),
        lateness=_histograms(
            recent.filter(started_at__isnull=False, attempt=1).annotate(lateness=lateness),
            F("lateness"),
            LATENESS_BUCKETS,
            seconds=True,
        ),
        queued={e: live.get((e, RunStatus.QUEUED), (0, None))[0] for e in Engine.values},
        running={e: live.get((e, RunStatus.RUNNING), (0, None))[0] for e in Engine.values},
        oldest_queued_age={e: _age(now, live.get((e, RunStatus.QUEUED), (0, None))[1]) for e in Engine.values},
        heartbeat_age={
            SCHEDULER_ENGINE[name]: _age(now, beat_at)
            for name, beat_at in SchedulerHeartbeat.objects.filter(scheduler__in=SCHEDULER_ENGINE).values_list(
                "scheduler", "beat_at"
            )
        },
        jobs=_job_states(jobs),
        **_overdue(now),
    )


def _live_runs(now) -> dict[tuple[str, str], tuple[int, dt.datetime | None]]:
    """``{(engine, status): (runs, earliest due)}`` of the queued and running runs."""
    due = Coalesce("next_attempt_at", "scheduled_for")
    rows = (
        JobRun.objects.filter(status__in=[RunStatus.QUEUED, RunStatus.RUNNING])
        .values_list("engine", "status")
        .annotate(n=Count("pk"), due=Min(due))
        .order_by()
    )
    return {(engine, status): (n, due) for engine, status, n, due in rows}


def _age(now: dt.datetime, since: dt.datetime | None) -> float:
    return max((now - since).total_seconds(), 0.0) if since else 0.0


def _histograms(runs, value, bounds, seconds: bool = False) -> dict[str, Histogram]:
    """Per engine, the runs counted under each bound in SQL (``COUNT(*) FILTER``), with the sum."""

    def bound(b):
        return dt.timedelta(seconds=b) if seconds else b

    under = {f"le{i}": Count("pk", filter=Q(**{f"{value.name}__lte": bound(b)})) for i, b in enumerate(bounds)}
    total = Sum(value, output_field=DurationField()) if seconds else Sum(value)
    rows = runs.values("engine").annotate(all=Count("pk"), total=total, **under).order_by()
    result = {engine: Histogram([0] * (len(bounds) + 1), 0.0) for engine in Engine.values}
    for row in rows:
        counts = [row[f"le{i}"] for i in range(len(bounds))] + [row["all"]]
        total = row["total"] or 0.0
        result[row["engine"]] = Histogram(counts, total.total_seconds() if seconds and total else float(total))
    return result


def _job_states(jobs) -> dict[tuple[str, str], int]:
    """Every (engine, state) with its count: paused, broken (enabled but unschedulable) or enabled."""
    broken, _ = problems.broken(Job.objects.filter(enabled=True))
    broken_ids = {job.pk for job, _ in broken}
    counts = {(engine, state): 0 for engine in Engine.values for state in JOB_STATES}
    for pk, _, engine, enabled in jobs:
        state = "paused" if not enabled else "broken" if pk in broken_ids else "enabled"
        counts[(engine, state)] = counts.get((engine, state), 0) + 1
    return counts


def _overdue(now) -> dict:
    """The open overdue streaks the engines' look keeps, and its age: as many rows as jobs are overdue, no walk."""
    look = overdue_looks.last_look(now)
    counts = overdue_looks.counts_by_engine()
    return {
        "overdue": overdue_looks.overdue_names(),
        "overdue_count": {engine: counts.get(engine, 0) for engine in Engine.values},
        "overdue_look_age": look.age if look else None,
    }
