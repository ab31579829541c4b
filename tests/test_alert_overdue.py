"""Overdue alerts: one per overdue streak, a recovery when the job runs again, whoever sweeps.

The clock is held (``overdue.sweep(now=...)``), as in ``test_overdue.py``.
"""

import datetime as dt
import os

import pytest
from django.core import mail
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks_app.alerts import outbox, overdue
from tasks_app.models import AlertMessage, AlertStreak, Job, JobRun, OverdueLook
from tasks_app.models.overdue import overdue_jobs
from tests.alert_receiver import receiving
from tests.factories import job_factory
from tests.helpers import at_once

pytestmark = pytest.mark.django_db(transaction=True)

MINUTE = dt.timedelta(minutes=1)
T0 = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def receiver(taskhub_settings):
    with receiving(taskhub_settings) as receiver:
        yield receiver


def every_minute(**overrides) -> Job:
    job = job_factory(schedule_type="interval", interval_seconds=60, misfire_grace_seconds=30, **overrides)
    Job.objects.filter(pk=job.pk).update(updated_at=T0 + dt.timedelta(seconds=1))  # the 12:01 slot is owed
    return Job.objects.get(pk=job.pk)


def sweep_and_deliver(now) -> dict:
    counts = overdue.sweep(now=now)
    outbox.deliver_due()
    return counts


def test_an_overdue_job_is_reported_once_and_recovers_when_it_runs_again(receiver):
    job = every_minute()
    assert sweep_and_deliver(T0 + MINUTE + dt.timedelta(seconds=29)) == {"opened": 0, "closed": 0}  # in its grace
    assert sweep_and_deliver(T0 + MINUTE + dt.timedelta(seconds=31)) == {"opened": 1, "closed": 0}
    [call] = receiver.calls
    assert (call["kind"], call["job"], call["slot"]) == ("overdue", job.name, (T0 + MINUTE).isoformat())
    assert len(mail.outbox) == 1 and "overdue" in mail.outbox[0].subject
    for later in (2, 5, 30):  # still overdue, later slots missed too: the one alert
        assert sweep_and_deliver(T0 + later * MINUTE)["opened"] == 0
    assert len(receiver.calls) == 1

    ran = JobRun.objects.create(job=job, engine=job.engine, scheduled_for=T0 + 30 * MINUTE, status="succeeded")
    assert sweep_and_deliver(T0 + 30 * MINUTE + dt.timedelta(seconds=10)) == {"opened": 0, "closed": 1}
    assert receiver.kinds() == ["overdue", "recovered"]
    assert receiver.calls[1]["run"] == ran.pk and "ran again" in receiver.calls[1]["text"]
    assert sweep_and_deliver(T0 + 30 * MINUTE + dt.timedelta(seconds=20)) == {"opened": 0, "closed": 0}

    sweep_and_deliver(T0 + 31 * MINUTE + dt.timedelta(seconds=31))  # the next slot is missed: a new streak
    assert receiver.kinds() == ["overdue", "recovered", "overdue"]
    assert len(mail.outbox) == 3


def test_pausing_an_overdue_job_ends_its_streak_and_says_so(receiver):
    job = every_minute()
    sweep_and_deliver(T0 + 2 * MINUTE)
    Job.objects.filter(pk=job.pk).pause()
    sweep_and_deliver(T0 + 3 * MINUTE)
    assert receiver.kinds() == ["overdue", "recovered"] and "paused" in receiver.calls[1]["text"]


def test_a_job_with_overdue_alerts_off_is_recorded_overdue_without_a_message(receiver):
    """Its streak is what the dashboard and /metrics read: it opens and closes, and nobody is told."""
    job = every_minute(alert_when_overdue=False)
    assert sweep_and_deliver(T0 + 10 * MINUTE)["opened"] == 0
    streak = AlertStreak.objects.get()
    assert (streak.job, streak.kind, streak.silent, streak.closed_at) == (job, "overdue", True, None)
    assert (streak.slot, streak.overdue_since) == (T0 + MINUTE, T0 + MINUTE + dt.timedelta(seconds=30))

    JobRun.objects.create(job=job, engine=job.engine, scheduled_for=T0 + 10 * MINUTE, status="succeeded")
    assert sweep_and_deliver(T0 + 10 * MINUTE + dt.timedelta(seconds=10)) == {"opened": 0, "closed": 0}
    streak.refresh_from_db()
    assert streak.closed_at == T0 + 10 * MINUTE + dt.timedelta(seconds=10)
    assert receiver.calls == [] and mail.outbox == [] and not AlertMessage.objects.exists()


