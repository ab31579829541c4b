"""The totals of ``/metrics``' run counters: the run tally plus the runs it does not hold yet.

``totals()`` reads the tally (``run_counts``) and the finished runs past its mark — a bounded
tail — in one snapshot, so a scrape costs the same at 1,000 runs or 1,000,000. ``fold()``
moves that tail into the tally once it grows (Postgres; a scrape calls it first): every
finished run up to a mark, keeping the ids of those still queued or running as pending.

What it is not: the deleting side (``run_counts``: a delete adds what it removes to the tally).
"""

import datetime as dt
from collections import Counter

from django.contrib.postgres.aggregates import ArrayAgg
from django.db import connection, transaction
from django.db.models import Count, Q, Sum

from tasks_app.models import run_counts
from tasks_app.models.choices import FINISHED
from tasks_app.models.run import JobRun

# A run's id is handed out before its insert commits (a claim takes milliseconds): a fold
# covers only runs created this long ago, so none commits behind the mark.
FOLD_LAG = dt.timedelta(minutes=2)
FOLD_MIN_RUNS = 1_000  # fold once the tail is this long: a scrape then counts at most ~this many rows
FOLD_MAX_RUNS = 100_000  # runs one fold covers at most, so a first scrape over a long history stays short


def fold(now: dt.datetime, min_runs: int = FOLD_MIN_RUNS, max_runs: int = FOLD_MAX_RUNS) -> int:
    """Move the finished runs past the mark (created before ``now - FOLD_LAG``) into the tally.

    Postgres only (elsewhere the history is counted row by row); a fold in progress elsewhere
    (another scrape, retention) is skipped, not waited for. Returns how many ids it moved past.
    """
    if connection.vendor != "postgresql":
        return 0
    old_enough = JobRun.objects.filter(created_at__lt=now - FOLD_LAG).order_by("-created_at")
    newest = old_enough.values_list("pk", flat=True).first()
    # The common case, nothing to fold, takes no lock and writes nothing.
    if newest is None or newest - run_counts.read_mark()[0] < min_runs:
        return 0
    with transaction.atomic():
        mark = run_counts.locked_mark(skip_locked=True)
        if mark is None or newest - mark.counted_to < min_runs:  # folded meanwhile, or being folded
            return 0
        start, upto = mark.counted_to, min(newest, mark.counted_to + max_runs)
        scope = JobRun.objects.filter(Q(pk__gt=start, pk__lte=upto) | Q(pk__in=mark.pending))
        # One statement: the finished counts and the ids still live come from one snapshot.
        groups = scope.values_list("job_id", "engine", "status").annotate(
            n=Count("pk"), live=ArrayAgg("pk", filter=~Q(status__in=FINISHED))
        )
        counts, pending = Counter(), []
        for job_id, engine, status, n, live in groups.order_by():
            if status in FINISHED:
                counts[(job_id, engine, status)] += n
            else:
                pending.extend(live)
        run_counts.add(counts)
        mark.counted_to, mark.pending = upto, sorted(pending)
        mark.save(update_fields=["counted_to", "pending"])
    return upto - start


def totals() -> tuple[Counter, Counter]:
    """Finished runs per ``(job_id, engine, status)`` and duplicate claims per ``(job_id, engine)``.

    Call it inside a transaction that reads one snapshot (``monitoring.metrics`` does): the mark,
    the tally and the rows are read by separate statements. Deleted jobs' ids may appear; skip them.
    """
    counted_to, pending = run_counts.read_mark()
    runs, duplicates = Counter(), Counter()
    for job_id, engine, status, n, claims in run_counts.RunTally.objects.values_list(
        "job_id", "engine", "status", "runs", "duplicate_claims"
    ):
        if status in FINISHED:  # a deleted live run leaves only its duplicate claims
            runs[(job_id, engine, status)] += n
        duplicates[(job_id, engine)] += claims
    tail = JobRun.objects.filter(Q(pk__gt=counted_to) | Q(pk__in=pending), status__in=FINISHED)
    for job_id, engine, status, n in tail.values_list("job_id", "engine", "status").annotate(n=Count("pk")).order_by():
        runs[(job_id, engine, status)] += n
    claimed = JobRun.objects.filter(duplicate_claims__gt=0).values_list("job_id", "engine")
    for job_id, engine, n in claimed.annotate(n=Sum("duplicate_claims")).order_by():
        duplicates[(job_id, engine)] += n
    return runs, duplicates
