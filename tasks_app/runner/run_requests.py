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


def check_runnable(job: Job, *, paused_allowed: bool) -> None:
    """The one rule for runs asked for (run now, retry, API): ``RunRefused`` with a line saying why not.

    A broken job runs nowhere until it is corrected (its handler may be gone). A paused job's
    *schedule* is paused: a person may still run it on purpose (the admin's Run now and Retry,
    ``manage.py run_job``); an API client may not, unless it is allowed to (``ApiClient.may_run_paused``).
    """
    problem = job.schedule_problem()
    if problem:
        raise RunRefused(f"'{job.name}' cannot run until it is corrected: {problem}")
    if not job.enabled and not paused_allowed:
        raise RunRefused(f"job '{job.name}' is paused (this API client may not run paused jobs)")


def queue_run(
    job: Job,
    trigger: str = Trigger.RUN_NOW,
    kwargs: dict | None = None,
    *,
    paused_allowed: bool | None = None,
    requested_by: str = "",
    api_client=None,
) -> JobRun:
    """A queued run of ``job`` in its own slot (now); refused while a run-now is still queued.

    ``paused_allowed``: whether a paused job may run (``check_runnable``); unless told, yes for a
    person's request and no for an API client's. ``requested_by`` says who asked (a person, an API
    client), ``api_client`` is the client that did.
    """
    check_runnable(job, paused_allowed=trigger != Trigger.API if paused_allowed is None else paused_allowed)
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
                requested_by=requested_by[:200],
                api_client=api_client,
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
