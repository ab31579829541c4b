"""django-apscheduler's job store and execution log, written in bulk off the fire path.

``TaskhubJobStore`` is ``DjangoJobStore`` (the same tables, pickled job states, the same reads)
with two changes for a scheduler that fires many jobs at once:

- ``update_jobs`` writes the next run times of a whole tick's jobs in one statement (and
  ``remove_jobs`` drops its once-only jobs in one), after the tick's fires are on their way
  (the stock store locks and saves each job in its own transaction, serially, in the
  scheduler thread, before the next job's fire is even submitted);
- the execution log (``DjangoJobExecution``) of taskhub's fires is written by ``log_executions``,
  one statement per batch once its runs ended, instead of two row updates per fire from event
  listeners. Plain functions scheduled through ``SchedulerManager`` keep the stock listeners.

What it is not: no scheduling decisions (``scheduler.py``) and no runs (the runner).
"""

import datetime as dt
import decimal
import logging
import pickle

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Case, Value, When
from django.utils import timezone
from django_apscheduler.jobstores import DjangoJobStore
from django_apscheduler.models import DjangoJob, DjangoJobExecution
from django_apscheduler.util import get_django_internal_datetime

log = logging.getLogger("tasks_app.apscheduler")


class TaskhubJobStore(DjangoJobStore):
    def update_jobs(self, jobs) -> None:
        """Store each job's new next run time and state: one ``UPDATE`` per 1,000 jobs.

        No transaction around them: a job whose write failed keeps its old next run time, fires
        its slot again at the next tick, and the runner's claim keeps that slot to one run.
        """
        for start in range(0, len(jobs), 1000):
            batch = jobs[start : start + 1000]
            times = [When(id=job.id, then=Value(get_django_internal_datetime(job.next_run_time))) for job in batch]
            states = [
                When(id=job.id, then=Value(pickle.dumps(job.__getstate__(), self.pickle_protocol))) for job in batch
            ]
            DjangoJob.objects.filter(id__in=[job.id for job in batch]).update(
                next_run_time=Case(*times, output_field=DjangoJob._meta.get_field("next_run_time")),
                job_state=Case(*states, output_field=DjangoJob._meta.get_field("job_state")),
            )

    def remove_jobs(self, job_ids) -> None:
        """Drop jobs that will not fire again (once-only jobs after their fire), with their execution log.

        Their rows are locked first: a batch that logs its executions meanwhile (``log_executions``,
        in a pool thread) either commits before the log is deleted with its job, or finds the job
        gone — never a log row inserted between the two deletes, which the foreign key refuses.
        """
        if job_ids:
            with transaction.atomic():
                list(DjangoJob.objects.select_for_update().filter(id__in=job_ids).values_list("id", flat=True))
                DjangoJob.objects.filter(id__in=job_ids).delete()


def log_executions(entries) -> None:
    """Write the execution log of a batch of fires: ``(store id, run time, status, error)`` each.

    One statement; a fire of a job removed meanwhile is left out, and a failure to write the
    log is logged and never touches a run.
    """
    finished = timezone.now()
    rows = [
        DjangoJobExecution(
            job_id=job_id,
            run_time=get_django_internal_datetime(run_time),
            status=status,
            duration=_seconds(finished - run_time),
            finished=_seconds(finished - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)),
            exception=error[:1000] or None,
            traceback=error or None,
        )
        for job_id, run_time, status, error in entries
    ]
    if not rows:
        return
    try:
        for attempt in range(2):
            existing = set(DjangoJob.objects.filter(id__in={r.job_id for r in rows}).values_list("id", flat=True))
            try:
                DjangoJobExecution.objects.bulk_create([r for r in rows if r.job_id in existing], ignore_conflicts=True)
                return
            except IntegrityError:  # a job removed between the look and the write (``remove_jobs``)
                if attempt:
                    raise
    except DatabaseError as exc:
        log.warning("the execution log was not written", extra={"error": str(exc), "fires": len(rows)})


def _seconds(delta: dt.timedelta) -> decimal.Decimal:
    return decimal.Decimal(delta.total_seconds()).quantize(decimal.Decimal("0.01"))
