"""What beat sends, and sends again: fires, lost runs and lost slots; a mixin of ``TaskhubScheduler``.

- ``_send_all`` puts a tick's slots on the broker in one go (one producer, and on Redis one pipelined
  round trip per ``SEND_BATCH`` messages: kombu's ``Producer.batch``) and notes them (``sent_slots.py``);
  ``_send`` sends one slot, ``_send_run`` re-sends a run. ``send_messages`` is where every message
  leaves beat (a test's recorder stands in for the broker there).
- ``_reap`` (every ``reap_every`` s while leading and the broker answers) re-delivers runs
  whose worker went silent, queued runs whose delivery was lost (``redelivery.py``) and slots
  whose message vanished before a worker got it (under the job's misfire policy).
- Broker connections: one attempt to connect (a broker that is away pauses beat, see
  ``broker_watch.py``), and a lost connection is dropped so the next send opens a new one.

What it is not: no schedule, no leader lock, no loop (``beat.py`` has those).
"""

import datetime as dt
import logging
from collections.abc import Sequence

from django.utils import timezone
from kombu.common import ignore_errors
from kombu.exceptions import BatchPublishError, ChannelError

from tasks_app import conf
from tasks_app.engines.celery.messages import SLOTS_TASK, TASK, message_kwargs, message_options, slots_message_kwargs
from tasks_app.models import Job, JobRun, RunStatus
from tasks_app.runner import skipped as skipped_runs

log = logging.getLogger("tasks_app.beat")
ENGINE = "celery"
SEND_BATCH = 100  # messages per Redis round trip when beat sends many at once