def test_a_silent_streak_ends_silently_when_alerts_are_turned_on_and_the_next_one_alerts(receiver):
    job = every_minute(alert_when_overdue=False)
    sweep_and_deliver(T0 + 10 * MINUTE)
    # A person turns the alerts on: an edit, so the clock starts again and the job owes its 12:11 slot.
    Job.objects.filter(pk=job.pk).update(alert_when_overdue=True, updated_at=T0 + 10 * MINUTE + dt.timedelta(seconds=1))
    assert sweep_and_deliver(T0 + 10 * MINUTE + dt.timedelta(seconds=2)) == {"opened": 0, "closed": 0}
    assert not AlertStreak.objects.open().exists() and receiver.calls == []  # no recovery for an alert never sent
    assert sweep_and_deliver(T0 + 12 * MINUTE) == {"opened": 1, "closed": 0}
    assert receiver.kinds() == ["overdue"] and not AlertStreak.objects.get(closed_at__isnull=True).silent


def test_each_look_records_when_it_looked_and_how_many_it_found(receiver):
    every_minute(), every_minute(alert_when_overdue=False), every_minute(enabled=False)
    overdue.OverdueWatch("beat").sweep(now=T0 + 5 * MINUTE)
    overdue.OverdueWatch("apscheduler").sweep(now=T0 + 6 * MINUTE)
    looks = {look.process: look for look in OverdueLook.objects.all()}
    assert {p: (look.looked_at, look.overdue) for p, look in looks.items()} == {
        "beat": (T0 + 5 * MINUTE, 2),
        "apscheduler": (T0 + 6 * MINUTE, 2),
    }
    assert looks["beat"].by.endswith(f":{os.getpid()}")
    overdue.OverdueWatch("beat").sweep(now=T0 + 7 * MINUTE)
    assert OverdueLook.objects.get(process="beat").looked_at == T0 + 7 * MINUTE  # the same row, updated


def test_two_engine_processes_sweeping_at_once_report_once(receiver):
    if connection.vendor != "postgresql":
        pytest.skip("two threads writing at once: Postgres (SQLite's in-memory test database locks whole tables)")
    jobs = [every_minute() for _ in range(5)]
    results = at_once(lambda: overdue.sweep(now=T0 + 5 * MINUTE)["opened"], threads=2)  # two engine processes
    assert sum(results) == len(jobs)
    assert AlertStreak.objects.filter(kind="overdue").count() == len(jobs)
    assert AlertMessage.objects.count() == 2 * len(jobs)  # e-mail and webhook, once per job


def test_a_watch_that_keeps_looking_sees_what_a_fresh_look_sees(receiver):
    """The courier's incremental look: the jobs that fell due, were edited or were added since, and no other."""
    watch = overdue.OverdueWatch()
    on_time, falls_due = every_minute(), every_minute()
    JobRun.objects.create(job=on_time, engine=on_time.engine, scheduled_for=T0 + 9 * MINUTE, status="succeeded")
    assert watch.sweep(now=T0 + MINUTE)["opened"] == 0
    added_later = every_minute()  # created after the first look: read because it was edited since
    Job.objects.filter(pk=added_later.pk).update(updated_at=T0 + MINUTE + dt.timedelta(seconds=1))
    assert watch.sweep(now=T0 + 3 * MINUTE)["opened"] == 2
    assert set(AlertStreak.objects.values_list("job__name", flat=True)) == {falls_due.name, added_later.name}

    Job.objects.filter(pk=falls_due.pk).pause()  # an edit since the last look: read again, and closed
    assert watch.sweep(now=T0 + 4 * MINUTE) == {"opened": 0, "closed": 1}
    assert watch.sweep(now=T0 + 10 * MINUTE + dt.timedelta(seconds=31)) == {"opened": 1, "closed": 0}  # on_time's turn
    assert watch.sweep(now=T0 + 10 * MINUTE + dt.timedelta(seconds=31)) == sweep(
        T0 + 10 * MINUTE + dt.timedelta(seconds=31)
    )


