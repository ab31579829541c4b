"""Who runs a slot: the claim, and the take-over of lost runs.

``(job, scheduled_for)`` is unique in the database, and so is ``(job, lane)`` of a running run.
``claim_many`` first inserts every slot it can in one statement (``slot_inserts.py``, on
Postgres): a new slot whose job has a free lane. The rest — and every slot elsewhere — take the
locked claim, ``claim``: under the job's row lock it inserts the run or takes over the existing
row: a queued run (run now, a retry) of the same attempt, or a running one whose worker is gone
(a dead process on this host, or a heartbeat older than ``STALE_AFTER_SECONDS``). Any other
existing row is a duplicate: counted on that row and logged, and the caller runs nothing.
``max_running`` is counted under the same lock, and the locked claim frees the lanes of runs that
no longer count (ended, or silent past the stale time).

What it is not: no handler calls and no outcomes (the ``runner`` package itself does both).
"""

import datetime as dt
import logging
import os
import socket

from django.db import transaction
from django.db.models import Count, F, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from tasks_app import conf
from tasks_app.alerts import streaks as alert_streaks
from tasks_app.models import Job, JobRun, RunStatus, Trigger
from tasks_app.runner import slot_inserts
from tasks_app.runner.slot_inserts import Slot

log = logging.getLogger("tasks_app.runner")


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def claim_many(slots: list[Slot], engine: str) -> list[JobRun | None]:
    """Claim each slot for this worker: its running run, or ``None`` where it is not ours to run."""
    now = timezone.now()
    inserted = slot_inserts.insert_claims(slots, engine, _running_fields(now)) if slot_inserts.available() else {}
    runs = []
    for slot in slots:
        run = inserted.pop(slot.key, None)
        if run is None:
            run = claim(slot.job_id, slot.scheduled_for, engine, slot.attempt, slot.trigger, slot.task_id)
        runs.append(run)
    return runs


def claim(job_id, scheduled_for, engine, attempt=1, trigger=Trigger.SCHEDULE, task_id="") -> JobRun | None:
    """The locked claim: decide under the job's row lock."""
    now = timezone.now()
    with transaction.atomic():
        job = _locked_job(job_id, scheduled_for, now)
        if job is None:
            log.warning("no such job", extra={"job": job_id, "engine": engine})  # deleted with a fire in flight
            return None
        if job.slot_run_id is not None:
            existing = JobRun.objects.select_for_update().get(pk=job.slot_run_id)
            existing.job = job
            return _reclaim(existing, attempt, now, task_id)
        run = JobRun(
            job=job,
            engine=engine,
            trigger=trigger,
            scheduled_for=scheduled_for,
            kwargs=job.kwargs,
            celery_task_id=task_id,
        )
        if _overlaps(run, now):
            return None
        run.attempt = attempt
        for name, value in _running_fields(now).items():
            setattr(run, name, value)
        run.lane = _free_lane(job, now)
        run.save(force_insert=True)
        return run


def _locked_job(job_id, scheduled_for, now) -> Job | None:
    """The job, row-locked, with what the claim decides on: the slot's run (if any) and how many run now.

    Two statements: the lock, then the rest. Read in one, the counts would come from a snapshot
    taken before the wait for the lock, blind to the run the previous holder just inserted.
    """
    if not Job.objects.select_for_update().filter(pk=job_id).values_list("pk", flat=True):
        return None
    stale = now - dt.timedelta(seconds=conf.get("STALE_AFTER_SECONDS"))
    running = (
        JobRun.objects.filter(job=OuterRef("pk"), status=RunStatus.RUNNING, heartbeat_at__gte=stale)
        .order_by()
        .values("job")
        .annotate(n=Count("pk"))
        .values("n")
    )
    slot_run = JobRun.objects.filter(job=OuterRef("pk"), scheduled_for=scheduled_for).values("pk")[:1]
    return (
        Job.objects.annotate(running_now=Coalesce(Subquery(running), 0), slot_run_id=Subquery(slot_run))
        .filter(pk=job_id)
        .first()
    )


