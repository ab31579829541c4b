"""The APScheduler engine at scale: M enabled jobs, none due — start-up, memory, idle CPU, one edit.

- taskhub: M ``cron`` jobs ``MM H * * *`` (H = 12 hours from now, UTC; MM = index mod 60;
  engine ``apscheduler``), created with ``Job.objects.bulk_create`` and served by
  ``manage.py runapscheduler``; at M/100, M/10 and M jobs (quick: 50 and 500), each from a
  cold start, for the growth of idle CPU with the number of jobs.
- stock: ``bench/aps_peer.py`` (django-apscheduler as documented) adding the same M
  schedules as ``CronTrigger`` jobs to its DjangoJobStore at start (``replace_existing``).

One process at a time on the same machine; for each:

1. start-up, cold: from spawning it to its ready line (taskhub: ``apscheduler is leader``,
   after it reconciles the store with the job table; stock: ``Scheduler started``, after
   its ``add_job`` calls), with an empty job store — the first start.
2. memory: VmRSS and VmHWM (``/proc/<pid>/status``) SETTLE s after start-up.
3. idle CPU: utime+stime (``/proc/<pid>/stat``) over an idle window (60 s; quick: 10 s),
   per minute.
4. one edit (taskhub): one of the M jobs becomes a one-off 2 s ahead (``Job.save()``):
   applied = save() returned -> ``apscheduler applied job changes``; late = handler start
   (``JobRun.started_at``) - new time; its CPU = the process's CPU seconds from the save to
   EDIT_WINDOW s after it, minus the idle rate over that time.
5. start-up, warm: the process started again with the M jobs already in the store.

Usage: ``python bench/aps_scale.py [--quick] [--keep-logs] [--jobs M]`` (M: 10,000 unless given).
"""

import datetime as dt
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import aps_common, common

DB, PEER_DB = "taskhub_apsbench_scale", "taskhub_apsbench_scale_peer"
SETTLE = 5.0
EDIT_AHEAD = 2.0
EDIT_WINDOW = 6.0
BATCH = 1000


def run(args) -> None:
    big = 500 if args.quick else args.jobs
    counts = [50, 500] if args.quick else common.idle_counts(big)
    idle_window = 10.0 if args.quick else 60.0
    start_timeout = 120.0 if args.quick else max(600.0, big / 100)
    hour = (dt.datetime.now(dt.UTC).hour + 12) % 24
    with aps_common.ApsBench("aps-scale", [DB, PEER_DB], keep_logs=args.keep_logs) as bench:
        common.setup_django(DB, PEER_DB)
        figures, setup, made = [], 0.0, 0
        for count in counts:  # each count starts cold (an empty store), for the growth of idle CPU with the jobs
            started = time.perf_counter()
            _create_jobs(made, count, hour)
            setup, made = setup + time.perf_counter() - started, count
            _empty_store()
            figures.append(_taskhub(bench, count, idle_window, start_timeout, edit=count == big))
        figures.append(_stock(bench, big, hour, idle_window, start_timeout))
        print(_report(counts, idle_window, figures, setup))


# -- jobs --------------------------------------------------------------------------------------
def _create_jobs(first: int, end: int, hour: int) -> None:
    from tasks_app.models import Job

    for begin in range(first, end, BATCH):
        Job.objects.bulk_create(
            [
                Job(
                    name=f"bench-scale-{i}",
                    handler="number_sum",
                    kwargs={"x": i, "y": 1},
                    engine="apscheduler",
                    schedule_type="cron",
                    cron_expression=f"{i % 60} {hour} * * *",
                )
                for i in range(begin, min(end, begin + BATCH))
            ]
        )


def _empty_store() -> None:
    from django_apscheduler.models import DjangoJob

    DjangoJob.objects.all().delete()


# -- each side ---------------------------------------------------------------------------------
def _taskhub(bench, jobs: int, idle_window: float, start_timeout: float, edit: bool) -> dict:
    figures = {"label": "taskhub runapscheduler", "jobs": jobs}
    proc = bench.runapscheduler(f"taskhub-{jobs}", DB)
    watch = aps_common.LogWatch(proc)
    figures["startup_cold"] = watch.wait_for(aps_common.LEADER_LINE, start_timeout) - proc.started
    _measure(bench, proc, idle_window, figures)
    if edit:
        figures.update(_edit(bench, proc, watch, figures["idle_rate"]))
        bench.stop(proc)
        proc = bench.runapscheduler(f"taskhub-{jobs}-warm", DB)
        figures["startup_warm"] = aps_common.wait_ready(proc, aps_common.LEADER_LINE, start_timeout)
    bench.stop(proc)
    return figures


def _stock(bench, jobs: int, hour: int, idle_window: float, start_timeout: float) -> dict:
    figures = {"label": "stock django-apscheduler", "jobs": jobs}
    args = ["--cron", str(jobs), "--cron-hour", str(hour)]
    stamps = bench.log_dir / "peer-stamps.txt"
    proc = bench.peer("stock-aps", PEER_DB, stamps, *args)
    figures["startup_cold"] = aps_common.wait_ready(proc, aps_common.PEER_READY_LINE, start_timeout)
    _measure(bench, proc, idle_window, figures)
    bench.stop(proc)
    proc = bench.peer("stock-aps-warm", PEER_DB, stamps, *args)
    figures["startup_warm"] = aps_common.wait_ready(proc, aps_common.PEER_READY_LINE, start_timeout)
    bench.stop(proc)
    return figures