def sweep(now) -> dict:
    return overdue.sweep(now=now)


@pytest.mark.parametrize(
    "first_look", [5 * MINUTE, dt.timedelta(seconds=3)], ids=["later", "just-after-they-were-made"]
)
def test_a_watch_looking_again_reads_no_job_that_is_on_time(receiver, django_assert_max_num_queries, first_look):
    """After its first walk, a look at jobs that are all on time costs the same few queries, whatever their number
    — also when they were made just before it (their edit is read again, and found to be the one it saw).
    The four: the check of the window of late commits before the last look, the jobs edited since, the open
    overdue streaks, and the record of the look itself (what the dashboard and /metrics read its age from);
    the failing streaks whose alerts were turned off are looked for only among edited jobs."""
    for _ in range(30):
        job = every_minute()
        JobRun.objects.create(job=job, engine=job.engine, scheduled_for=T0 + 10 * MINUTE, status="succeeded")
    watch = overdue.OverdueWatch()
    watch.sweep(now=T0 + first_look)  # the first look walks them all; each owes its 12:11 slot
    with django_assert_max_num_queries(4) as captured:
        assert watch.sweep(now=T0 + first_look + MINUTE) == {"opened": 0, "closed": 0}
    assert not any("schedule_type" in q["sql"] for q in captured.captured_queries)


def rows_read_by(callable_, *args):
    """What ``callable_(*args)`` returned, and how many rows its statements brought back."""
    counted = []

    def counting(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        counted.append(max(context["cursor"].rowcount, 0) if sql.lstrip().upper().startswith("SELECT") else 0)
        return result

    with connection.execute_wrapper(counting):
        return callable_(*args), sum(counted)


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_jobs_stamped_just_before_a_look_are_not_read_again_by_the_next(receiver):
    """A deploy that stamps thousands of jobs just before the engine starts: the look after the first walk
    checks that window in one aggregate instead of bringing every row back again."""
    first = T0 + 5 * MINUTE
    for _ in range(60):
        job = every_minute()
        JobRun.objects.create(job=job, engine=job.engine, scheduled_for=T0 + 10 * MINUTE, status="succeeded")
    Job.objects.update(updated_at=first - dt.timedelta(seconds=2))  # inside the late-commit window
    watch = overdue.OverdueWatch()
    watch.sweep(now=first)
    counts, rows = rows_read_by(watch.sweep, first + MINUTE)
    assert counts == {"opened": 0, "closed": 0} and rows < 5


@pytest.mark.parametrize("stamped_before", [T0 + dt.timedelta(seconds=1), T0 + 5 * MINUTE - dt.timedelta(seconds=4)])
def test_an_edit_committed_after_a_look_but_stamped_before_it_is_read_by_the_next(receiver, stamped_before):
    """The edit's stamp lands in the window before the last look (from outside it, or moved within it):
    the next look reads that window again, and sees what a fresh look sees."""
    first = T0 + 5 * MINUTE
    job = every_minute()
    ran = JobRun.objects.create(job=job, engine=job.engine, scheduled_for=T0 + 10 * MINUTE, status="succeeded")
    Job.objects.filter(pk=job.pk).update(updated_at=stamped_before)
    watch = overdue.OverdueWatch()
    assert watch.sweep(now=first)["opened"] == 0  # owes its 12:11 slot
    ran.delete()  # with the edit below, committed late: it owes a slot just after 12:04:59 now
    Job.objects.filter(pk=job.pk).update(updated_at=first - dt.timedelta(seconds=1))
    assert watch.sweep(now=first + 3 * MINUTE)["opened"] == 1


STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, 600)),  # a job stamped this many seconds before the clock
        st.tuples(st.just("run"), st.integers(0, 9), st.integers(0, 20)),  # job i ran its slot at minute m
        st.tuples(st.just("pause"), st.integers(0, 9)),
        st.tuples(st.just("resume"), st.integers(0, 9)),
        st.tuples(st.just("late edit"), st.integers(0, 9), st.integers(1, 4900)),  # stamped ms before the last look
        st.tuples(st.just("look"), st.integers(1, 400)),  # the clock moves on this many seconds, then a look
    ),
    max_size=25,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS)
