"""Beat at scale: M enabled cron jobs, none due during the run — start-up, memory, idle CPU, one edit.

- taskhub: M ``cron`` jobs (``MM 3 * * *``, spread over 24 time zones and 60 minutes; a job
  that would fire within the hour moves to 15:MM) served by taskhub's beat.
- stock: the same M schedules as ``PeriodicTask`` rows on ``CrontabSchedule`` rows in the
  same zones, served by django-celery-beat's ``DatabaseScheduler`` (whose 2.9 pre-filter
  loads only crontabs whose hour is within +-2 h of now; the "loaded" column says how many).

Measured one after the other on the same machine, with a worker per side:

1. start-up: from spawning the beat to its first fire — a sentinel one-off already due when
   the beat starts, so it is sent as soon as the schedule is loaded — and, for taskhub, to
   its ``beat loaded jobs`` log line (and the load time that line reports).
2. memory: VmRSS and VmHWM of the beat process (``/proc/<pid>/status``) after start-up.
3. idle CPU: utime+stime (``/proc/<pid>/stat``) of both beats over the same idle window,
   scaled to CPU seconds per minute (the quick window is 10 s).
4. one edit: one of the M jobs/tasks becomes a one-off 2 s ahead; lateness of its handler
   start, and the beat's CPU seconds over a window after the edit minus its idle rate.

The jobs are inserted with a plain bulk insert (no per-row validation, no projection into
django-celery-beat rows, which taskhub's beat does not read). Idle CPU is also measured for
taskhub's beat alone at M/100 and M/10 jobs (quick: 50), to show it flat. Usage:
``python bench/beat_scale.py [--quick] [--keep-logs] [--jobs M]`` (M: 10,000 unless given).
"""

import datetime as dt
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

DB, PEER_DB = "taskhub_bench_scale", "taskhub_bench_scale_peer"
ZONES = [
    "Pacific/Pago_Pago",
    "Pacific/Honolulu",
    "America/Anchorage",
    "America/Los_Angeles",
    "America/Denver",
    "America/Chicago",
    "America/New_York",
    "America/Halifax",
    "America/Sao_Paulo",
    "Atlantic/South_Georgia",
    "Atlantic/Azores",
    "UTC",
    "Europe/Berlin",
    "Europe/Athens",
    "Europe/Moscow",
    "Asia/Dubai",
    "Asia/Karachi",
    "Asia/Dhaka",
    "Asia/Bangkok",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Australia/Brisbane",
    "Pacific/Noumea",
    "Pacific/Auckland",
]
START_TIMEOUT = 600.0
EDIT_AHEAD = 2.0


def run(args) -> None:
    count = 500 if args.quick else args.jobs
    counts = [50, 500] if args.quick else common.idle_counts(count)
    idle_window, edit_window = (10.0, 8.0) if args.quick else (60.0, 15.0)
    with common.Bench("scale", [DB, PEER_DB], keep_logs=args.keep_logs) as bench:
        common.setup_django(DB, PEER_DB)
        schedules = _schedules(count)
        made = 0
        growth = []  # (jobs, idle CPU s/min, start-up to loaded) of taskhub's beat alone, below the full count
        for smaller in counts[:-1]:
            _taskhub_jobs(schedules, made, smaller)
            made = smaller
            growth.append(_idle_alone(bench, smaller, idle_window))
        _taskhub_jobs(schedules, made, count)
        _peer_tasks(schedules)
        workers = [
            bench.worker("taskhub-worker", DB, common.REDIS_TASKHUB),
            bench.worker("peer-worker", PEER_DB, common.REDIS_PEER, "-I", "bench.peer_tasks"),
        ]
        for worker in workers:
            bench.wait_for_line(worker, "worker ready", 60)
        figures = {"taskhub": {"jobs": count}, "stock": {"jobs": count}}
        beats = {"taskhub": _start_taskhub(bench, figures["taskhub"]), "stock": _start_stock(bench, figures["stock"])}
        time.sleep(3.0)
        for side, beat in beats.items():
            figures[side].update(rss=common.rss_mb(beat.pid), peak=common.peak_rss_mb(beat.pid))
        idle = _idle_cpu(bench, beats, idle_window)
        for side in beats:
            figures[side]["idle_cpu_per_min"] = idle[side] * 60
        figures["taskhub"].update(_edit(bench, beats["taskhub"], idle["taskhub"], edit_window, _edit_job))
        figures["stock"].update(_edit(bench, beats["stock"], idle["stock"], edit_window, _edit_task))
        print(_report(count, idle_window, edit_window, figures, growth))


def _idle_alone(bench, jobs: int, window: float) -> tuple[int, float, float]:
    """taskhub's beat on its first ``jobs`` jobs, alone: (jobs, idle CPU s/min, spawn to loaded)."""
    beat = bench.beat(f"taskhub-beat-{jobs}", DB, common.REDIS_TASKHUB)
    loaded = bench.wait_for_line(beat, "beat loaded jobs", START_TIMEOUT) - beat.started
    time.sleep(3.0)
    idle = _idle_cpu(bench, {"taskhub": beat}, window)["taskhub"]
    bench.stop(beat)
    return jobs, idle * 60, loaded


