"""The next slot of many jobs at once, computed once per schedule they share.

A scheduler taking the lead asks, for every job, "is a slot owed since X?" and "which slot
comes next?". A cron slot costs a fraction of a millisecond, so 100,000 jobs cost tens of
seconds — yet jobs share schedules (a few hundred "every day at 03:00"s), and ask about
nearby moments. ``NextSlots.after(job, t)`` remembers, per schedule, the answer it last
computed: the next slot after ``t0`` is ``s``, so it is ``s`` for every ``t`` in
``[t0, s)`` too. Asked in rising ``t`` (sort the jobs), a schedule costs a walk per slot
crossed, not one per job.

What it is not: no cache across calls of a scheduler's loop (a job's schedule may change);
build one per pass over the jobs.
"""

import datetime as dt

from tasks_app.scheduling import slots


class NextSlots:
    def __init__(self):
        self._known: dict[tuple, tuple[dt.datetime, dt.datetime]] = {}

    def after(self, job, moment: dt.datetime) -> dt.datetime | None:
        """The job's first slot strictly after ``moment`` (as ``job.iter_fire_times(after=moment)`` gives it)."""
        key = (job.schedule_type, job.cron_expression, job.timezone, job.interval_seconds, job.run_at)
        known = self._known.get(key)
        if known is not None and known[0] <= moment < known[1]:
            return known[1]
        upcoming = next(slots.iter_fire_times(job.schedule_type, **job.schedule_fields, after=moment), None)
        if upcoming is not None:
            self._known[key] = (moment, upcoming)
        return upcoming