def test_a_watch_that_keeps_looking_always_agrees_with_a_fresh_look(receiver, steps):
    """Whatever the edits, runs, pauses and late commits between looks, the streaks the courier's incremental
    watch leaves open are the jobs a fresh look finds overdue."""
    AlertStreak.objects.all().delete()
    Job.objects.all().delete()
    watch, now, last_look, jobs = overdue.OverdueWatch(), T0 + 5 * MINUTE, None, []
    for step in [*steps, ("look", 1)]:
        kind, *args = step
        if kind == "add":  # before the first look, made any time before; later, made and committed late at worst
            ago = dt.timedelta(seconds=args[0]) if last_look is None else dt.timedelta(milliseconds=args[0] * 8)
            jobs.append(every_minute())
            Job.objects.filter(pk=jobs[-1].pk).update(updated_at=(last_look or now) - ago)
        elif not jobs and kind != "look":
            continue
        elif kind == "run":
            job = jobs[args[0] % len(jobs)]
            slot = T0 + args[1] * MINUTE
            JobRun.objects.get_or_create(
                job=job, scheduled_for=slot, defaults={"engine": job.engine, "status": "succeeded"}
            )
        elif kind in ("pause", "resume"):
            Job.objects.filter(pk=jobs[args[0] % len(jobs)].pk).update(enabled=kind == "resume", updated_at=now)
        elif kind == "late edit" and last_look is not None:  # stamps grow: a later edit's is past the last one's
            stamp = last_look - dt.timedelta(milliseconds=args[1])
            Job.objects.filter(pk=jobs[args[0] % len(jobs)].pk, updated_at__lt=stamp).update(updated_at=stamp)
        elif kind == "look":
            now += dt.timedelta(seconds=args[0])
            watch.sweep(now=now)
            last_look = now
            open_ids = set(AlertStreak.objects.open().filter(kind="overdue").values_list("job_id", flat=True))
            assert open_ids == {o.job.pk for o in overdue_jobs(now)}, step


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_the_couriers_due_check_agrees_with_the_orm(receiver, offset):
    """``any_due`` (its text made once) says what ``due(now).exists()`` says, at the instant's edge too."""
    job = every_minute()
    streak = AlertStreak.objects.create(job=job, kind="overdue", opened_at=T0)
    message = AlertMessage.objects.create(job=job, streak=streak, kind="overdue", channel="webhook", next_attempt_at=T0)
    now = T0 + dt.timedelta(microseconds=offset)
    assert outbox.any_due(now) == outbox.due(now).exists() == (offset >= 0)
    AlertMessage.objects.filter(pk=message.pk).update(status="sent")
    assert outbox.any_due(now) is False


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_the_courier_outlives_its_connection_being_dropped(receiver, caplog):
    """The courier keeps its connection unchecked between passes: one the server ended fails one pass
    (a warning), and the next pass, on a new connection, delivers what is due."""
    import psycopg

    from tasks_app.alerts.courier import AlertCourier

    courier = AlertCourier("test")
    courier.work()  # the first pass: the look, and nothing to send
    job = every_minute()
    streak = AlertStreak.objects.create(job=job, kind="overdue", opened_at=T0)
    message = AlertMessage.objects.create(job=job, streak=streak, kind="overdue", channel="webhook")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        [pid] = cursor.fetchone()
    settings_dict = connection.settings_dict
    with psycopg.connect(
        host=settings_dict["HOST"], port=settings_dict["PORT"], user=settings_dict["USER"], dbname="postgres"
    ) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    courier.work()
    assert "alert pass failed" in caplog.text
    AlertMessage.objects.filter(pk=message.pk).update(next_attempt_at=T0)  # due now, whatever the first pass did
    courier.work()
    assert AlertMessage.objects.get(pk=message.pk).status == "sent" and receiver.kinds() == ["overdue"]