def _measure(bench, proc, idle_window: float, figures: dict) -> None:
    """Memory SETTLE s after start-up, then CPU over the idle window."""
    _sleep(bench, SETTLE)
    figures.update(rss=common.rss_mb(proc.pid), hwm=common.peak_rss_mb(proc.pid))
    before, started = common.cpu_seconds(proc.pid), time.monotonic()
    _sleep(bench, idle_window)
    figures["idle_rate"] = (common.cpu_seconds(proc.pid) - before) / (time.monotonic() - started)


def _edit(bench, proc, watch, idle_rate: float) -> dict:
    from tasks_app.models import Job, JobRun

    job = Job.objects.get(name="bench-scale-0")
    target = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=EDIT_AHEAD)
    cpu_before, began = common.cpu_seconds(proc.pid), time.monotonic()
    job.schedule_type, job.run_at = "once", target
    job.save()
    saved_at = time.time()
    applied = watch.wait_for("apscheduler applied job changes", EDIT_AHEAD + 10) - saved_at

    def started():
        return JobRun.objects.filter(job=job, scheduled_for=target, started_at__isnull=False).first()

    run = common.wait_until(started, EDIT_AHEAD + 10, interval=0.05)
    if run is None:
        raise common.BenchError(f"the edited job did not run within 10 s of its new time; see {proc.log_path}")
    _sleep(bench, began + EDIT_WINDOW - time.monotonic())
    spent = common.cpu_seconds(proc.pid) - cpu_before - idle_rate * (time.monotonic() - began)
    return {"edit_applied": applied, "edit_late": (run.started_at - target).total_seconds(), "edit_cpu": spent}


def _sleep(bench, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        bench.check_alive()
        time.sleep(min(left, 0.5))


# -- report ------------------------------------------------------------------------------------
def _report(counts: list[int], idle_window: float, figures: list[dict], setup: float) -> str:
    rows = []
    for f in figures:
        rows.append(
            [
                f["label"],
                f["jobs"],
                f["startup_cold"],
                f.get("startup_warm", float("nan")),
                f["rss"],
                f["hwm"],
                f["idle_rate"] * 60,
                f.get("edit_applied", float("nan")) * 1000,
                f.get("edit_late", float("nan")) * 1000,
                f.get("edit_cpu", float("nan")),
            ]
        )
    *ours, stock = figures
    small_side, big_side, big = ours[0], ours[-1], counts[-1]
    idle = ", ".join(f"{f['idle_rate'] * 60:.3f} at {f['jobs']}" for f in ours)
    notes = [
        f"one edit at {big} jobs: late {big_side['edit_late'] * 1000:.0f} ms, "
        f"applied {big_side['edit_applied'] * 1000:.0f} ms "
        f"(goal: <= 500 ms); stock never applies an edit while running (see aps_edit_to_effect)",
        f"memory at {big} jobs, taskhub / stock: RSS {_x(big_side['rss'], stock['rss'])}, "
        f"peak {_x(big_side['hwm'], stock['hwm'])} (goal: <= 1.5x; <= 300 MB)",
        f"idle CPU s/min of taskhub: {idle} (goal: <= 0.05, flat); "
        f"{big} / {small_side['jobs']} jobs: {_x(big_side['idle_rate'], small_side['idle_rate'])}; "
        f"taskhub / stock at {big}: {_x(big_side['idle_rate'], stock['idle_rate'])}",
        f"start-up at {big} jobs, taskhub / stock: cold {_x(big_side['startup_cold'], stock['startup_cold'])}, "
        f"warm {_x(big_side['startup_warm'], stock['startup_warm'])} (goal: warm <= 10 s)",
        f"idle window {idle_window:g} s; edit CPU = CPU over {EDIT_WINDOW:g} s from the save (apply + the run) "
        "minus the idle rate",
        f"setup: Job.objects.bulk_create of {big} jobs (full_clean each, projected per engine) took {setup:.1f} s "
        "(goal: <= 60 s at 100,000)",
    ]
    headers = [
        "scheduler",
        "jobs",
        "startup_cold_s",
        "startup_warm_s",
        "rss_mb",
        "hwm_mb",
        "idle_cpu_s_per_min",
        "edit_applied_ms",
        "edit_late_ms",
        "edit_cpu_s",
    ]
    title = f"aps_scale: {' / '.join(map(str, counts))} apscheduler jobs, none due"
    return common.table(title, headers, rows, notes)


def _x(a: float, b: float) -> str:
    value = common.ratio(a, b)
    return "n/a (divisor 0)" if value != value else f"{value:.2f}x"


if __name__ == "__main__":
    common.main(
        run,
        "aps_scale.py",
        "runapscheduler at scale against stock django-apscheduler with DjangoJobStore.",
        options=common.jobs_option(),
    )
