"""The engine-neutral runner: claim a slot, run its handler, record the outcome.

Both engines call ``run_job``; nothing else calls a handler or writes run history.

- **Claim.** ``(job, scheduled_for)`` is unique in the database. The claim takes the job's
  row lock, then inserts the run or takes over the existing row: a queued run (run now,
  a retry) of the same attempt, or a running one whose heartbeat went stale (its worker
  died). Any other existing row is a duplicate: counted on that row and logged, and the
  handler is not called. ``max_running`` is checked under the same lock.
- **Run.** The handler runs on the process's long-lived event loop (``loop.py``) under the
  job's timeout; this thread writes a heartbeat and the reported progress meanwhile and
  cancels the handler when a person asks.
- **Record.** Only the worker that holds the current attempt can finish it. A failure with
  retries left becomes ``queued`` for the next attempt (its engine re-delivers it), and the
  attempt just ended is kept in ``attempts``.
"""

import datetime as dt
import json
import logging
import os
import random
import socket
import time
from concurrent.futures import CancelledError, TimeoutError as FutureTimeout

from django.db import DatabaseError, close_old_connections, connection, transaction
from django.db.models import F
from django.utils import timezone

from taskhub.log import log_context
from tasks_app import conf, loop
from tasks_app.context import RunContext
from tasks_app.execution import Outcome, invoke
from tasks_app.models import Job, JobRun, RunStatus, Trigger
from tasks_app.registry import KwargsError, UnknownHandler

log = logging.getLogger("tasks_app.runner")


class RunRefused(Exception):
    """A run that may not be requested now; str(exc) is one line for a person."""


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_job(job_id: int, scheduled_for: dt.datetime, engine: str, attempt: int = 1,
            trigger: str = Trigger.SCHEDULE, task_id: str = "") -> JobRun | None:
    """Claim the slot and run it here; ``None`` when the slot was not ours to run."""
    close_old_connections()
    try:
        run = claim(job_id, scheduled_for, engine, attempt, trigger, task_id)
        if run is not None:
            run.claimed = {"worker": run.worker, "attempt": run.attempt}  # finish() is conditional on these
            with log_context(job=run.job.name, run=run.pk, engine=engine, attempt=run.attempt):
                execute(run)
        return run
    finally:
        close_old_connections()


# -- claim -----------------------------------------------------------------------------------
def claim(job_id, scheduled_for, engine, attempt=1, trigger=Trigger.SCHEDULE, task_id="") -> JobRun | None:
    now = timezone.now()
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None:
            log.error("no such job", extra={"job": job_id, "engine": engine})
            return None
        existing = JobRun.objects.select_for_update().filter(job=job, scheduled_for=scheduled_for).first()
        if existing is not None:
            return _reclaim(existing, attempt, now, task_id)
        run = JobRun(job=job, engine=engine, trigger=trigger, scheduled_for=scheduled_for, kwargs=job.kwargs,
                     celery_task_id=task_id)
        if _overlaps(run, now):
            return None
        run.attempt = attempt
        for name, value in _running_fields(now).items():
            setattr(run, name, value)
        run.save(force_insert=True)
        return run


def _overlaps(run: JobRun, now) -> bool:
    """Record ``run`` as skipped when the job already runs ``max_running`` times."""
    running = _running(run.job, now).exclude(pk=run.pk).count()
    if running < run.job.max_running:
        return False
    run.status, run.finished_at = RunStatus.SKIPPED, now
    run.reason = f"overlap: {running} run(s) still running (max_running={run.job.max_running})"
    run.save()
    log.info("run skipped", extra={"reason": run.reason, "run": run.pk})
    return True


def _running_fields(now) -> dict:
    return {"status": RunStatus.RUNNING, "started_at": now, "heartbeat_at": now, "worker": worker_id(),
            "progress": None, "progress_message": ""}


def _running(job, now):
    stale = now - dt.timedelta(seconds=conf.get("STALE_AFTER_SECONDS"))
    return job.runs.filter(status=RunStatus.RUNNING, heartbeat_at__gte=stale)


