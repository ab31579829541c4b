"""Jobs: the change marker, next fire times, projection into engines, declared jobs, retention."""

import datetime as dt
import json

import psycopg
import pytest
from django.db import connection, transaction
from django.utils import timezone

from tasks_app.engines import get_engine
from tasks_app.engines.memory import MemoryEngine
from tasks_app.models import Job, JobRun, changes
from tasks_app.models.declared import sync_declared
from tasks_app.models.retention import delete_runs_older_than

pytestmark = pytest.mark.django_db(transaction=True)


def bumps(operation) -> int:
    before = changes.version()
    operation()
    return changes.version() - before


def test_every_kind_of_change_bumps_the_marker(make_job):
    job = make_job()
    other = make_job()
    assert bumps(lambda: make_job()) == 1
    assert bumps(lambda: job.save()) == 1
    assert bumps(lambda: Job.objects.filter(pk=job.pk).update(description="bulk")) == 1
    assert bumps(lambda: Job.objects.filter(pk__in=[job.pk, other.pk]).pause()) == 1
    assert bumps(lambda: Job.objects.all().enable()) == 1
    assert bumps(lambda: Job.objects.filter(pk=job.pk).switch_engine("celery")) == 1
    assert bumps(lambda: Job.objects.filter(pk=job.pk).duplicate()) >= 1
    assert bumps(lambda: other.delete()) >= 1
    assert bumps(lambda: Job.objects.filter(pk=-1).update(description="nothing")) == 0


def test_a_bulk_update_stamps_updated_at_so_engines_see_which_jobs_changed(make_job):
    job = make_job()
    before = job.updated_at
    Job.objects.filter(pk=job.pk).pause()
    job.refresh_from_db()
    assert job.updated_at > before and job.enabled is False


def test_a_rolled_back_change_leaves_the_marker_alone(make_job):
    job = make_job()
    version = changes.version()
    with pytest.raises(RuntimeError), transaction.atomic():
        Job.objects.filter(pk=job.pk).pause()
        raise RuntimeError("roll back")
    assert changes.version() == version and Job.objects.get(pk=job.pk).enabled


def test_postgres_is_notified_on_commit_with_the_changed_job_ids(make_job):
    if connection.vendor != "postgresql":
        pytest.skip("NOTIFY is Postgres only")
    job = make_job()
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params, autocommit=True) as listener:
        listener.execute(f"LISTEN {changes.CHANNEL}")
        with transaction.atomic():
            Job.objects.filter(pk=job.pk).pause()
            assert not list(listener.notifies(timeout=0.2, stop_after=1))  # nothing before commit
        [note] = list(listener.notifies(timeout=2, stop_after=1))
    assert note.channel == changes.CHANNEL and f"[{job.pk}]" in note.payload


def test_next_fire_times_follow_the_job_timezone_across_dst(make_job):
    job = make_job(schedule_type="cron", cron_expression="30 2 * * *", timezone="Europe/Amsterdam")
    times = job.next_fire_times(3, after=dt.datetime(2027, 3, 27, 12, tzinfo=dt.UTC))
    assert times == [
        dt.datetime(2027, 3, 28, 1, 0, tzinfo=dt.UTC),  # 02:30 does not exist: 03:00 CEST
        dt.datetime(2027, 3, 29, 0, 30, tzinfo=dt.UTC),
        dt.datetime(2027, 3, 30, 0, 30, tzinfo=dt.UTC),
    ]


def test_a_one_off_job_does_not_fire_again_after_it_ran(make_job):
    job = make_job(schedule_type="once", run_at=timezone.now() + dt.timedelta(minutes=5))
    assert job.next_fire_times(5) == [job.run_at]
    JobRun.objects.create(job=job, engine=job.engine, scheduled_for=job.run_at, status="succeeded")
    assert job.next_fire_times(5, after=job.run_at - dt.timedelta(minutes=1)) == []


def test_saving_projects_the_job_into_its_engine_and_pausing_removes_it(make_job, taskhub_settings):
    taskhub_settings(
        ENGINES={
            "celery": "tasks_app.engines.celery.CeleryEngine",
            "apscheduler": "tasks_app.engines.memory.MemoryEngine",
        }
    )
    from django_celery_beat.models import PeriodicTask

    def beat_row(job):
        return PeriodicTask.objects.filter(name=f"taskhub:{job.pk}:{job.name}").first()

    memory = get_engine("apscheduler")
    job = make_job(
        engine="apscheduler", schedule_type="cron", cron_expression="30 2 * * *", timezone="Europe/Amsterdam"
    )
    assert job.pk in memory.jobs and beat_row(job) is None
    Job.objects.filter(pk=job.pk).switch_engine("celery")
    row = beat_row(job)
    assert job.pk not in memory.jobs and row.enabled and row.task == "taskhub.run_job"
    assert (row.crontab.minute, row.crontab.hour, str(row.crontab.timezone)) == ("30", "2", "Europe/Amsterdam")
    assert json.loads(row.kwargs) == {"job_id": job.pk} and row.queue == job.queue
    Job.objects.filter(pk=job.pk).pause()
    assert beat_row(job) is None
    Job.objects.filter(pk=job.pk).enable()
    job.refresh_from_db()
    job.schedule_type, job.interval_seconds = "interval", 90
    job.save()
    assert beat_row(job).interval.every == 90 and beat_row(job).crontab is None
    job.delete()
    assert not PeriodicTask.objects.filter(name__startswith=f"taskhub:{row.name.split(':')[1]}:").exists()


