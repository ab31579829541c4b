"""History retention: batched deletes, so a large backlog never takes one huge transaction.

Each batch's runs go into the run tally in the same transaction (``JobRun``'s queryset
``delete()``), so the counters of ``/metrics`` never go down when history is deleted.
"""

import datetime as dt

from django.utils import timezone
from django_apscheduler.models import DjangoJobExecution

from tasks_app.models import FINISHED, AlertStreak, JobRun
from tasks_app.models.run_counts import prune_deleted_jobs

MAX_DAYS = 36_500  # a century: further back than the calendar reaches from now is an OverflowError
MAX_BATCH_SIZE = 10_000  # ids in one DELETE … IN (…), well within SQLite's variable limit


def delete_runs_older_than(days: int, batch_size: int = 1000) -> int:
    """Delete finished runs whose slot is more than ``days`` old; returns how many."""

    if not (0 <= days <= MAX_DAYS and 1 <= batch_size <= MAX_BATCH_SIZE):
        raise ValueError(f"days must be 0 to {MAX_DAYS} and batch_size 1 to {MAX_BATCH_SIZE}")
    cutoff = timezone.now() - dt.timedelta(days=days)
    old = JobRun.objects.filter(scheduled_for__lt=cutoff, status__in=FINISHED)
    total = 0
    while ids := list(old.values_list("pk", flat=True)[:batch_size]):
        total += JobRun.objects.filter(pk__in=ids).delete()[0]
    prune_deleted_jobs()
    _delete_apscheduler_executions(cutoff, batch_size)
    _delete_closed_alert_streaks(cutoff, batch_size)
    return total


def _delete_apscheduler_executions(cutoff, batch_size: int) -> None:
    """django-apscheduler's execution log ages out with the run history."""

    old = DjangoJobExecution.objects.filter(run_time__lt=cutoff)
    while ids := list(old.values_list("pk", flat=True)[:batch_size]):
        DjangoJobExecution.objects.filter(pk__in=ids).delete()


def _delete_closed_alert_streaks(cutoff, batch_size: int) -> None:
    """Alert streaks that ended before the cutoff go with their messages; open ones stay, however old."""

    old = AlertStreak.objects.filter(closed_at__lt=cutoff)
    while ids := list(old.values_list("pk", flat=True)[:batch_size]):
        AlertStreak.objects.filter(pk__in=ids).delete()
