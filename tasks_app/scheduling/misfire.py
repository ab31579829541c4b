"""The misfire policy, the same for both engines: what to do with slots whose time has passed.

A scheduler that was down (or blocked) finds slots in the past. Each is either fired or
recorded as a ``skipped`` run with its reason — never silently dropped:

- a slot later than the job's ``misfire_grace_seconds`` is skipped ("misfire");
- of the slots still within grace, a job with ``coalesce`` fires only the latest and
  skips the others ("coalesced"); without it, each fires.

At most ``MAX_MISSED`` slots per job are examined; older ones are summed up in a log line.
Pure: the job is read through its attributes, ``now`` is passed in; the skipped runs are
recorded by ``runner/skipped.py``.
"""

import collections
import datetime as dt
import logging

log = logging.getLogger("tasks_app.scheduling.misfire")
MAX_MISSED = 1000


def plan(job, slots: list[dt.datetime], now: dt.datetime) -> tuple[list[dt.datetime], list[tuple[dt.datetime, str]]]:
    """Split past-due ``slots`` (ascending) into those to fire and those to skip with a reason."""
    slots = sorted(slots)  # coalesce keeps the latest, whatever order the caller had
    grace = dt.timedelta(seconds=job.misfire_grace_seconds)
    fresh = [s for s in slots if now - s <= grace]
    skipped = [
        (s, f"misfire: {(now - s).total_seconds():.0f} s late, grace {job.misfire_grace_seconds} s")
        for s in slots
        if now - s > grace
    ]
    if job.coalesce and len(fresh) > 1:
        skipped += [(s, "coalesced: a later missed slot ran instead") for s in fresh[:-1]]
        fresh = fresh[-1:]
    return fresh, sorted(skipped)


def owed_since(job, last_slot: dt.datetime | None) -> dt.datetime:
    """Where a scheduler taking over owes slots from: the job's last recorded slot, never before its
    last edit (a resume, say: slots from before it were never owed)."""
    return max(last_slot, job.updated_at) if last_slot else job.updated_at


def missed_slots(job, since: dt.datetime, now: dt.datetime) -> list[dt.datetime]:
    """Slots strictly after ``since`` and not after ``now``, the latest ``MAX_MISSED`` of them.

    Walked lazily: a job with nothing missed costs one fire time, not a batch of them.
    """
    missed = collections.deque(maxlen=MAX_MISSED)
    seen = 0
    for slot in job.iter_fire_times(after=since):
        if slot > now or seen >= 100 * MAX_MISSED:
            break
        missed.append(slot)
        seen += 1
    if seen > MAX_MISSED:
        log.warning(
            "too many missed slots; only the latest are recorded",
            extra={"job": job.name, "missed": seen, "recorded": MAX_MISSED},
        )
    return list(missed)
