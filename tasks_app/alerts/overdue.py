"""Overdue streaks: a job's overdue streak opens when it is overdue (``models/overdue.py``) and closes when not.

Every enabled job that is overdue gets an open streak: with an alert when its ``alert_when_overdue``
is on, silently (no message, now or when it closes) when it is off. So the open streaks are the
list of overdue jobs that the dashboard and ``/metrics`` read (``models/overdue_looks.py``), and
each look records when it happened, so they can say how fresh that list is.

Whichever engine process is alive asks (both may: the streak's unique index keeps it to one alert).
A job stops being overdue when the owed slot gets a run (it ran again: the recovery says so), when
it is paused or edited (a person took it in hand: the recovery says that instead); a streak of a
job whose overdue alerts are off (or were off when it opened) closes without a message.

``OverdueWatch`` is the courier's look: one walk over every job when it starts, then only the jobs
edited since the last look and those whose deadline has passed — so a process holding 100,000
jobs that are all on time spends a few queries per look, not a walk over all of them.
"""

import datetime as dt
import functools
import heapq
import logging
from typing import NamedTuple

from django.db import connection
from django.utils import timezone

from tasks_app.alerts import streaks
from tasks_app.models import AlertKind, AlertStreak, Job, overdue_looks
from tasks_app.models.overdue import Owed, as_overdue, owed

log = logging.getLogger("tasks_app.alerts")
# An edit stamped before the last look began but committed after it is read at the next one. One missed
# (committed later still) only delays that job's verdict until its old deadline passes: then it is read again.
LATE_COMMITS = dt.timedelta(seconds=5)


class OverdueWatch:
    def __init__(self, process: str = "sweep"):
        self.process = process  # who looks, as the dashboard and /metrics name the last look
        self.owed: dict[int, Owed] = {}  # job id -> the slot it owes and its deadline
        self.deadlines: list[tuple[dt.datetime, int]] = []  # a heap of (deadline, job id); stale entries skipped
        self.looked: dt.datetime | None = None  # when the last look began (edits since are read again)
        self.tail: Tail | None = None  # the stamps of the LATE_COMMITS before the last look, as it saw them

    def sweep(self, now: dt.datetime | None = None) -> dict[str, int]:
        """Open and close overdue streaks as of ``now``; how many of each came with a message."""
        now = now or timezone.now()
        # Taken before the rows are read: an edit committed in between is read now and again next time, never missed.
        seen_again, tail = tails(self.looked, now)
        moved = self.tail is None or seen_again != self.tail  # an edit committed late into that window
        edited = None
        if self.looked is None:
            self.owed.clear()
            read = self._read(Job.objects.all())
        else:
            since = self.looked - LATE_COMMITS if moved else self.looked
            recent = Job.objects.filter(updated_at__gte=since).values_list("pk", "updated_at")
            edited = {pk for pk, stamp in recent if pk not in self.owed or self.owed[pk].updated_at != stamp}
            again = edited | self._fallen_due(now)
            for pk in again:
                self.owed.pop(pk, None)
            read = self._read(Job.objects.filter(pk__in=again)) if again else []
        self.looked, self.tail = now, tail
        # A job whose deadline passed was read again just now (``_fallen_due``): the overdue ones are among those read.
        late = [o for o in read if o.deadline < now]
        counts = settle(late, now, edited)
        overdue_looks.record(self.process, now, len(late))
        return counts

    def _read(self, jobs) -> list[Owed]:
        read = owed(jobs)
        for o in read:
            self.owed[o.job_id] = o
            heapq.heappush(self.deadlines, (o.deadline, o.job_id))
        if len(self.deadlines) > 2 * len(self.owed) + 1000:  # entries of older readings piled up: start afresh
            self.deadlines = [(o.deadline, pk) for pk, o in self.owed.items()]
            heapq.heapify(self.deadlines)
        return read

    def _fallen_due(self, now) -> set[int]:
        """The jobs whose deadline passed, taken off the heap (entries of an older reading are dropped)."""
        due = set()
        while self.deadlines and self.deadlines[0][0] < now:
            deadline, pk = heapq.heappop(self.deadlines)
            if pk in self.owed and self.owed[pk].deadline == deadline:
                due.add(pk)
        return due


