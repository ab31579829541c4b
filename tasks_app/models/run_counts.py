"""The run tally: counts of finished runs that outlive their rows, so ``/metrics``' counters never go down.

``/metrics`` reports finished runs per (job, engine, status) and duplicate claims as counters,
which must never go down and must not cost a scan of the whole history per scrape:

- ``RunTally`` holds counts of finished runs that are no longer counted row by row: those
  ``run_totals.fold`` moved out of the live count, and those deleted — by retention or anyone
  else, since ``JobRun``'s queryset ``delete()`` is defined here — in the delete's transaction,
  with their duplicate claims.
- ``RunCountMark`` (one row) says which rows the tally already holds: every run with an id up
  to ``counted_to``, except the ``pending`` ones, which were queued or running when folded past.
  Whoever writes the tally holds the mark's row lock.

The run's hot path writes none of this. A tally row names its job by id without a foreign key,
so deleting a job never waits on (or races) a fold; the rows of a deleted job are ignored and
pruned by retention. What it is not: the reading side (``run_totals``), nor a count of
attempts (a retried slot is one run).
"""

from collections import Counter

from django.db import models, transaction

from tasks_app.models.choices import FINISHED
from tasks_app.models.job import Job

MARK = 1


class RunTally(models.Model):
    """Finished runs of one (job, engine, status) counted here instead of row by row."""

    job_id = models.BigIntegerField()  # no foreign key: see the module docstring
    engine = models.CharField(max_length=20)
    status = models.CharField(max_length=10)
    runs = models.PositiveBigIntegerField(default=0)
    duplicate_claims = models.PositiveBigIntegerField(default=0, help_text="Of the runs deleted since.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job_id", "engine", "status"], name="runtally_one_per_key")]


class RunCountMark(models.Model):
    """One row: the runs with an id up to ``counted_to`` are in ``RunTally``, except those in ``pending``."""

    counted_to = models.BigIntegerField(default=0)
    pending = models.JSONField(default=list, blank=True, help_text="Ids up to counted_to still live when folded.")


def locked_mark(skip_locked: bool = False) -> RunCountMark | None:
    """The mark, locked to this transaction (created when missing); None when skipping a held lock."""
    locked = RunCountMark.objects.select_for_update(skip_locked=skip_locked).filter(pk=MARK)
    mark = locked.first()
    if mark is None and not RunCountMark.objects.filter(pk=MARK).exists():  # the first use (or a flushed table)
        RunCountMark.objects.bulk_create([RunCountMark(pk=MARK)], ignore_conflicts=True)
        mark = locked.first()
    return mark


def read_mark() -> tuple[int, list[int]]:
    mark = RunCountMark.objects.filter(pk=MARK).first()
    return (mark.counted_to, mark.pending) if mark else (0, [])


def add(counts: Counter, duplicates: Counter | None = None) -> None:
    """Add ``{(job_id, engine, status): n}`` to the tally; the caller holds the mark's lock."""
    duplicates = duplicates or Counter()
    keys = set(counts) | set(duplicates)
    if not keys:
        return
    known = RunTally.objects.filter(job_id__in={job_id for job_id, _, _ in keys})
    rows = {(t.job_id, t.engine, t.status): t for t in known}
    for key in keys:
        row = rows.setdefault(key, RunTally(job_id=key[0], engine=key[1], status=key[2]))
        row.runs += counts[key]
        row.duplicate_claims += duplicates[key]
    RunTally.objects.bulk_create(
        rows.values(),
        update_conflicts=True,
        unique_fields=["job_id", "engine", "status"],
        update_fields=["runs", "duplicate_claims"],
    )


class JobRunQuerySet(models.QuerySet):
    def delete(self):
        """Delete these runs; the finished ones stay counted, in the tally, whoever deletes them.

        Runs the tally does not hold yet (past the mark, or pending) add to its run counts;
        every deleted run adds its duplicate claims. Same transaction, same return value.
        """
        with transaction.atomic(using=self.db):
            mark = locked_mark()
            rows = list(self.select_for_update().values_list("pk", "job_id", "engine", "status", "duplicate_claims"))
            pending = set(mark.pending)
            counts, duplicates = Counter(), Counter()
            for pk, job_id, engine, status, claims in rows:
                if status in FINISHED and (pk > mark.counted_to or pk in pending):
                    counts[(job_id, engine, status)] += 1
                duplicates[(job_id, engine, status)] += claims
            deleted = models.QuerySet.delete(self.model.objects.filter(pk__in=[row[0] for row in rows]))
            add(counts, duplicates)
        return deleted


def prune_deleted_jobs() -> int:
    """Drop the tally rows of jobs that no longer exist (their series ended with the job)."""
    return RunTally.objects.exclude(job_id__in=Job.objects.values("pk")).delete()[0]
