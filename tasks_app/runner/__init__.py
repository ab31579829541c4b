"""The engine-neutral runner: claim slots, run their handlers, record the outcomes.

Both engines call ``run_slots`` (through ``BaseEngine.execute``/``execute_many``); nothing outside
this package calls a handler or writes run history. ``claims.py`` (with ``slot_inserts.py``)
decides who runs a slot, ``run_requests.py`` queues the runs people and other systems ask for
(run now, API triggers) and their cancels, ``skipped.py`` records the slots that will not run,
``loop.py`` and ``execution.py`` run a handler on the process's event loop, ``waiting.py`` waits
for them and ``outcomes.py`` records how each ended.

What it is not: it never imports an engine; engines call it and deliver what it leaves queued.

- **Claim.** ``claims.claim_many`` decides which of the slots this worker runs: on Postgres one
  statement claims every new slot whose job has room (``max_running``) and returns it with its job.
- **Run.** Every claimed handler starts at once on the process's long-lived event loop (``loop.py``)
  under its job's timeout; one thread waits for them all, writing heartbeats only for runs that
  outlive ``HEARTBEAT_SECONDS`` and cancelling the handlers a person asks to stop.
- **Record.** Only the worker that holds the current attempt can finish it (``outcomes.py``).

A scheduled run that succeeds costs two statements: the claim and the outcome (a third, closing
its failing streak, when the job has failure alerts on: ``alerts/streaks.py``).
"""

import concurrent.futures
import datetime as dt
import logging

from django.db import close_old_connections
from django.utils import timezone

from tasks_app.exceptions import HandlerFailed
from tasks_app.handlers.context import RunContext
from tasks_app.handlers.registry import KwargsError, UnknownHandler, registry
from tasks_app.models import JobRun, RunStatus, Trigger
from tasks_app.runner import loop, storable
from tasks_app.runner.claims import claim_many
from tasks_app.runner.connections import ready_connection
from tasks_app.runner.execution import Outcome, invoke
from tasks_app.runner.outcomes import Attempt, finish, skip_claimed
from tasks_app.runner.slot_inserts import Slot
from tasks_app.runner.waiting import wait_all

__all__ = ["Attempt", "Slot", "call_handler", "finish", "run_slot", "run_slots", "start_all"]

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
    [run] = run_slots([Slot(job_id, scheduled_for, attempt, trigger, storable.text(task_id or "", 255))], engine)
    return run


def run_slots(slots: list[Slot], engine: str, vet=None, started=None) -> list[JobRun | None]:
    """Claim the slots together, run the claimed ones side by side here; each slot's run, or ``None``.

    ``vet(run)``, when given, sees each claimed run (with its job) before it starts: a reason it
    returns ends the run ``skipped`` with that reason instead (an engine's misfire policy decided
    after the claim, so an on-time fire needs no read of its job of its own). ``started()``, when
    given, is called (on the process loop) once every claimed handler has begun.
    """
    ready_connection()
    try:
        runs = claim_many(slots, engine)
        attempts = []
        for run in runs:
            if run is None:
                continue
            reason = vet(run) if vet is not None else None
            if reason:
                skip_claimed(run, reason)
                continue
            attempts.append(Attempt.of(run))
        pending = start_all(attempts)
        if started is not None:
            loop.call_after_started(started)
        wait_all(pending)
        return runs
    finally:
        close_old_connections()


def start_all(attempts: list[Attempt]) -> dict[concurrent.futures.Future, Attempt]:
    """Start the attempts' handlers on the process loop, handed over together; each started one by its future.

    One hand-over for the lot: one by one, each would let the loop's thread take the GIL from
    this thread while it still prepares the next (a tick's last handler started a few ms later).
    """
    calls = [(attempt, call) for attempt in attempts if (call := _handler_call(attempt)) is not None]
    futures = loop.submit_all([call for _, call in calls])
    return {future: attempt for future, (attempt, _) in zip(futures, calls, strict=True)}


def _handler_call(attempt: Attempt):
    """The attempt's handler call (a coroutine, not started yet); ``None`` when it ended before starting."""
    run = attempt.run
    job = run.job
    try:
        spec = job.spec
        kwargs = spec.validate_kwargs(run.kwargs)
    except (UnknownHandler, KwargsError) as exc:
        finish(attempt, Outcome(RunStatus.FAILED, error=str(exc)))
        return None
    attempt.context = RunContext(
        job_name=job.name,
        run_id=run.pk,
        scheduled_for=run.scheduled_for,
        attempt=run.attempt,
        engine=run.engine,
        logger=logging.getLogger(f"tasks_app.handlers.{spec.name}"),
    )
    return invoke(spec, kwargs, attempt.context, job.effective_timeout())


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