def _overlaps(run: JobRun, now) -> bool:
    """Record ``run`` as skipped when the job already runs ``max_running`` times (counted under its lock)."""
    running = run.job.running_now
    if running < run.job.max_running:
        return False
    run.status, run.finished_at = RunStatus.SKIPPED, now
    run.reason = f"overlap: {running} run(s) still running (max_running={run.job.max_running})"
    run.save()
    log.info("run skipped", extra={"reason": run.reason, "run": run.pk})
    return True


def _free_lane(job: Job, now) -> int | None:
    """A lane for a run about to start, after freeing the lanes of runs that no longer count.

    Runs that count (running, heartbeat fresh) are fewer than ``max_running`` here, so a lane is
    free unless a take-over runs past the limit (it then runs without one).
    """
    stale = now - dt.timedelta(seconds=conf.get("STALE_AFTER_SECONDS"))
    held = JobRun.objects.filter(job=job, lane__isnull=False).values_list("pk", "lane", "status", "heartbeat_at")
    counting, ended = set(), []
    for pk, lane, status, heartbeat_at in held:
        if status == RunStatus.RUNNING and heartbeat_at is not None and heartbeat_at >= stale:
            counting.add(lane)
        else:
            ended.append(pk)
    if ended:
        JobRun.objects.filter(pk__in=ended).update(lane=None)
    return next((n for n in range(1, job.max_running + 1) if n not in counting), None)


def _running_fields(now) -> dict:
    return {
        "status": RunStatus.RUNNING,
        "started_at": now,
        "heartbeat_at": now,
        "worker": worker_id(),
        "progress": None,
        "progress_message": "",
    }


def _reclaim(run: JobRun, attempt: int, now, task_id: str = "") -> JobRun | None:
    if run.status == RunStatus.QUEUED and run.attempt == attempt:
        if _overlaps(run, now):
            return None
    elif run.status == RunStatus.RUNNING and _lost(run, now):
        run.attempts.append(attempt_record(run, "lost", f"worker {run.worker} stopped sending heartbeats"))
        if _losses(run) >= conf.get("MAX_LOST_ATTEMPTS"):
            return _give_up(run, now)
        run.attempt += 1
        log.warning("taking over a lost run", extra={"run": run.pk, "previous_worker": run.worker})
    else:
        JobRun.objects.filter(pk=run.pk).update(duplicate_claims=F("duplicate_claims") + 1)
        log.info(
            "duplicate claim ignored",
            extra={
                "job": run.job_id,
                "run": run.pk,
                "status": run.status,
                "scheduled_for": run.scheduled_for.isoformat(),
                "claimed_attempt": attempt,
            },
        )
        return None
    for name, value in _running_fields(now).items():
        setattr(run, name, value)
    run.next_attempt_at = None
    run.celery_task_id = task_id or run.celery_task_id
    if run.lane is None:  # a lost run keeps the lane it held
        run.lane = _free_lane(run.job, now)
    run.save()
    return run


def _losses(run: JobRun) -> int:
    return sum(1 for earlier in run.attempts if earlier.get("status") == "lost")


def _give_up(run: JobRun, now) -> None:
    """A run whose worker was lost ``MAX_LOST_ATTEMPTS`` times is failed, not taken over again: its handler
    likely ends the process that runs it (a crash in native code, the OOM killer), and a broker would hand
    it out for ever (Redis) or drop it and leave the run ``running`` (RabbitMQ's delivery limit)."""
    losses = _losses(run)
    run.status, run.finished_at, run.lane, run.next_attempt_at = RunStatus.FAILED, now, None, None
    run.error = (
        f"its worker was lost {losses} times while running it (killed, out of memory, or the handler "
        "ended its process): not taken over again (TASKHUB_MAX_LOST_ATTEMPTS)"
    )
    run.save()
    log.error("run failed: its worker was lost too often", extra={"run": run.pk, "job": run.job_id, "losses": losses})
    alert_streaks.after_outcome(run)


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


def attempt_record(run: JobRun, status: str, error: str) -> dict:
    return {
        "attempt": run.attempt,
        "status": status,
        "error": error,
        "worker": run.worker,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": (run.finished_at or timezone.now()).isoformat(),
        "duration_seconds": run.duration_seconds,
    }
