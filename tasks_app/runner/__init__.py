"""The engine-neutral runner: claim a slot, run its handler, record the outcome.

Both engines call ``run_slot`` (through ``BaseEngine.execute``); nothing outside this package
calls a handler or writes run history. ``claims.py`` decides who runs a slot, ``run_requests.py``
queues the runs people and other systems ask for (run now, API triggers) and their cancels,
``skipped.py`` records the slots that will not run, ``loop.py`` and ``execution.py`` run a handler
on the process's event loop; this module runs and records.

What it is not: it never imports an engine; engines call it and deliver what it leaves queued.

- **Claim.** ``claims.claim`` decides whether this worker runs the slot.
- **Run.** The handler runs on the process's long-lived event loop (``loop.py``) under the
  job's timeout; this thread writes a heartbeat and the reported progress meanwhile and
  cancels the handler when a person asks.
- **Record.** Only the worker that holds the current attempt can finish it. A failure with
  retries left becomes ``queued`` for the next attempt (its engine re-delivers it), and the
  attempt just ended is kept in ``attempts``.
"""

import datetime as dt
import logging
import random
import time
from concurrent.futures import CancelledError
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from django.db import DatabaseError, close_old_connections, connection
from django.utils import timezone

from taskhub.log import log_context
from tasks_app import conf
from tasks_app.exceptions import HandlerFailed
from tasks_app.handlers.context import RunContext
from tasks_app.handlers.registry import KwargsError, UnknownHandler, registry
from tasks_app.models import JobRun, RunStatus, Trigger
from tasks_app.runner import loop, storable
from tasks_app.runner.claims import attempt_record, claim
from tasks_app.runner.execution import Outcome, invoke

log = logging.getLogger("tasks_app.runner")


def run_slot(
    job_id: int,
    scheduled_for: dt.datetime,
    engine: str,
    attempt: int = 1,
    trigger: str = Trigger.SCHEDULE,
    task_id: str = "",
) -> JobRun | None:
    """Claim the slot and run it here; ``None`` when the slot was not ours to run."""
    close_old_connections()
    try:
        run = claim(job_id, scheduled_for, engine, attempt, trigger, storable.text(task_id or "", 255))
        if run is not None:
            with log_context(job=run.job.name, run=run.pk, engine=engine, attempt=run.attempt):
                execute(Attempt(run, claimed={"worker": run.worker, "attempt": run.attempt}))
        return run
    finally:
        close_old_connections()


@dataclass
class Attempt:
    """One claimed attempt of a run, in this process: the row, who claimed it, the handler's context."""

    run: JobRun
    claimed: dict  # the worker and attempt of the claim: the outcome is written only while they still hold
    context: RunContext | None = None


# -- run -------------------------------------------------------------------------------------
def execute(attempt: Attempt) -> None:
    run = attempt.run
    job = run.job
    try:
        spec = job.spec
        kwargs = spec.validate_kwargs(run.kwargs)
    except (UnknownHandler, KwargsError) as exc:
        return finish(attempt, Outcome(RunStatus.FAILED, error=str(exc)))
    attempt.context = RunContext(
        job_name=job.name,
        run_id=run.pk,
        scheduled_for=run.scheduled_for,
        attempt=run.attempt,
        engine=run.engine,
        logger=logging.getLogger(f"tasks_app.handlers.{spec.name}"),
    )
    future = loop.submit(invoke(spec, kwargs, attempt.context, job.effective_timeout()))
    finish(attempt, _wait(attempt, future))


def _wait(attempt: Attempt, future) -> Outcome:
    beat = conf.get("HEARTBEAT_SECONDS")
    while True:
        try:
            return future.result(timeout=beat)
        except FutureTimeout:
            if _heartbeat(attempt):
                future.cancel()
        except CancelledError:
            return Outcome(RunStatus.CANCELLED, reason="cancelled on request")
        except Exception as exc:  # the engine interrupting this thread, e.g. Celery's soft time limit
            future.cancel()
            return Outcome(
                RunStatus.TIMED_OUT,
                error=f"stopped by the engine: {type(exc).__name__}: {exc}",
                reason="engine time limit",
            )


def _heartbeat(attempt: Attempt) -> bool:
    """Write the heartbeat and latest progress; whether a cancel was requested."""
    run, context = attempt.run, attempt.context
    mine = JobRun.objects.filter(pk=run.pk, worker=run.worker, attempt=run.attempt, status=RunStatus.RUNNING)
    progress = storable.row(JobRun, {"progress": context.progress, "progress_message": context.progress_message})
    try:
        try:
            mine.update(heartbeat_at=timezone.now(), **progress)
        except DatabaseError as exc:
            if storable.is_outage(exc):
                raise
            mine.update(heartbeat_at=timezone.now())  # the progress was refused; the heartbeat must not be
        return mine.filter(cancel_requested=True).exists()
    except DatabaseError:  # the database is restarting: the handler carries on, the next beat retries
        connection.close()
        return False


