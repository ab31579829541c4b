"""The outbox: claim a due message, send it, record the attempt; retried with exponential backoff.

Each message is claimed in its own transaction with ``SELECT … FOR UPDATE SKIP LOCKED``
(Postgres), held while it is sent and its attempt written: two deliverers never send one
message twice, and a deliverer that dies mid-send leaves it pending for the next. Without
``SKIP LOCKED`` (SQLite) a message is leased by a conditional update instead (``deliver_leased``). A failed
attempt is retried after ``ALERT_RETRY_SECONDS × 2^(attempt-1)`` (at most an hour); after
``ALERT_MAX_ATTEMPTS`` attempts the message is ``failed`` with its last error.

**Never a storm**: an engine that stops makes every job it runs overdue in the same minute, and a
database that goes away fails every job at once. When ``ALERT_DIGEST_FROM`` or more messages of one kind
are due together on one channel (by e-mail: to the same recipients), they go out as one digest —
one e-mail listing the jobs, one webhook call with ``"kind": "digest"`` and each alert's body in
``"alerts"`` — leased together by a conditional update, and sent, retried or given up together.

A pass is bounded: ``ALERT_BATCH_SIZE`` single messages and ``DIGEST_LOOK`` in digests at most,
each send bounded by the send timeout.
What it is not: it writes no message (``streaks.py`` does) and runs on no thread of its own
(``courier.py``).
"""

import datetime as dt
import functools
import logging
import secrets
from collections import defaultdict

from django.db import connection, transaction
from django.utils import timezone

from tasks_app import conf
from tasks_app.alerts import delivery
from tasks_app.alerts.channels import recipients
from tasks_app.exceptions import AlertDeliveryError
from tasks_app.models import AlertChannel, AlertMessage, AlertStatus

log = logging.getLogger("tasks_app.alerts")
MAX_DELAY = dt.timedelta(hours=1)
LEASE_MARGIN_SECONDS = 60  # a leased message is sent again this long after its send's timeout at the latest
LEASE_CANDIDATES = 10  # due messages a leasing deliverer tries before it leaves the rest to the next pass
DIGEST_LOOK = 500  # due messages a pass looks at for digests


def due(now):
    return AlertMessage.objects.filter(status=AlertStatus.PENDING, next_attempt_at__lte=now)


def any_due(now) -> bool:
    """``due(now).exists()``, its text made once: the courier asks every few seconds, and the ORM's
    query costs four times the statement."""
    with connection.cursor() as cursor:
        cursor.execute(_any_due_sql(), [AlertStatus.PENDING, connection.ops.adapt_datetimefield_value(now)])
        return cursor.fetchone() is not None


@functools.cache
def _any_due_sql() -> str:
    quote, meta = connection.ops.quote_name, AlertMessage._meta
    status, next_at = (quote(meta.get_field(name).column) for name in ("status", "next_attempt_at"))
    return f"SELECT 1 FROM {quote(meta.db_table)} WHERE {status} = %s AND {next_at} <= %s LIMIT 1"


def deliver_due(now=None, limit: int | None = None) -> int:
    """Send up to ``limit`` due messages, one at a time; how many were attempted."""
    limit = conf.get("ALERT_BATCH_SIZE") if limit is None else limit
    if not any_due(now or timezone.now()):
        return 0  # the usual pass: one look at the index of pending rows, and back to sleep
    attempted = deliver_digests(now)
    while attempted < limit and deliver_one(now) is not None:
        attempted += 1
    return attempted


def deliver_digests(now=None) -> int:
    """Send each group of ``ALERT_DIGEST_FROM`` or more due messages as one digest; how many messages went so."""
    now, least = now or timezone.now(), conf.get("ALERT_DIGEST_FROM")
    if least <= 0:
        return 0
    groups = defaultdict(list)
    for message in due(now).select_related("job", "run", "streak").order_by("next_attempt_at", "pk")[:DIGEST_LOOK]:
        to = tuple(recipients(message.job)) if message.channel == AlertChannel.EMAIL else ()
        groups[message.channel, message.kind, to].append(message)
    carried = 0
    for batch in groups.values():
        if len(batch) >= least and (held := _lease(batch, now)):
            _attempt(held, now)
            carried += len(held)
    return carried