def test_a_bulk_pause_removes_the_beat_rows_of_exactly_those_jobs_in_one_query(make_job, taskhub_settings):
    taskhub_settings(
        ENGINES={
            "celery": "tasks_app.engines.celery.CeleryEngine",
            "apscheduler": "tasks_app.engines.memory.MemoryEngine",
        }
    )
    from django.test.utils import CaptureQueriesContext
    from django_celery_beat.models import PeriodicTask

    jobs = [make_job(engine="celery", schedule_type="interval", interval_seconds=60) for _ in range(12)]
    paused, kept = jobs[:11], jobs[11:]  # ids n and n+10 both present: a prefix must not match the other

    def rows(group):
        return PeriodicTask.objects.filter(name__in=[f"taskhub:{job.pk}:{job.name}" for job in group]).count()

    assert (rows(paused), rows(kept)) == (11, 1)
    with CaptureQueriesContext(connection) as queries:
        Job.objects.filter(pk__in=[job.pk for job in paused]).pause()
    assert (rows(paused), rows(kept)) == (0, 1)
    beat_selects = [
        q
        for q in queries.captured_queries
        if 'FROM "django_celery_beat_periodictask"' in q["sql"] and q["sql"].startswith("SELECT")
    ]
    assert len(beat_selects) == 1


class FailsToUnscheduleSome(MemoryEngine):
    """A real in-process engine that cannot unschedule the jobs in ``stuck``."""

    stuck: set = set()

    def unschedule(self, job_id: int) -> None:
        if job_id in self.stuck:
            raise RuntimeError("engine trouble")
        super().unschedule(job_id)


def test_one_job_failing_to_unschedule_leaves_the_others_unscheduled_and_the_pause_stored(
    make_job, taskhub_settings, caplog
):
    taskhub_settings(
        ENGINES={
            "celery": "tasks_app.engines.memory.MemoryEngine",
            "apscheduler": "tests.test_jobs.FailsToUnscheduleSome",
        }
    )
    engine = get_engine("apscheduler")
    jobs = [make_job() for _ in range(3)]
    assert set(engine.jobs) >= {job.pk for job in jobs}
    engine.stuck = {jobs[0].pk}
    Job.objects.filter(pk__in=[job.pk for job in jobs]).pause()
    assert jobs[0].pk in engine.jobs and not {jobs[1].pk, jobs[2].pk} & set(engine.jobs)
    assert not Job.objects.filter(pk__in=[job.pk for job in jobs], enabled=True).exists()
    assert any(r.message == "projecting a job failed" for r in caplog.records)


def test_jobs_bulk_created_with_ignore_conflicts_are_projected_too(make_job, taskhub_settings):
    taskhub_settings(
        ENGINES={
            "celery": "tasks_app.engines.celery.CeleryEngine",
            "apscheduler": "tasks_app.engines.memory.MemoryEngine",
        }
    )
    from django_celery_beat.models import PeriodicTask

    existing = make_job(engine="celery")
    fields = {
        "handler": "number_sum",
        "kwargs": {"x": 1, "y": 2},
        "schedule_type": "interval",
        "interval_seconds": 60,
        "engine": "celery",
    }
    Job.objects.bulk_create([Job(name=existing.name, **fields), Job(name="fresh-one", **fields)], ignore_conflicts=True)
    fresh = Job.objects.get(name="fresh-one")  # Django set no primary key on it: found by name
    assert PeriodicTask.objects.filter(name=f"taskhub:{fresh.pk}:fresh-one").exists()


def test_the_memory_engine_fires_due_slots_through_the_runner(make_job, memory_engines):
    engine = get_engine("apscheduler")
    job = make_job(
        engine="apscheduler", schedule_type="interval", interval_seconds=60, kwargs={"x": 1, "y": 1}, max_running=5
    )
    start = dt.datetime(2030, 1, 1, 0, 0, 30, tzinfo=dt.UTC)
    engine.last_tick[job.pk] = start
    futures = engine.tick(start + dt.timedelta(minutes=3))
    for future in futures:
        future.result(timeout=10)
    slots = list(JobRun.objects.filter(job=job).order_by("scheduled_for").values_list("scheduled_for", "status"))
    assert slots == [(start + dt.timedelta(seconds=30 + 60 * k), "succeeded") for k in range(3)]