# -- record ----------------------------------------------------------------------------------
def finish(attempt: Attempt, outcome: Outcome) -> None:
    run, context = attempt.run, attempt.context
    now = timezone.now()
    run.status, run.finished_at, run.error, run.reason = outcome.status, now, outcome.error, outcome.reason
    run.duration_seconds = (now - run.started_at).total_seconds() if run.started_at else None
    run.result = outcome.result
    run.progress = 1.0 if outcome.status == RunStatus.SUCCEEDED else getattr(context, "progress", None)
    run.progress_message = getattr(context, "progress_message", "")
    if outcome.status in (RunStatus.FAILED, RunStatus.TIMED_OUT) and run.attempt <= _retries(run):
        _queue_retry(run, now)
    fields = [
        "status",
        "finished_at",
        "error",
        "reason",
        "duration_seconds",
        "result",
        "progress",
        "progress_message",
        "attempt",
        "attempts",
        "next_attempt_at",
        "started_at",
        "heartbeat_at",
        "worker",
    ]
    if not _write_outcome(attempt, {f: getattr(run, f) for f in fields}):
        log.warning("run was taken over by another worker; outcome discarded", extra={"run": run.pk})
        return
    status = outcome.status if run.status == RunStatus.QUEUED else run.status  # a retry; or failed to store
    level = logging.INFO if status == RunStatus.SUCCEEDED else logging.WARNING
    error = (run.error.strip().splitlines() or [""])[-1]
    log.log(
        level,
        "run %s",
        status,
        extra={
            "status": run.status,
            "duration_seconds": run.duration_seconds,
            "error": error,
            "next_attempt_at": run.next_attempt_at,
        },
    )


def _write_outcome(attempt: Attempt, values: dict) -> bool:
    """Store the outcome, escaped; one the database refuses ends the run ``failed`` with the reason.

    Whatever the handler did, the run does not stay ``running``: only an outage is waited out.
    """
    run = attempt.run
    values = storable.row(JobRun, values)
    try:
        written = _update_waiting_out_outages(attempt, values)
    except Exception as exc:
        if storable.is_outage(exc):
            raise
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:500]
        log.error(
            "the database refused the outcome; recording the run as failed", extra={"run": run.pk, "error": reason}
        )
        values = storable.row(
            JobRun,
            {
                "status": RunStatus.FAILED,
                "error": f"the outcome could not be stored: {reason}",
                "result": None,
                "progress_message": "",
                "next_attempt_at": None,
                "finished_at": values["finished_at"],
                "duration_seconds": values["duration_seconds"],
                **attempt.claimed,
            },
        )
        written = _update_waiting_out_outages(attempt, values)
    for name, value in values.items():
        setattr(run, name, value)
    return written


def _update_waiting_out_outages(attempt: Attempt, values: dict) -> bool:
    run = attempt.run
    deadline = time.monotonic() + conf.get("OUTCOME_RETRY_SECONDS")
    while True:
        try:
            return bool(JobRun.objects.filter(pk=run.pk, **attempt.claimed).update(**values))
        except DatabaseError as exc:
            if not storable.is_outage(exc) or time.monotonic() > deadline:
                raise
            log.warning("cannot store the outcome yet; retrying", extra={"run": run.pk, "error": str(exc)})
            connection.close()
            time.sleep(1.0)


def _retries(run: JobRun) -> int:
    try:
        return run.job.effective_retries()
    except UnknownHandler:
        return 0


def _queue_retry(run: JobRun, now) -> None:
    backoff = run.job.effective_backoff() * 2 ** (run.attempt - 1)
    delay = min(backoff + random.uniform(0, backoff), conf.get("MAX_RETRY_DELAY_SECONDS"))
    run.attempts.append(attempt_record(run, run.status, run.error))
    run.status, run.attempt, run.next_attempt_at = RunStatus.QUEUED, run.attempt + 1, now + dt.timedelta(seconds=delay)
    run.started_at = run.heartbeat_at = None
    run.worker = ""


def call_handler(name: str, kwargs: dict, task_id: str = ""):
    """Run a handler without a job (ad-hoc Celery calls): validated, on the process loop, with its timeout."""

    spec = registry.get(name)
    validated = spec.validate_kwargs(kwargs)
    context = RunContext(
        job_name="",
        run_id=0,
        scheduled_for=timezone.now(),
        attempt=1,
        engine="celery",
        logger=logging.getLogger(f"tasks_app.handlers.{spec.name}"),
    )
    outcome = loop.submit(invoke(spec, validated, context, spec.timeout)).result()
    if outcome.status != RunStatus.SUCCEEDED:
        raise HandlerFailed(f"{name} {outcome.status}: {(outcome.error.strip().splitlines() or [''])[-1]}")
    return storable.json_value(outcome.result)
