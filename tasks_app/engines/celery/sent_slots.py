"""Scheduled slots beat has sent, kept until a run row shows that a worker received them.

A message can vanish after beat sent it: Redis restarted or was flushed before a worker
took it. Beat notes each slot it sends (``add``); a slot with no run row
``REDELIVER_AFTER_SECONDS`` later while its queue is empty — so it is not merely waiting
behind others — was lost (``lost``), and beat owes it again under the job's misfire policy.
A slot waiting behind a backlog is never sent twice. What it is not: no sending, no policy.
"""

import datetime as dt

from django.utils import timezone

from tasks_app import conf
from tasks_app.models import JobRun

FORGET_AFTER = dt.timedelta(hours=1)  # a slot still waiting behind a backlog this long is left to it


class SentSlots:
    def __init__(self):
        self.sent: dict[tuple[int, dt.datetime], tuple[str, dt.datetime]] = {}  # (job, slot) -> (queue, sent at)

    def add(self, job_id: int, slot: dt.datetime, queue: str, now: dt.datetime | None = None) -> None:
        self.sent[(job_id, slot)] = (queue, now or timezone.now())

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