def test_sync_jobs_creates_updates_and_prunes_declared_jobs():
    declared = [
        {
            "name": "declared-a",
            "handler": "number_sum",
            "kwargs": {"x": 1, "y": 2},
            "schedule_type": "interval",
            "interval_seconds": 60,
        }
    ]
    assert sync_declared(declared) == {"created": 1, "updated": 0, "unchanged": 0, "paused": 0}
    assert sync_declared(declared) == {"created": 0, "updated": 0, "unchanged": 1, "paused": 0}
    declared[0]["interval_seconds"] = 120
    assert sync_declared(declared)["updated"] == 1
    assert Job.objects.get(name="declared-a").declared_in_code
    assert sync_declared([], prune=True)["paused"] == 1
    assert not Job.objects.get(name="declared-a").enabled


def test_retention_deletes_old_finished_runs_in_batches(make_job):
    job = make_job()
    old = timezone.now() - dt.timedelta(days=40)
    for minute in range(25):
        JobRun.objects.create(
            job=job, engine="celery", status="succeeded", scheduled_for=old + dt.timedelta(minutes=minute)
        )
    JobRun.objects.create(job=job, engine="celery", status="running", scheduled_for=old - dt.timedelta(days=1))
    recent = JobRun.objects.create(job=job, engine="celery", status="failed", scheduled_for=timezone.now())
    from django_apscheduler.models import DjangoJob, DjangoJobExecution

    aps = DjangoJob.objects.create(id="taskhub-job-x", job_state=b"")
    DjangoJobExecution.objects.create(job=aps, status="Executed", run_time=old)
    recent_execution = DjangoJobExecution.objects.create(job=aps, status="Executed", run_time=timezone.now())
    assert delete_runs_older_than(30, batch_size=10) == 25
    assert list(DjangoJobExecution.objects.values_list("pk", flat=True)) == [recent_execution.pk]
    assert set(JobRun.objects.values_list("status", flat=True)) == {"running", "failed"}
    assert JobRun.objects.filter(pk=recent.pk).exists()


def test_without_listen_the_watcher_finds_changed_and_deleted_jobs_from_the_marker(make_job, monkeypatch):
    from tasks_app.engines import listener

    monkeypatch.setattr(listener.ChangeListener, "open", classmethod(lambda cls, using="default": None))
    kept, edited, deleted = make_job(), make_job(), make_job()
    watcher = listener.ChangeWatcher(sleep=lambda seconds: None)
    known = lambda: {kept.pk, edited.pk, deleted.pk}
    assert watcher.wait(0.01, known).jobs == set()  # nothing changed: the marker says so
    watcher.seen_update = timezone.now()
    Job.objects.filter(pk=edited.pk).pause()
    deleted_id = deleted.pk
    Job.objects.filter(pk=deleted_id).delete()
    assert watcher.wait(0.01, known).jobs == {edited.pk, deleted_id}
    assert watcher.wait(0.01, known).jobs == set()


def test_without_listen_the_watcher_hears_run_requests_from_the_marker_on_sqlite_only(make_job, monkeypatch):
    from tasks_app.engines import listener
    from tasks_app.models import changes

    monkeypatch.setattr(listener.ChangeListener, "open", classmethod(lambda cls, using="default": None))
    watcher = listener.ChangeWatcher(sleep=lambda seconds: None)
    known = set
    assert not watcher.wait(0.01, known).runs_queued
    changes.runs_requested()
    assert watcher.wait(0.01, known).runs_queued  # the APScheduler engine bumps it where NOTIFY is not heard
    assert not watcher.wait(0.01, known).runs_queued
    # On Postgres run requests are NOTIFYs: a watcher that lost LISTEN hears them only by looking.
    for vendor, hears in [("postgresql", False), ("sqlite", True)]:
        monkeypatch.setattr(listener, "connection", type("Connection", (), {"vendor": vendor})())
        assert watcher.hears_run_requests is hears


def test_jobs_read_from_the_database_share_their_common_text_and_keep_their_own_names(make_job):
    """A scheduler holding 100,000 jobs keeps one copy of each handler, zone, cron... (``Job.from_db``)."""
    for i in range(3):
        make_job(schedule_type="cron", cron_expression="5 3 * * *", timezone="Europe/Berlin", kwargs={"x": i, "y": 1})
    ways = {
        "all fields": list(Job.objects.all()),
        "deferred": list(Job.objects.for_scheduling("queue").iterator(chunk_size=2)),
        "through a run": [run.job for run in _runs_of(Job.objects.all())],
    }
    for way, (a, b, c) in ways.items():
        for field in ("handler", "engine", "schedule_type", "cron_expression", "timezone"):
            assert getattr(a, field) is getattr(b, field) is getattr(c, field), (way, field)
        assert (a.cron_expression, a.timezone) == ("5 3 * * *", "Europe/Berlin")
        assert len({a.name, b.name, c.name}) == 3, way
    stored = Job.objects.get(pk=a.pk)
    assert Job.objects.filter(pk=a.pk, handler=stored.handler, timezone="Europe/Berlin").exists()


def _runs_of(jobs):
    for job in jobs:
        JobRun.objects.create(job=job, engine=job.engine, scheduled_for=timezone.now())
    return JobRun.objects.filter(job__in=jobs).select_related("job").order_by("pk")
