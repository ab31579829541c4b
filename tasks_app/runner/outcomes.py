"""Recording an attempt's outcome: only the worker that holds the attempt writes it.

A failure with retries left becomes ``queued`` for the next attempt (its engine re-delivers
it) and the attempt just ended is kept in ``attempts``; a value the database refuses ends the
run ``failed`` with the reason; only an outage is waited out. One ``UPDATE`` on the success path.
A job with ``alert_after_failures`` set has its final outcome noted in its alert streak after
the outcome is written (``alerts/streaks.py``: one more statement on success, never an error).

What it is not: no claims and no handler calls.
"""

import datetime as dt
import logging
import random
import time
from dataclasses import dataclass

from django.db import DatabaseError, connection
from django.utils import timezone

from taskhub.log import log_context
from tasks_app import conf
from tasks_app.alerts import streaks as alert_streaks
from tasks_app.handlers.context import RunContext
from tasks_app.handlers.registry import UnknownHandler
from tasks_app.models import JobRun, RunStatus
from tasks_app.runner import storable
from tasks_app.runner.claims import attempt_record
from tasks_app.runner.execution import Outcome
from tasks_app.runner.row_updates import update_run

log = logging.getLogger("tasks_app.runner")


@dataclass
class Attempt:
    """One claimed attempt of a run, in this process: the row, who claimed it, the handler's context."""

    run: JobRun
    claimed: dict  # the worker and attempt of the claim: the outcome is written only while they still hold
    context: RunContext | None = None
    progress_written: tuple = (None, "")  # the progress the last heartbeat wrote

    @classmethod
    def of(cls, run: JobRun) -> "Attempt":
        return cls(run, claimed={"worker": run.worker, "attempt": run.attempt})


def skip_claimed(run: JobRun, reason: str) -> None:
    """A run claimed but not to be started (its fire came too late): ``skipped``, with the reason."""
    values = {
        "status": RunStatus.SKIPPED,
        "reason": reason[:300],
        "finished_at": timezone.now(),
        "started_at": None,
        "heartbeat_at": None,
        "worker": "",
        "lane": None,
    }
    JobRun.objects.filter(pk=run.pk, worker=run.worker, attempt=run.attempt).update(**values)
    for name, value in values.items():
        setattr(run, name, value)
    log.info("run skipped", extra={"job": run.job.name, "run": run.pk, "reason": run.reason})


def finish(attempt: Attempt, outcome: Outcome) -> None:
    """Record how the attempt ended (its log lines name the job, run, engine and attempt)."""
    run = attempt.run
    with log_context(job=run.job.name, run=run.pk, engine=run.engine, attempt=run.attempt):
        _record(attempt, outcome)


def _record(attempt: Attempt, outcome: Outcome) -> None:
    run, context = attempt.run, attempt.context
    now = timezone.now()
    run.status, run.finished_at, run.error, run.reason = outcome.status, now, outcome.error, outcome.reason
    run.duration_seconds = (now - run.started_at).total_seconds() if run.started_at else None
    run.result = outcome.result
    run.progress = 1.0 if outcome.status == RunStatus.SUCCEEDED else getattr(context, "progress", None)
    run.progress_message = getattr(context, "progress_message", "")
    run.lane = None  # its place under max_running is free again, whatever comes next
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
        "lane",
    ]
    if not _write_outcome(attempt, {f: getattr(run, f) for f in fields}):
        log.warning("run was taken over by another worker; outcome discarded", extra={"run": run.pk})
        return
    if run.job.alert_after_failures:  # the job came with the claim: no query for jobs without alerts
        alert_streaks.after_outcome(run)
    status = outcome.status if run.status == RunStatus.QUEUED else run.status  # a retry; or failed to store
    # A success is on record in its row; its line is DEBUG (one JSON line fewer per run). Anything
    # else is a WARNING.
    level = logging.DEBUG if status == RunStatus.SUCCEEDED else logging.WARNING
    if not log.isEnabledFor(level):
        return
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
                "lane": None,
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
            return bool(update_run(run.pk, attempt.claimed, values))
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
