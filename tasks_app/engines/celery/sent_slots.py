"""Scheduled slots beat has sent, kept until a run row shows that a worker received them.

A message can vanish after beat sent it: Redis restarted or was flushed before a worker
took it. Beat notes each slot it sends (``add``); a slot with no run row
``REDELIVER_AFTER_SECONDS`` later while its queue is empty — so it is not merely waiting
behind others — was lost (``lost``), and beat owes it again under the job's misfire policy.
A slot waiting behind a backlog is never sent twice. The notes live in the leader's memory:
a new leader rebuilds them from the run rows (``inherit``). What it is not: no sending, no policy.
"""

import datetime as dt
import itertools

from django.utils import timezone

from tasks_app import conf
from tasks_app.models import JobRun

FORGET_AFTER = dt.timedelta(hours=1)  # a slot still waiting behind a backlog this long is left to it
# How far below a job's last run a new leader looks for slots with no run, in re-send graces: the
# old leader re-sent older ones itself unless a backlog kept them waiting (and cron slots cost ~0.2 ms each).
INHERIT_GRACES = 3


class SentSlots:
    def __init__(self):
        self.sent: dict[tuple[int, dt.datetime], tuple[str, dt.datetime]] = {}  # (job, slot) -> (queue, sent at)

    def add(self, job_id: int, slot: dt.datetime, queue: str, now: dt.datetime | None = None) -> None:
        self.sent[(job_id, slot)] = (queue, now or timezone.now())

    def inherit(self, jobs, last: dict, now: dt.datetime | None = None) -> int:
        """Note the slots a previous leader may have sent and lost: each job's slots shortly below its ``last``
        recorded one (after its last edit) that have no run row, as sent at their own time. Its own notes
        died with it, and a take-over's catch-up starts at the last run. Returns how many it noted."""
        now = now or timezone.now()
        look_back = INHERIT_GRACES * dt.timedelta(seconds=conf.get("REDELIVER_AFTER_SECONDS"))
        since = {
            job.pk: max(job.updated_at, last[job.pk] - look_back, now - FORGET_AFTER) for job in jobs if job.pk in last
        }
        since = {pk: at for pk, at in since.items() if at < last[pk]}
        if not since:
            return 0
        received = set(
            JobRun.objects.filter(job_id__in=since, scheduled_for__gt=min(since.values())).values_list(
                "job_id", "scheduled_for"
            )
        )
        owed = [
            (job, slot)
            for job in jobs
            if job.pk in since
            for slot in _slots_between(job, since[job.pk], last[job.pk])
            if (job.pk, slot) not in received and (job.pk, slot) not in self.sent
        ]
        for job, slot in owed:
            self.sent[(job.pk, slot)] = (job.queue, slot)  # when it was sent is unknown: at its time, the earliest
        return len(owed)

    def lost(self, queue_is_empty, now: dt.datetime | None = None) -> list[tuple[int, dt.datetime]]:
        """``(job id, slot)`` sent a grace ago, never received, with an empty queue; they are forgotten here."""
        now = now or timezone.now()
        grace = dt.timedelta(seconds=conf.get("REDELIVER_AFTER_SECONDS"))
        old = [key for key, (_, at) in self.sent.items() if now - at >= grace]
        if not old:
            return []
        received = set(
            JobRun.objects.filter(
                job_id__in={job for job, _ in old}, scheduled_for__gte=min(s for _, s in old)
            ).values_list("job_id", "scheduled_for")
        )
        waiting = [key for key in old if key not in received and now - self.sent[key][1] <= FORGET_AFTER]
        for key in set(old) - set(waiting):
            del self.sent[key]
        # Ask first, then forget: a broker that fails the question leaves every slot still noted.
        empty = {queue: queue_is_empty(queue) for queue in {self.sent[key][0] for key in waiting}}
        lost = [key for key in waiting if empty[self.sent[key][0]]]
        for key in lost:
            del self.sent[key]
        return sorted(lost, key=lambda key: key[1])


def _slots_between(job, after: dt.datetime, before: dt.datetime):
    """The job's slots strictly between ``after`` and ``before``."""
    return itertools.takewhile(lambda slot: slot < before, job.iter_fire_times(after=after))