class Tail(NamedTuple):
    """How many jobs were stamped in the ``LATE_COMMITS`` before an instant, and the sum of their stamps."""

    count: int
    stamps: int | None


def tails(*ends: dt.datetime | None) -> list[Tail | None]:
    """The ``Tail`` before each of ``ends`` (``None`` for no end), in one statement.

    Stamps only grow, so an edit committed late into a window raises its count or its sum: a look
    compares the window before the last look with what that look saw, and reads the window's rows
    again only when they differ — not the thousands of jobs a deploy stamped just before the engine
    started. Postgres only (elsewhere every tail is ``None``: the window is always read again).
    """
    present = [end for end in ends if end is not None]
    if not present or connection.vendor != "postgresql":
        return [None] * len(ends)
    params = [bound for end in present for bound in (end - LATE_COMMITS, end) * 2] + [min(present) - LATE_COMMITS]
    with connection.cursor() as cursor:  # its text made once: the ORM's aggregate costs 10 times the statement
        cursor.execute(_tails_sql(len(present)), params)
        got = iter(cursor.fetchone())
    figures = {end: Tail(next(got), next(got)) for end in present}
    return [figures.get(end) for end in ends]


@functools.cache
def _tails_sql(windows: int) -> str:
    quote = connection.ops.quote_name
    stamp = quote(Job._meta.get_field("updated_at").column)
    within = f"FILTER (WHERE {stamp} >= %s AND {stamp} < %s)"
    micros = f"(extract(epoch FROM {stamp}) * 1000000)::bigint"
    figures = ", ".join(f"count(*) {within}, sum({micros}) {within}" for _ in range(windows))
    return f"SELECT {figures} FROM {quote(Job._meta.db_table)} WHERE {stamp} >= %s"


def sweep(now: dt.datetime | None = None) -> dict[str, int]:
    """One full look (a fresh ``OverdueWatch``)."""
    return OverdueWatch().sweep(now)


def settle(late: list[Owed], now: dt.datetime, edited: set[int] | None = None) -> dict[str, int]:
    """Open a streak for each of ``late`` without one; close the open ones no longer late.

    The counts are of the streaks opened and closed with a message (silent ones are not counted).
    ``edited``: the jobs edited since the last look, when the caller knows them (``None``: any may have been).
    """
    found = {o.job_id: o for o in late}
    open_silent = dict(AlertStreak.objects.open().filter(kind=AlertKind.OVERDUE).values_list("job_id", "silent"))
    opened = closed = 0
    for new in as_overdue([found[pk] for pk in found.keys() - open_silent.keys()]):  # only these need their Job
        detail = f"slot {new.slot:%Y-%m-%d %H:%M:%S} UTC has no run (overdue since {new.since:%H:%M:%S} UTC)"
        silent = not new.job.alert_when_overdue
        was_opened = streaks.open_streak(
            new.job, AlertKind.OVERDUE, slot=new.slot, detail=detail, now=now, overdue_since=new.since, silent=silent
        )
        opened += was_opened and not silent
    for job in Job.objects.filter(pk__in=open_silent.keys() - found.keys()):
        if open_silent[job.pk] or not job.alert_when_overdue:  # nothing was said, or no one wants to hear it
            AlertStreak.objects.open().filter(job=job, kind=AlertKind.OVERDUE).update(closed_at=now)
            continue
        closed += streaks.close(job, AlertKind.OVERDUE, run=job.runs.order_by("-created_at").first(), now=now)
    # Failure alerts turned off (an edit) while a streak was open: it ends without a recovery message.
    if edited is None or edited:
        failing = AlertStreak.objects.open().filter(kind=AlertKind.FAILING, job__alert_after_failures=0)
        (failing if edited is None else failing.filter(job_id__in=edited)).update(closed_at=now)
    return {"opened": opened, "closed": closed}