def _reclaim(run: JobRun, attempt: int, now, task_id: str = "") -> JobRun | None:
    if run.status == RunStatus.QUEUED and run.attempt == attempt:
        if _overlaps(run, now):
            return None
    elif run.status == RunStatus.RUNNING and _lost(run, now):
        run.attempts.append(_attempt_record(run, "lost", f"worker {run.worker} stopped sending heartbeats"))
        run.attempt += 1
        log.warning("taking over a lost run", extra={"run": run.pk, "previous_worker": run.worker})
    else:
        JobRun.objects.filter(pk=run.pk).update(duplicate_claims=F("duplicate_claims") + 1)
        log.info("duplicate claim ignored", extra={"job": run.job_id, "run": run.pk, "status": run.status,
                                                     "scheduled_for": run.scheduled_for.isoformat(),
                                                     "claimed_attempt": attempt})
        return None
    for name, value in _running_fields(now).items():
        setattr(run, name, value)
    run.next_attempt_at = None
    run.celery_task_id = task_id or run.celery_task_id
    run.save()
    return run


def _lost(run: JobRun, now) -> bool:
    """Whether the worker of a running run is gone: a dead process here, or a stale heartbeat."""
    stale = now - dt.timedelta(seconds=conf.get("STALE_AFTER_SECONDS"))
    if run.heartbeat_at is None or run.heartbeat_at < stale:
        return True
    host, _, pid = run.worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)  # signal 0: is that process (a killed pool process, say) still there?
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _attempt_record(run: JobRun, status: str, error: str) -> dict:
    return {"attempt": run.attempt, "status": status, "error": error, "worker": run.worker,
            "started_at": run.started_at.isoformat() if run.started_at else None,
            "finished_at": (run.finished_at or timezone.now()).isoformat(), "duration_seconds": run.duration_seconds}


# -- run -------------------------------------------------------------------------------------
def execute(run: JobRun) -> None:
    job = run.job
    try:
        spec = job.spec
        kwargs = spec.validate_kwargs(run.kwargs)
    except (UnknownHandler, KwargsError) as exc:
        return finish(run, Outcome(RunStatus.FAILED, error=str(exc)))
    run.context = RunContext(job_name=job.name, run_id=run.pk, scheduled_for=run.scheduled_for,
                             attempt=run.attempt, engine=run.engine,
                             logger=logging.getLogger(f"tasks_app.handlers.{spec.name}"))
    future = loop.submit(invoke(spec, kwargs, run.context, job.effective_timeout()))
    finish(run, _wait(run, future))


def _wait(run: JobRun, future) -> Outcome:
    beat = conf.get("HEARTBEAT_SECONDS")
    while True:
        try:
            return future.result(timeout=beat)
        except FutureTimeout:
            if _heartbeat(run):
                future.cancel()
        except CancelledError:
            return Outcome(RunStatus.CANCELLED, reason="cancelled on request")
        except Exception as exc:  # the engine interrupting this thread, e.g. Celery's soft time limit
            future.cancel()
            return Outcome(RunStatus.TIMED_OUT, error=f"stopped by the engine: {type(exc).__name__}: {exc}",
                           reason="engine time limit")


def _heartbeat(run: JobRun) -> bool:
    """Write the heartbeat and latest progress; whether a cancel was requested."""
    context = run.context
    mine = JobRun.objects.filter(pk=run.pk, worker=run.worker, attempt=run.attempt, status=RunStatus.RUNNING)
    try:
        mine.update(heartbeat_at=timezone.now(), progress=context.progress, progress_message=context.progress_message)
        return mine.filter(cancel_requested=True).exists()
    except DatabaseError:  # the database is restarting: the handler carries on, the next beat retries
        connection.close()
        return False


