"""A job's alert streaks: open one (and write its alert) at most once, close it (and write the recovery) once.

A **failing** streak opens when a job's last ``alert_after_failures`` runs all ended ``failed`` or
``timed_out``. A run is one slot: its retries are attempts of that slot, so only the slot's final
outcome counts (a failed attempt that is retried counts for nothing yet). Skipped and cancelled
runs neither extend nor break a streak. The next run that succeeds closes it with a recovery.

The database decides who writes: opening is an insert that the partial unique index
``alertstreak_one_open_per_job_kind`` lets through once; closing is an update of the open row
that only one process sees succeed. The outbox rows go in the same transaction as the streak row.

Cost: ``after_outcome`` is called by the runner only for jobs with ``alert_after_failures`` set.
On success it is one statement on Postgres (close the open streak and write its recovery rows,
together); on failure a few. It never raises: a run's outcome is already on record.
"""

import logging

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from tasks_app.alerts.channels import channels_for
from tasks_app.models import AlertKind, AlertMessage, AlertStatus, AlertStreak, Job, JobRun, RunStatus

log = logging.getLogger("tasks_app.alerts")
FAILED = (RunStatus.FAILED, RunStatus.TIMED_OUT)
COUNTED = (RunStatus.SUCCEEDED, *FAILED)


def after_outcome(run: JobRun) -> None:
    """Note the run's final outcome in its job's failing streak (the runner calls it after writing the outcome)."""
    job = run.job
    if not job.alert_after_failures or run.status not in COUNTED:
        return  # off, or not a final outcome (a retry is queued, or the run was skipped)
    try:
        if run.status == RunStatus.SUCCEEDED:
            close(job, AlertKind.FAILING, run=run)
        else:
            _note_failure(job, run)
    except Exception as exc:  # the outcome is on record; an alert that cannot be written is logged, never raised
        log.error("could not write the alert", extra={"job": job.name, "run": run.pk, "error": str(exc)[:500]})


def _note_failure(job: Job, run: JobRun) -> None:
    if AlertStreak.objects.open().filter(job=job, kind=AlertKind.FAILING).exists():
        return  # already alerted: the streak goes on, quietly
    n = job.alert_after_failures
    last = list(
        JobRun.objects.filter(job=job, status__in=COUNTED)
        .order_by("-created_at", "-pk")
        .values_list("status", flat=True)[:n]
    )
    if len(last) == n and all(status in FAILED for status in last):
        open_streak(job, AlertKind.FAILING, run=run, detail=f"{n} failed run(s) in a row")


def open_streak(
    job: Job,
    kind: str,
    run: JobRun | None = None,
    slot=None,
    detail: str = "",
    now=None,
    overdue_since=None,
    silent: bool = False,
) -> bool:
    """Open ``job``'s streak of ``kind`` and write its alert, unless one is open already (then False).

    Overdue: ``overdue_since`` is when the slot's grace ran out; ``silent`` writes no alert (the job's
    overdue alerts are off: the streak only records that it is overdue, for the dashboard and /metrics).
    """
    now = now or timezone.now()
    try:
        with transaction.atomic():
            streak = AlertStreak.objects.create(
                job=job,
                kind=kind,
                run=run,
                slot=slot,
                overdue_since=overdue_since,
                detail=detail[:300],
                opened_at=now,
                silent=silent,
            )
            _write(streak, kind, run, [] if silent else channels_for(job), now)
    except IntegrityError:
        return False  # another process opened it first: one alert per streak
    if not silent:
        log.warning("alert", extra={"job": job.name, "kind": kind, "detail": detail, "run": run and run.pk})
    return True


def close(job: Job, kind: str, run: JobRun | None = None, now=None) -> bool:
    """Close ``job``'s open streak of ``kind`` and write its recovery; False when none was open."""
    now = now or timezone.now()
    channels = channels_for(job)
    if connection.vendor == "postgresql":
        closed = _close_in_one_statement(job.pk, kind, run, channels, now)
    else:
        with transaction.atomic():
            streak = AlertStreak.objects.open().select_for_update().filter(job=job, kind=kind).first()
            closed = streak is not None and bool(AlertStreak.objects.open().filter(pk=streak.pk).update(closed_at=now))
            if closed:
                _write(streak, AlertKind.RECOVERED, run, channels, now)
    if closed:
        log.warning("recovered", extra={"job": job.name, "kind": kind, "run": run and run.pk})
    return closed


def _write(streak: AlertStreak, kind: str, run, channels: list[str], now) -> None:
    AlertMessage.objects.bulk_create(
        AlertMessage(
            streak=streak, job_id=streak.job_id, run=run, kind=kind, channel=c, created_at=now, next_attempt_at=now
        )
        for c in channels
    )


def _close_in_one_statement(job_id: int, kind: str, run, channels: list[str], now) -> bool:
    """The update that closes the streak and the insert of its recovery rows, as one statement."""
    quote = connection.ops.quote_name
    streaks, messages = quote(AlertStreak._meta.db_table), quote(AlertMessage._meta.db_table)
    sql = f"""
        WITH closed AS (
            UPDATE {streaks} SET closed_at = %s
            WHERE job_id = %s AND kind = %s AND closed_at IS NULL
            RETURNING id, job_id
        ), written AS (
            INSERT INTO {messages}
                (streak_id, job_id, run_id, kind, channel, status, created_at, attempts, next_attempt_at, last_error)
            SELECT closed.id, closed.job_id, %s, %s, c.channel, %s, %s, 0, %s, ''
            FROM closed CROSS JOIN unnest(%s::text[]) AS c(channel)
        )
        SELECT count(*) FROM closed
    """
    params = [now, job_id, kind, run and run.pk, AlertKind.RECOVERED, AlertStatus.PENDING, now, now, channels]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return bool(cursor.fetchone()[0])
