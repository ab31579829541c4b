"""Overdue jobs: an enabled job whose slot passed more than its misfire grace ago with no run at all.

From the database, that is what a dead engine, a job no engine schedules (its handler is gone)
or a stuck scheduler look like: a slot comes and goes and no row records it — not even a
``skipped`` one, which a live scheduler writes for the fires it drops. A job is owed the first
slot after the later of its last edit (a pause, resume or schedule change resets the clock)
and its last scheduled slot on record; it is overdue from that slot plus its misfire grace and
jitter. One query of plain rows (no model per job), and one slot walk per schedule the jobs
share (``NextSlots``, asked in rising order).

Who asks: the overdue look of the alert courier in whichever engine process is alive (through
``owed`` for the few jobs that changed or fell due since it last looked), which keeps an open
overdue streak for each overdue job; the dashboard and ``/metrics`` read those streaks
(``overdue_looks.py``), never this walk. What it is not: a check of runs that started and hang
— the runner takes those over as stale — nor of rows whose schedule cannot be read at all
(they are shown as broken, see ``problems.py``).
"""

import dataclasses
import datetime as dt
from typing import NamedTuple

from django.db.models import OuterRef, Subquery
from django.utils import timezone

from tasks_app.models.choices import Trigger
from tasks_app.models.job import Job
from tasks_app.models.run import JobRun
from tasks_app.scheduling.next_slots import NextSlots


@dataclasses.dataclass(frozen=True)
class Overdue:
    job: Job
    slot: dt.datetime  # the slot that has no run
    since: dt.datetime  # when it became overdue: the slot plus the job's grace and jitter


class Owed(NamedTuple):
    job_id: int
    slot: dt.datetime  # the next slot the job owes a run
    deadline: dt.datetime  # overdue after this: the slot plus the job's grace and jitter
    updated_at: dt.datetime  # the job's row as this was read from it


class _Row(NamedTuple):
    """What the walk reads of a job: its schedule, grace, and where it stands."""

    pk: int
    schedule_type: str
    cron_expression: str
    timezone: str
    interval_seconds: int | None
    run_at: dt.datetime | None
    misfire_grace_seconds: int
    jitter_seconds: int
    updated_at: dt.datetime
    last_slot: dt.datetime | None

    schedule_fields = property(Job.schedule_fields.fget)  # the schedule as ``slots.py`` takes it, as a job's

    @property
    def standing(self) -> dt.datetime:
        return max(self.updated_at, self.last_slot or self.updated_at)


def owed(jobs=None) -> list[Owed]:
    """The slot each enabled job of ``jobs`` (default all) owes next, and when it turns overdue."""
    last_slot = JobRun.objects.filter(job=OuterRef("pk"), trigger=Trigger.SCHEDULE).order_by("-scheduled_for")
    rows = (
        (jobs if jobs is not None else Job.objects.all())
        .filter(enabled=True)
        .annotate(last_slot=Subquery(last_slot.values("scheduled_for")[:1]))
        .values_list(*_Row._fields)
        .order_by()
    )
    walked = sorted((_Row(*row) for row in rows.iterator(chunk_size=5000)), key=lambda row: row.standing)
    nexts, found = NextSlots(), []
    for row in walked:
        if (slot := _next_slot(nexts, row)) is not None:
            grace = dt.timedelta(seconds=row.misfire_grace_seconds + row.jitter_seconds)
            found.append(Owed(row.pk, slot, slot + grace, row.updated_at))
    return found


def overdue_jobs(now: dt.datetime | None = None, jobs=None) -> list[Overdue]:
    """Every enabled job (of ``jobs``, default all) that is overdue at ``now``, the longest overdue first."""
    now = now or timezone.now()
    late = [o for o in owed(jobs) if o.deadline < now]
    return as_overdue(late)


def as_overdue(late: list[Owed]) -> list[Overdue]:
    """``Overdue`` with its ``Job`` (one query for all), the longest overdue first."""
    found = Job.objects.in_bulk([o.job_id for o in late])
    return sorted(
        (Overdue(found[o.job_id], o.slot, o.deadline) for o in late if o.job_id in found), key=lambda o: o.since
    )


def _next_slot(nexts: NextSlots, row: _Row) -> dt.datetime | None:
    try:
        return nexts.after(row, row.standing)
    except Exception:  # a schedule no engine can read either: reported as broken, not as overdue
        return None
