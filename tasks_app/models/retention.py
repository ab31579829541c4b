"""History retention: batched deletes, so a large backlog never takes one huge transaction."""

import datetime as dt

from django.utils import timezone
from django_apscheduler.models import DjangoJobExecution

from tasks_app.models import FINISHED, JobRun


def delete_runs_older_than(days: int, batch_size: int = 1000) -> int:
    """Delete finished runs whose slot is more than ``days`` old; returns how many."""

    if days < 0 or batch_size < 1:
        raise ValueError("days must be >= 0 and batch_size >= 1")
    cutoff = timezone.now() - dt.timedelta(days=days)
    old = JobRun.objects.filter(scheduled_for__lt=cutoff, status__in=FINISHED)
    total = 0
    while ids := list(old.values_list("pk", flat=True)[:batch_size]):
        total += JobRun.objects.filter(pk__in=ids).delete()[0]
    _delete_apscheduler_executions(cutoff, batch_size)
    return total


def _delete_apscheduler_executions(cutoff, batch_size: int) -> None:
    """django-apscheduler's execution log ages out with the run history."""

    old = DjangoJobExecution.objects.filter(run_time__lt=cutoff)
    while ids := list(old.values_list("pk", flat=True)[:batch_size]):
        DjangoJobExecution.objects.filter(pk__in=ids).delete()