# -- the schedules -----------------------------------------------------------------------------
def _schedules(count: int) -> list[tuple[int, int, str]]:
    """(minute, hour, zone) per job: 03:MM local, or 15:MM when 03:MM comes within the hour."""
    from tasks_app.scheduling import slots

    now = dt.datetime.now(dt.UTC)
    soon = {}
    out = []
    for i in range(count):
        minute, zone = i % 60, ZONES[(i // 60) % len(ZONES)]
        if (minute, zone) not in soon:
            [fire] = slots.cron_fire_times(f"{minute} 3 * * *", zone, now, 1)
            soon[minute, zone] = fire - now < dt.timedelta(hours=1)
        out.append((minute, 15 if soon[minute, zone] else 3, zone))
    return out


def _taskhub_jobs(schedules, first: int = 0, end: int | None = None) -> None:
    """The jobs of ``schedules[first:end]``."""
    from django.db.models import QuerySet

    from tasks_app.models import Job

    jobs = [
        Job(
            name=f"bench-scale-{i:05d}",
            handler="number_sum",
            kwargs={"x": i, "y": 1},
            engine="celery",
            schedule_type="cron",
            cron_expression=f"{minute} {hour} * * *",
            timezone=zone,
        )
        for i, (minute, hour, zone) in enumerate(schedules[first:end], start=first)
    ]
    for job in jobs[: len(ZONES) * 2]:
        job.full_clean()  # a sample through the model's validation; the rest are the same shapes
    QuerySet.bulk_create(Job.objects.all(), jobs, batch_size=2000)


def _peer_tasks(schedules) -> None:
    from django_celery_beat.models import CrontabSchedule, PeriodicTask, PeriodicTasks

    with common.peer():
        crontabs = {}
        for minute, hour, zone in sorted(set(schedules)):
            crontabs[minute, hour, zone] = CrontabSchedule(
                minute=str(minute), hour=str(hour), day_of_week="*", day_of_month="*", month_of_year="*", timezone=zone
            )
        CrontabSchedule.objects.bulk_create(crontabs.values(), batch_size=2000)
        tasks = [
            PeriodicTask(
                name=f"bench-scale-{i:05d}",
                task="bench.peer.stamp",
                crontab=crontabs[key],
                kwargs=json.dumps({"tag": f"bench-scale-{i:05d}"}),
            )
            for i, key in enumerate(schedules)
        ]
        PeriodicTask.objects.bulk_create(tasks, batch_size=2000)
        PeriodicTasks.update_changed()


# -- start-up ----------------------------------------------------------------------------------
def _start_taskhub(bench, figures: dict):
    from django.utils import timezone

    from tasks_app.models import Job, JobRun

    due = timezone.now() + dt.timedelta(seconds=1)
    sentinel = Job.objects.create(
        name="bench-scale-sentinel",
        handler="number_sum",
        kwargs={"x": 0, "y": 0},
        engine="celery",
        schedule_type="once",
        run_at=due,
    )
    _sleep_until(due.timestamp() + 0.5)  # due before the beat starts: it is sent while the schedule loads
    beat = bench.beat("taskhub-beat", DB, common.REDIS_TASKHUB)
    seen = bench.wait_for_line(beat, "beat loaded jobs", START_TIMEOUT)
    line = next(json.loads(x) for x in common.log_text(beat).splitlines() if '"beat loaded jobs"' in x)
    run = common.wait_until(
        lambda: JobRun.objects.filter(job=sentinel, started_at__isnull=False).first(), START_TIMEOUT
    )
    if run is None:
        raise common.BenchError("taskhub's sentinel did not run")
    figures.update(
        loaded=line["jobs"] - 1,
        to_loaded=seen - beat.started,
        load_reported=line["seconds"],
        to_first_fire=run.started_at.timestamp() - beat.started,
    )
    return beat


def _start_stock(bench, figures: dict):
    from django.utils import timezone
    from django_celery_beat.models import ClockedSchedule, PeriodicTask
    from django_celery_beat.schedulers import DatabaseScheduler

    due = timezone.now() + dt.timedelta(seconds=1)
    with common.peer():
        PeriodicTask.objects.create(
            name="bench-scale-sentinel",
            task="bench.peer.stamp",
            one_off=True,
            clocked=ClockedSchedule.objects.create(clocked_time=due),
            kwargs=json.dumps({"tag": "bench-scale-sentinel"}),
        )
    _sleep_until(due.timestamp() + 0.5)
    beat = bench.beat("stock-beat", PEER_DB, common.REDIS_PEER, "-S", common.STOCK_SCHEDULER)
    with common.peer():
        # What its pre-filter loads at this hour (the same query, on a bare instance).
        loaded = DatabaseScheduler.enabled_models_qs(DatabaseScheduler.__new__(DatabaseScheduler)).count()
    stamp = common.wait_until(lambda: _stamp("bench-scale-sentinel"), START_TIMEOUT)
    if stamp is None:
        raise common.BenchError("the stock beat's sentinel did not run")
    figures.update(
        loaded=loaded - 1,
        to_loaded=float("nan"),
        load_reported=float("nan"),
        to_first_fire=stamp["started"] - beat.started,
    )
    return beat


def _stamp(tag: str):
    return next((s for s in common.peer_stamps() if s["tag"] == tag), None)


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


# -- idle and one edit -------------------------------------------------------------------------
def _idle_cpu(bench, beats: dict, window: float) -> dict:
    """CPU seconds per wall second of each beat over the same idle window."""
    before = {side: common.cpu_seconds(beat.pid) for side, beat in beats.items()}
    started = time.monotonic()
    while time.monotonic() - started < window:
        bench.check_alive()
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    return {side: (common.cpu_seconds(beat.pid) - before[side]) / elapsed for side, beat in beats.items()}


def _edit(bench, beat, idle_rate: float, window: float, move) -> dict:
    cpu_before, started = common.cpu_seconds(beat.pid), time.monotonic()
    target = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=EDIT_AHEAD)
    wait_for_start = move(target)
    start = common.wait_until(wait_for_start, EDIT_AHEAD + 30)
    if start is None:
        raise common.BenchError("an edit had no effect within 30 s of its new time")
    while time.monotonic() - started < window:
        bench.check_alive()
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    spent = common.cpu_seconds(beat.pid) - cpu_before
    return {"edit_late": start - target.timestamp(), "edit_cpu": spent - idle_rate * elapsed}


def _edit_job(target: dt.datetime):
    from tasks_app.models import Job, JobRun

    job = Job.objects.get(name="bench-scale-00007")
    job.schedule_type, job.run_at = "once", target
    job.save()

    def started():
        run = JobRun.objects.filter(job=job, scheduled_for=target, started_at__isnull=False).first()
        return run.started_at.timestamp() if run else None

    return started


def _edit_task(target: dt.datetime):
    from django_celery_beat.models import ClockedSchedule, PeriodicTask

    with common.peer():
        task = PeriodicTask.objects.get(name="bench-scale-00007")
        task.crontab, task.one_off = None, True
        task.clocked = ClockedSchedule.objects.create(clocked_time=target)
        task.save()

    def started():
        stamp = _stamp("bench-scale-00007")
        return stamp["started"] if stamp else None

    return started


def _report(count: int, idle_window: float, edit_window: float, figures: dict, growth: list) -> str:
    rows = []
    for side, label in [("taskhub", "taskhub beat"), ("stock", "django-celery-beat DatabaseScheduler")]:
        f = figures[side]
        rows.append(
            [
                label,
                f["jobs"],
                f["loaded"],
                f["to_loaded"],
                f["load_reported"],
                f["to_first_fire"],
                f["rss"],
                f["peak"],
                f["idle_cpu_per_min"],
                f["edit_late"] * 1000,
                f["edit_cpu"],
            ]
        )
    t, s = figures["taskhub"], figures["stock"]
    notes = [
        f"stock / taskhub: start-up {common.ratio(s['to_first_fire'], t['to_first_fire']):.2f}x, "
        f"RSS {common.ratio(s['rss'], t['rss']):.2f}x, "
        f"idle CPU {common.ratio(s['idle_cpu_per_min'], t['idle_cpu_per_min']):.2f}x, "
        f"edit lateness {common.ratio(s['edit_late'], t['edit_late']):.1f}x",
        "to_loaded_s: spawn to the 'beat loaded jobs' line (load_s: the load time that line reports); "
        "to_first_fire_s: spawn to the start of a sentinel already due at spawn",
        f"idle_cpu: over the same {idle_window:g} s idle window, scaled to one minute; "
        f"edit_cpu: CPU seconds in the {edit_window:g} s after the edit minus the idle rate",
        "loaded: jobs in the beat's schedule (stock: its +-2 h crontab pre-filter, counted with its own query)",
        "idle CPU s/min of taskhub's beat: "
        + ", ".join(f"{cpu:.3f} at {jobs} (loaded {loaded:.1f} s after spawn, alone)" for jobs, cpu, loaded in growth)
        + f", {t['idle_cpu_per_min']:.3f} at {count} (goal: <= 0.05, flat)",
        common.machine_note(),
    ]
    headers = [
        "scheduler",
        "jobs",
        "loaded",
        "to_loaded_s",
        "load_s",
        "to_first_fire_s",
        "rss_mb",
        "peak_rss_mb",
        "idle_cpu_s_per_min",
        "edit_late_ms",
        "edit_cpu_s",
    ]
    return common.table(f"beat_scale: {count} enabled cron jobs, none due during the run", headers, rows, notes)


if __name__ == "__main__":
    common.main(
        run,
        "beat_scale.py",
        "Start-up, memory, idle CPU and edit cost of taskhub's beat at scale.",
        options=common.jobs_option(),
    )
