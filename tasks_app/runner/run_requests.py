"""Runs that people and other systems ask for: run now, an API trigger, a cancel.

``queue_run`` queues a run in its own slot (now); ``engines.request_run`` hands it to the
job's engine, whose worker then claims it like any other slot. What it is not: nothing here runs a
handler.
"""

import datetime as dt

from django.db import IntegrityError, transaction
from django.utils import timezone

from tasks_app.exceptions import RunRefused
from tasks_app.handlers.registry import KwargsError, UnknownHandler
from tasks_app.models import Job, JobRun, RunStatus, Trigger


def queue_run(job: Job, trigger: str = Trigger.RUN_NOW, kwargs: dict | None = None) -> JobRun:
    """A queued run of ``job`` in its own slot (now); refused while a run-now is still queued."""

    problem = job.schedule_problem()
    if problem:  # a broken job is refused everywhere until it is corrected (its handler may be gone)
        raise RunRefused(f"'{job.name}' cannot run until it is corrected: {problem}")
    if kwargs is not None:
        try:
            job.spec.validate_kwargs(kwargs)
        except (UnknownHandler, KwargsError) as exc:
            raise RunRefused(str(exc)) from None
    now = timezone.now()
    if now.microsecond == 0:
        now += dt.timedelta(microseconds=1)  # never the same instant as a schedule tick
    try:
        with transaction.atomic():
            return JobRun.objects.create(
                job=job,
                engine=job.engine,
                trigger=trigger,
                scheduled_for=now,
                kwargs=job.kwargs if kwargs is None else kwargs,
            )
    except IntegrityError:
        raise RunRefused(f"a run-now of '{job.name}' is already queued") from None


def request_cancel(runs) -> int:
    """Ask running or queued runs to stop; queued ones are cancelled at once."""
    now = timezone.now()
    queued = runs.filter(status=RunStatus.QUEUED).update(
        status=RunStatus.CANCELLED, finished_at=now, reason="cancelled before it started"
    )
    return queued + runs.filter(status=RunStatus.RUNNING).update(cancel_requested=True)
