"""Never a storm: many alerts of one kind due at once on one channel go out as one digest (alerts/outbox.py).

The receiver is a real HTTP server that checks the signature; e-mail is Django's locmem backend.
"""

import datetime as dt

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from tasks_app.alerts import outbox, streaks
from tasks_app.models import AlertMessage, Job
from tests.alert_receiver import receiving
from tests.helpers import at_once

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def receiver(taskhub_settings):
    with receiving(taskhub_settings, ALERT_RETRY_SECONDS=10, ALERT_DIGEST_FROM=3) as receiver:
        yield receiver


def overdue(jobs) -> None:
    for job in jobs:
        assert streaks.open_streak(job, "overdue", slot=timezone.now(), detail="for the test")


def sent_alert_ids(receiver) -> list[int]:
    """Every alert the receiver got, digests unpacked."""
    return sorted(a["id"] for call in receiver.calls for a in (call["alerts"] if call["kind"] == "digest" else [call]))


def test_an_engine_going_down_is_one_message_per_channel_not_one_per_job(make_job, receiver):
    jobs = [make_job() for _ in range(12)]
    overdue(jobs)
    assert outbox.deliver_due() == 24
    [call] = receiver.calls
    assert (call["kind"], call["of"], call["count"]) == ("digest", "overdue", 12)
    assert sorted(a["job"] for a in call["alerts"]) == sorted(j.name for j in jobs)
    assert call["text"].startswith("taskhub: 12 jobs are overdue: ") and call["text"].endswith(" and 2 more")
    [email] = mail.outbox
    assert email.subject.startswith("[taskhub] 12 jobs are overdue") and email.to == ["ops@example.com"]
    assert all(f"/admin/tasks_app/job/{j.pk}/change/" in email.body for j in jobs)
    assert set(AlertMessage.objects.values_list("status", "attempts")) == {("sent", 1)}


@pytest.mark.parametrize("count", [1, 3])  # one e-mail, and a digest
def test_a_job_name_with_a_line_break_does_not_stop_the_e_mail(make_job, receiver, count):
    """The name validator is no database constraint: raw SQL can write one, and the subject must stay one line."""
    jobs = [make_job() for _ in range(count)]
    with connection.cursor() as cursor:
        cursor.execute("UPDATE tasks_app_job SET name = %s WHERE id = %s", ["odd\r\nBcc: x@example.com", jobs[0].pk])
    overdue([Job.objects.get(pk=job.pk) for job in jobs])
    outbox.deliver_due()
    [email] = mail.outbox
    assert "\n" not in email.subject and "odd Bcc: x@example.com" in email.subject
    assert email.to == ["ops@example.com"] and "x@example.com" not in email.recipients()
    assert set(AlertMessage.objects.values_list("status", flat=True)) == {"sent"}


def test_fewer_than_the_threshold_go_one_by_one_and_kinds_and_recipients_are_not_mixed(make_job, receiver):
    own = make_job(alert_emails="owner@example.com")
    overdue([make_job(), make_job(), own])  # two share their recipients, the third has its own
    assert streaks.open_streak(make_job(), "failing", detail="for the test")
    outbox.deliver_due()
    assert sorted(call["kind"] for call in receiver.calls) == ["digest", "failing"]  # 3 overdue: a digest
    assert sorted(len(m.to) for m in mail.outbox) == [1, 1, 1, 2]  # e-mail: 2 + 1 overdue, 1 failing: none of 3
    assert sent_alert_ids(receiver) == sorted(
        AlertMessage.objects.filter(channel="webhook").values_list("pk", flat=True)
    )


def test_a_digest_that_fails_is_retried_together(make_job, receiver):
    overdue([make_job() for _ in range(4)])
    receiver.statuses[:] = [500]
    now = timezone.now()
    outbox.deliver_due(now=now)
    webhook = AlertMessage.objects.filter(channel="webhook")
    assert {(m.status, m.attempts, m.next_attempt_at) for m in webhook} == {
        ("pending", 1, now + dt.timedelta(seconds=10))
    }
    assert receiver.calls == []
    outbox.deliver_due(now=now + dt.timedelta(seconds=10))
    [call] = receiver.calls
    assert call["count"] == 4 and set(webhook.values_list("status", flat=True)) == {"sent"}


def test_two_deliverers_carry_each_message_once(make_job, receiver):
    if connection.vendor != "postgresql":
        pytest.skip("two threads writing at once: Postgres")
    overdue([make_job() for _ in range(20)])
    receiver.delay = 0.05
    counts = at_once(lambda: outbox.deliver_due(limit=50), threads=2)
    assert sent_alert_ids(receiver) == sorted(
        AlertMessage.objects.filter(channel="webhook").values_list("pk", flat=True)
    )
    assert sum(counts) == 40 and len(mail.outbox) + len(receiver.calls) <= 4
    assert set(AlertMessage.objects.values_list("status", flat=True)) == {"sent"}