def _lease(batch: list[AlertMessage], now) -> list[AlertMessage]:
    """The messages of ``batch`` this deliverer holds: one conditional update moves them past the send's
    timeout (a lease of its own, to the microsecond); another deliverer's update finds them no longer due."""
    until = now + dt.timedelta(
        seconds=conf.get("ALERT_TIMEOUT_SECONDS") + LEASE_MARGIN_SECONDS, microseconds=secrets.randbelow(10**6)
    )
    ids = [m.pk for m in batch]
    due(now).filter(pk__in=ids).update(next_attempt_at=until)
    held = set(due(until).filter(pk__in=ids, next_attempt_at=until).values_list("pk", flat=True))
    return [m for m in batch if m.pk in held]


def deliver_one(now=None) -> AlertMessage | None:
    """Claim the oldest due message no one else holds, send it and record the attempt; None when none is due."""
    now = now or timezone.now()
    if not connection.features.has_select_for_update_skip_locked:
        return deliver_leased(now)
    with transaction.atomic():
        message = (
            due(now)
            .select_for_update(skip_locked=True, of=("self",))
            .select_related("job", "run", "streak")
            .order_by("next_attempt_at", "pk")
            .first()
        )
        if message is not None:
            _attempt([message], now)
    return message


def deliver_leased(now) -> AlertMessage | None:
    """The claim without row locks (SQLite): a conditional update moves the message's next attempt past
    the send's timeout, and the send runs outside any transaction — SQLite's one write lock is never
    held while a webhook or an SMTP server takes its time. A deliverer that dies mid-send leaves the
    message to be sent again when its lease ends."""
    lease = now + dt.timedelta(seconds=conf.get("ALERT_TIMEOUT_SECONDS") + LEASE_MARGIN_SECONDS)
    for pk in due(now).order_by("next_attempt_at", "pk").values_list("pk", flat=True)[:LEASE_CANDIDATES]:
        if due(now).filter(pk=pk).update(next_attempt_at=lease):  # ours: no one else's update matched
            message = AlertMessage.objects.select_related("job", "run", "streak").get(pk=pk)
            _attempt([message], now)
            return message
    return None


def _attempt(batch: list[AlertMessage], now) -> None:
    """Send ``batch`` (one message, or a digest) and record the attempt on each of its messages."""
    try:
        delivery.send(*batch)
    except AlertDeliveryError as exc:
        error = str(exc)[:500]
    else:
        error = None
    for message in batch:
        message.attempts += 1
        if error is None:
            message.status, message.sent_at, message.last_error = AlertStatus.SENT, timezone.now(), ""
        else:
            _failed(message, error, now)
        message.save(update_fields=["attempts", "status", "sent_at", "last_error", "next_attempt_at"])
    if error is not None:
        first = batch[0]
        log.warning(
            "alert not delivered",
            extra={
                "job": first.job.name,
                "alert": first.pk,
                "messages": len(batch),
                "channel": first.channel,
                "attempt": first.attempts,
                "error": error,
                "gave_up": first.status == AlertStatus.FAILED,
            },
        )


def backoff(attempts: int) -> dt.timedelta:
    return min(dt.timedelta(seconds=conf.get("ALERT_RETRY_SECONDS") * 2 ** (attempts - 1)), MAX_DELAY)


def _failed(message: AlertMessage, error: str, now) -> None:
    message.last_error = error
    if message.attempts >= conf.get("ALERT_MAX_ATTEMPTS"):
        message.status = AlertStatus.FAILED
    else:
        message.next_attempt_at = now + backoff(message.attempts)