# -- record ----------------------------------------------------------------------------------
def finish(run: JobRun, outcome: Outcome) -> None:
    now = timezone.now()
    context = getattr(run, "context", None)
    run.status, run.finished_at, run.error, run.reason = outcome.status, now, outcome.error, outcome.reason
    run.duration_seconds = (now - run.started_at).total_seconds() if run.started_at else None
    run.result = _json_result(outcome.result)
    run.progress = 1.0 if outcome.status == RunStatus.SUCCEEDED else getattr(context, "progress", None)
    run.progress_message = getattr(context, "progress_message", "")
    if outcome.status in (RunStatus.FAILED, RunStatus.TIMED_OUT) and run.attempt <= _retries(run):
        _queue_retry(run, now)
    fields = ["status", "finished_at", "error", "reason", "duration_seconds", "result", "progress",
              "progress_message", "attempt", "attempts", "next_attempt_at", "started_at", "heartbeat_at", "worker"]
    if not _write_outcome(run, {f: getattr(run, f) for f in fields}):
        log.warning("run was taken over by another worker; outcome discarded", extra={"run": run.pk})
        return
    level = logging.INFO if outcome.status == RunStatus.SUCCEEDED else logging.WARNING
    error = (outcome.error.strip().splitlines() or [""])[-1]
    log.log(level, "run %s", outcome.status, extra={"status": run.status, "duration_seconds": run.duration_seconds,
                                                    "error": error, "next_attempt_at": run.next_attempt_at})


def _write_outcome(run: JobRun, values: dict) -> bool:
    """Store the outcome, waiting out a database restart rather than leaving the run ``running``."""
    deadline = time.monotonic() + conf.get("OUTCOME_RETRY_SECONDS")
    while True:
        try:
            return bool(JobRun.objects.filter(pk=run.pk, **run.claimed).update(**values))
        except DatabaseError as exc:
            if time.monotonic() > deadline:
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
    run.attempts.append(_attempt_record(run, run.status, run.error))
    run.status, run.attempt, run.next_attempt_at = RunStatus.QUEUED, run.attempt + 1, now + dt.timedelta(seconds=delay)
    run.started_at = run.heartbeat_at = None
    run.worker = ""


def _json_result(result):
    try:
        json.dumps(result)
        return result
    except (TypeError, ValueError):
        log.warning("handler result is not JSON; stored as its repr", extra={"result_type": type(result).__name__})
        return repr(result)


def call_handler(name: str, kwargs: dict, task_id: str = ""):
    """Run a handler without a job (ad-hoc Celery calls): validated, on the process loop, with its timeout."""
    from tasks_app.registry import registry

    spec = registry.get(name)
    validated = spec.validate_kwargs(kwargs)
    context = RunContext(job_name="", run_id=0, scheduled_for=timezone.now(), attempt=1, engine="celery",
                         logger=logging.getLogger(f"tasks_app.handlers.{spec.name}"))
    outcome = loop.submit(invoke(spec, validated, context, spec.timeout)).result()
    if outcome.status != RunStatus.SUCCEEDED:
        raise HandlerFailed(f"{name} {outcome.status}: {(outcome.error.strip().splitlines() or [''])[-1]}")
    return _json_result(outcome.result)


class HandlerFailed(Exception):
    """An ad-hoc handler call did not succeed; str(exc) names the handler and the last error line."""


# -- requests from people and other systems --------------------------------------------------
def queue_run(job: Job, trigger: str = Trigger.RUN_NOW, kwargs: dict | None = None) -> JobRun:
    """A queued run of ``job`` in its own slot (now); refused while a run-now is still queued."""
    from django.db import IntegrityError

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
            return JobRun.objects.create(job=job, engine=job.engine, trigger=trigger, scheduled_for=now,
                                         kwargs=job.kwargs if kwargs is None else kwargs)
    except IntegrityError:
        raise RunRefused(f"a run-now of '{job.name}' is already queued") from None


def request_run(job: Job, trigger: str = Trigger.RUN_NOW, kwargs: dict | None = None) -> JobRun:
    """Queue a run of ``job`` and hand it to the job's engine."""
    from tasks_app.engines import get_engine
    from tasks_app.engines.base import EngineUnavailable

    run = queue_run(job, trigger, kwargs)
    try:
        get_engine(job.engine).deliver(run)
    except EngineUnavailable as exc:
        exc.run = run  # queued all the same: the caller says so instead of pretending it runs
        raise
    return run


def request_cancel(runs) -> int:
    """Ask running or queued runs to stop; queued ones are cancelled at once."""
    now = timezone.now()
    queued = runs.filter(status=RunStatus.QUEUED).update(status=RunStatus.CANCELLED, finished_at=now,
                                                         reason="cancelled before it started")
    return queued + runs.filter(status=RunStatus.RUNNING).update(cancel_requested=True)
