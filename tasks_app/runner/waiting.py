"""Waiting for the handlers a worker started: outcomes as they come, heartbeats while they run.

One thread waits for any number of runs started on the process loop (one for a Celery task, a
whole tick's on the APScheduler engine). A run that ends within ``HEARTBEAT_SECONDS`` costs no
heartbeat at all; for the rest one statement writes every heartbeat (a run whose progress moved
gets its own), and one asks which of them a person wants cancelled.

What it is not: no claims, and no outcome writing of its own (``outcomes.finish`` does that).
"""

import concurrent.futures
import time

from django.db import DatabaseError, connection
from django.utils import timezone

from tasks_app import conf
from tasks_app.models import JobRun, RunStatus
from tasks_app.runner import storable
from tasks_app.runner.execution import Outcome
from tasks_app.runner.outcomes import Attempt, finish


def wait_all(pending: dict[concurrent.futures.Future, Attempt]) -> None:
    """Finish each attempt as its handler ends; heartbeat the rest and cancel those a person asked to stop."""
    beat = conf.get("HEARTBEAT_SECONDS")
    next_beat = time.monotonic() + beat
    while pending:
        try:
            done, _ = concurrent.futures.wait(
                pending, timeout=max(0.0, next_beat - time.monotonic()), return_when=concurrent.futures.FIRST_COMPLETED
            )
        except Exception as exc:  # the engine interrupting this thread, e.g. Celery's soft time limit
            _stopped_by_engine(pending, exc)
            return
        for future in done:
            finish(pending.pop(future), outcome_of(future))
        if pending and time.monotonic() >= next_beat:
            cancel = heartbeat(list(pending.values()))
            for future, attempt in pending.items():
                if attempt.run.pk in cancel:
                    future.cancel()
            next_beat = time.monotonic() + beat


def outcome_of(future: concurrent.futures.Future) -> Outcome:
    if future.cancelled():
        return Outcome(RunStatus.CANCELLED, reason="cancelled on request")
    return future.result()  # ``execution.invoke`` turns every handler error into an outcome


def _stopped_by_engine(pending: dict, exc: Exception) -> None:
    for future, attempt in pending.items():
        future.cancel()
        finish(
            attempt,
            Outcome(
                RunStatus.TIMED_OUT,
                error=f"stopped by the engine: {type(exc).__name__}: {exc}",
                reason="engine time limit",
            ),
        )


def heartbeat(attempts: list[Attempt]) -> set[int]:
    """Write the heartbeats (and progress that moved) of running attempts; the run ids asked to cancel."""
    now = timezone.now()
    mine = JobRun.objects.filter(status=RunStatus.RUNNING)
    try:
        quiet = []
        for attempt in attempts:
            progress = (attempt.context.progress, attempt.context.progress_message)
            if progress == attempt.progress_written:
                quiet.append(attempt.run.pk)
            else:
                _write_progress(mine.filter(pk=attempt.run.pk, **attempt.claimed), now, progress)
                attempt.progress_written = progress
        if quiet:
            mine.filter(pk__in=quiet, worker=attempts[0].claimed["worker"]).update(heartbeat_at=now)
        ids = [attempt.run.pk for attempt in attempts]
        return set(mine.filter(pk__in=ids, cancel_requested=True).values_list("pk", flat=True))
    except DatabaseError:  # the database is restarting: the handlers carry on, the next beat retries
        connection.close()
        return set()


def _write_progress(run, now, progress: tuple) -> None:
    values = storable.row(JobRun, {"progress": progress[0], "progress_message": progress[1]})
    try:
        run.update(heartbeat_at=now, **values)
    except DatabaseError as exc:
        if storable.is_outage(exc):
            raise
        run.update(heartbeat_at=now)  # the progress was refused; the heartbeat must not be