class BeatDelivery:
    def _ensure_connected(self):
        # One attempt: a broker that is away pauses sending (tick) instead of holding beat in kombu's retries.
        return self.connection.ensure_connection(max_retries=0)

    def _drop_producer(self) -> None:
        """Forget the broker connection (as Celery's ``_do_sync`` does); the next send opens a new one."""
        self.__dict__.pop("producer", None)
        connection = self.__dict__.pop("connection", None)
        if connection is not None:
            try:
                ignore_errors(connection, connection.release)
            except Exception:  # a half-broken connection may fail to close; it is dropped all the same
                log.debug("closing the lost broker connection failed", exc_info=True)

    def broker_lost(self, exc: BaseException) -> None:
        """Pause sending (``broker_watch.py``) and drop the connection; the heartbeat says so at once."""
        self.broker.lost(exc)
        self._drop_producer()
        self._next_beat = 0.0

    def _publish(self, messages: Sequence[tuple[dict, Job]]) -> bool:
        """Send messages; False while the broker is away (beat pauses: nothing here raises a broker error,
        so a job being scheduled is never blamed for an outage)."""
        if self.broker.down_since is not None:
            return False
        try:
            self.send_messages(messages)
            return True
        except BatchPublishError as exc:  # the pipeline failed: delivery uncertain, so none counts as sent
            if not isinstance(exc.__cause__, self.broker.errors):
                raise
            self.broker_lost(exc.__cause__)
            return False
        except self.broker.errors as exc:
            self.broker_lost(exc)
            return False

    def send_messages(self, messages: Sequence[tuple[dict, Job]]) -> None:
        """Put messages on the broker in one go: every fire and re-send leaves beat here.

        One producer; kombu's ``Producer.batch`` pipelines the publishes on Redis, one round trip per
        ``SEND_BATCH`` messages (so a worker gets the first ones while beat builds the rest), and
        publishes one by one on a transport without batches (AMQP) or where a pipeline could be
        replayed (``retry_on_timeout``). Each queue is declared once per call, not once per message,
        and the messages' argument reprs are built here: Celery's generic ``saferepr`` of every
        message cost as much as the rest of the send.
        """
        producer = self.producer
        queues = self.app.amqp.queues
        for name in {job.queue for _, job in messages}:
            producer.maybe_declare(queues[name])
        with producer.batch(max_size=SEND_BATCH):
            for task, kwargs, options in packed(messages, conf.get("BEAT_BATCH_SIZE")):
                self.app.send_task(
                    task,
                    kwargs=kwargs,
                    producer=producer,
                    declare=[],
                    argsrepr="()",
                    kwargsrepr=repr(kwargs),
                    **options,
                )

    def _send(self, job: Job, slot: dt.datetime) -> None:
        self._send_all([(job, slot)])

    def _send_all(self, slots: Sequence[tuple[Job, dt.datetime]]) -> int:
        """Send ``(job, slot)`` pairs in one go and note them; how many were sent.

        None is sent while the broker is away, and none counts as sent when the batch fails: the slots
        are owed when the broker is back (the catch-up finds them by their missing run; a message that
        did get through meanwhile is kept to one effect by the runner's claim).
        """
        if not slots or not self._publish([(message_kwargs(job.pk, slot), job) for job, slot in slots]):
            return 0
        for job, slot in slots:
            self.sent_slots.add(job.pk, slot, job.queue)
        if log.isEnabledFor(logging.DEBUG):
            for job, slot in slots:
                log.debug("fired", extra={"job": job.name, "scheduled_for": slot.isoformat(), "engine": ENGINE})
        return len(slots)

    def _reap(self) -> None:
        """Re-deliver runs whose worker went silent or whose queued message was lost.

        The runner's claim takes them over.
        """
        self._resend_lost_slots()
        window = dt.timedelta(seconds=conf.get("STALE_AFTER_SECONDS"))
        now = timezone.now()
        self._redelivered = {k: t for k, t in self._redelivered.items() if now - t < window}
        if not self.redelivery.anything_waiting(now - window):
            return  # the idle pass: one statement
        for run in self.redelivery.overdue():
            self._send_run(run)
        lost = (
            JobRun.objects.filter(engine=ENGINE, status=RunStatus.RUNNING, heartbeat_at__lt=now - window)
            .exclude(pk__in=list(self._redelivered))
            .select_related("job")
        )
        for run in lost[:100]:
            self._redelivered[run.pk] = now  # once per stale window, not every pass
            log.warning("re-delivering a run whose worker went silent", extra={"run": run.pk, "worker": run.worker})
            self._send_run(run)

    def _resend_lost_slots(self) -> None:
        """Slots sent whose message vanished before a worker got it: owed again, under the misfire policy."""
        now = timezone.now()
        for job_id, slot in self.sent_slots.lost(self._queue_is_empty, now):
            job = self.jobs.get(job_id)
            if job is None:
                continue  # paused, deleted or moved since
            for s in skipped_runs.settle(job, ENGINE, [slot], now):
                log.warning(
                    "re-sending a slot whose message was lost", extra={"job": job.name, "scheduled_for": s.isoformat()}
                )
                self._send(job, s)

    def _queue_is_empty(self, queue: str) -> bool:
        with self.app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=0)  # a broker that is away fails now: beat pauses
            try:
                return connection.default_channel.queue_declare(queue=queue, passive=True).message_count == 0
            except (ChannelError, *connection.channel_errors):  # no such queue (Redis drops an empty one): none waits
                return True

    def _send_run(self, run: JobRun) -> None:
        self._publish([(message_kwargs(run.job_id, run.scheduled_for, run.attempt, run.trigger), run.job)])


def packed(messages: Sequence[tuple[dict, Job]], size: int):
    """``(task, kwargs, options)`` to publish: slots whose jobs share routing and time limits go up to
    ``size`` to a ``taskhub.run_slots`` message (claimed in one statement, run side by side in one
    worker process), never two slots of one job in the same message (they would overlap: a catch-up
    without coalesce owes one job several); a lone slot stays a ``taskhub.run_job`` message."""
    size = max(1, size)
    groups: dict[tuple, list[tuple[list, set]]] = {}
    for kwargs, job in messages:
        options = message_options(job)
        chunks = groups.setdefault(tuple(sorted(options.items())), [])
        chunk = next((c for c in chunks if len(c[0]) < size and job.pk not in c[1]), None)
        if chunk is None:
            chunk = ([], set())
            chunks.append(chunk)
        chunk[0].append(kwargs)
        chunk[1].add(job.pk)
    for key, chunks in groups.items():
        for chunk, _ in chunks:
            if len(chunk) == 1:
                yield TASK, chunk[0], dict(key)
            else:
                yield SLOTS_TASK, slots_message_kwargs(chunk), dict(key)
