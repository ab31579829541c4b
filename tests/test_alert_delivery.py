"""Delivering alerts: retries with backoff, a limit, timeouts, two deliverers, the courier in the engines.

The clock of the retries is held (``deliver_due(now=...)``); the receiver is a real HTTP server.
"""

import datetime as dt

import pytest
from django.core import mail
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from tasks_app.alerts import outbox, streaks
from tasks_app.alerts.courier import AlertCourier
from tasks_app.models import AlertMessage, AlertStreak
from tests.alert_receiver import receiving
from tests.helpers import at_once, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def receiver(taskhub_settings):
    with receiving(
        taskhub_settings, admins=None, ALERT_RETRY_SECONDS=10, ALERT_MAX_ATTEMPTS=3, ALERT_TIMEOUT_SECONDS=0.5
    ) as receiver:
        yield receiver


def alert(job, kind="failing") -> list[AlertMessage]:
    assert streaks.open_streak(job, kind, detail="for the test")
    return list(AlertMessage.objects.filter(job=job))


def test_a_receiver_answering_500_is_retried_with_backoff_and_given_up_after_the_limit(make_job, receiver):
    [message] = alert(make_job())
    receiver.statuses[:] = [500, 500, 500]
    now = timezone.now()
    outbox.deliver_due(now=now)
    message.refresh_from_db()
    assert (message.status, message.attempts, message.last_error) == ("pending", 1, "HTTP 500: ok")
    assert message.next_attempt_at == now + dt.timedelta(seconds=10)
    assert outbox.deliver_due(now=now + dt.timedelta(seconds=9)) == 0  # not due before its backoff
    outbox.deliver_due(now=now + dt.timedelta(seconds=10))
    message.refresh_from_db()
    assert message.attempts == 2 and message.next_attempt_at == now + dt.timedelta(seconds=30)  # 10 s, then 20 s
    outbox.deliver_due(now=now + dt.timedelta(hours=1))
    message.refresh_from_db()
    assert (message.status, message.attempts, message.sent_at) == ("failed", 3, None)
    assert outbox.deliver_due(now=now + dt.timedelta(days=1)) == 0  # failed for good
    assert receiver.calls == [] and receiver.refused == []


@override_settings(ADMINS=[("ops", "ops@example.com")])
def test_a_receiver_that_hangs_times_out_and_other_messages_still_go(make_job, receiver):
    messages = alert(make_job())
    receiver.delay = 3.0  # longer than ALERT_TIMEOUT_SECONDS
    assert outbox.deliver_due() == 2
    by_channel = {m.channel: m for m in AlertMessage.objects.all()}
    assert len(messages) == 2 and by_channel["email"].status == "sent" and len(mail.outbox) == 1
    hung = by_channel["webhook"]
    assert (hung.status, hung.attempts) == ("pending", 1) and "Timeout" in hung.last_error
    receiver.delay = 0.0
    outbox.deliver_due(now=timezone.now() + dt.timedelta(minutes=1))
    hung.refresh_from_db()
    assert hung.status == "sent" and hung.last_error == ""


def test_a_wrong_secret_is_refused_by_the_receiver(make_job, receiver, taskhub_settings):
    taskhub_settings(ALERT_WEBHOOK_SECRET="not-the-receivers")
    [message] = alert(make_job())
    outbox.deliver_due()
    message.refresh_from_db()
    assert receiver.refused == ["bad signature"] and message.last_error.startswith("HTTP 401")


def leased_until_none() -> int:
    sent = 0
    while outbox.deliver_leased(timezone.now()) is not None:
        sent += 1
    return sent


@pytest.mark.parametrize(
    "deliver", [lambda: outbox.deliver_due(limit=50), leased_until_none], ids=["skip-locked", "leased"]
)
def test_two_deliverers_send_each_message_once(make_job, receiver, deliver, taskhub_settings):
    if connection.vendor != "postgresql":
        pytest.skip("two threads writing at once: Postgres")
    taskhub_settings(ALERT_DIGEST_FROM=0)  # one message per send (digests: test_alert_digest.py)
    jobs = [make_job() for _ in range(12)]
    for job in jobs:
        alert(job)
    receiver.delay = 0.05  # each send holds its row a while: the deliverers overlap
    counts = at_once(deliver, threads=2)
    ids = sorted(call["id"] for call in receiver.calls)
    assert ids == sorted(AlertMessage.objects.values_list("pk", flat=True))  # each once
    assert sum(counts) == 12 and min(counts) > 0, counts  # both took part
    assert set(AlertMessage.objects.values_list("status", flat=True)) == {"sent"}


def transactions_left_open() -> int:
    """Sessions on the test database inside a transaction that waits (a send holding its claim)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state = 'idle in transaction'"
            )
            return cursor.fetchone()[0]
    finally:
        connection.close()  # the receiver's thread's own connection


@pytest.mark.parametrize(("deliver", "open_during_send"), [("deliver_one", 1), ("deliver_leased", 0)])
def test_a_leased_send_holds_no_transaction_open(make_job, receiver, deliver, open_during_send):
    """SQLite's claim (the lease) sends outside any transaction: its single write lock stays free."""
    if connection.vendor != "postgresql":
        pytest.skip("pg_stat_activity shows the transactions")
    alert(make_job())
    receiver.during = transactions_left_open
    assert getattr(outbox, deliver)(timezone.now()) is not None
    assert receiver.seen_during == [open_during_send]
    assert AlertMessage.objects.get().status == "sent"


def test_the_courier_delivers_on_its_own_thread_and_stops(make_job, receiver, taskhub_settings):
    taskhub_settings(ALERT_POLL_SECONDS=0.05)
    [message] = alert(make_job())
    courier = AlertCourier("test")
    courier.start()
    try:
        assert wait_for(lambda: receiver.calls, timeout=10)
    finally:
        courier.stop()
    assert courier.thread is None
    message.refresh_from_db()
    assert message.status == "sent"


def test_beat_starts_its_courier_and_stops_it_on_close(make_job, receiver, taskhub_settings, monkeypatch):
    from taskhub.celery import app
    from tasks_app.engines.celery.beat import TaskhubScheduler

    taskhub_settings(ALERT_POLL_SECONDS=0.05)
    [message] = alert(make_job())
    beat = TaskhubScheduler(app=app)
    monkeypatch.setattr(beat, "_lead", lambda: False)  # a standby: the courier runs all the same
    try:
        beat.tick()
        assert wait_for(lambda: receiver.calls, timeout=10)
    finally:
        beat.close()
    assert beat.courier.thread is None
    assert AlertStreak.objects.count() == 1


def test_a_slow_overdue_look_is_made_less_often(monkeypatch):
    """With very many jobs the look takes long: the courier waits 20 times as long as it took (clock held)."""
    from tasks_app.alerts import courier as courier_module

    clock = [1000.0]
    monkeypatch.setattr(courier_module.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(courier_module.outbox, "deliver_due", lambda now=None: 0)
    looks = []

    def slow_sweep(now=None):
        looks.append(clock[0])
        clock[0] += 5.0  # a look over very many jobs

    courier = AlertCourier("test")
    monkeypatch.setattr(courier.watch, "sweep", slow_sweep)
    for _ in range(60):
        courier.work()
        clock[0] += 5.0  # the poll
    assert looks[:3] == [1000.0, 1100.0, 1200.0]  # every 100 s (20 × 5 s), not every 30 s
