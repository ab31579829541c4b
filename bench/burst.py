"""The midnight burst: N one-off jobs due at the same instant — how long until the last one starts?

Four contenders, each alone on the machine, one after the other in the same run (a burst is
CPU-bound: side by side they would only measure each other). For each, N jobs (1,000; quick: 50)
are stored with the same due time T, the processes are started, and T must still be at least
MARGIN s away once every one of them is ready (else the run fails: the lead was too short):

- taskhub runapscheduler: N ``once`` jobs (``bench_stamp``, engine ``apscheduler``) with
  ``run_at`` = T, served by ``manage.py runapscheduler`` (ready: ``apscheduler is leader``).
  Start = the time the handler itself returns as its first act (``bench/bench_handlers.py``; the
  run's ``started_at`` is its claim, one instant for a whole batch); recorded as dropped:
  ``skipped`` runs of that slot.
- stock django-apscheduler: ``bench/aps_peer.py --once N --at T`` (``date`` triggers at T,
  stock job defaults: 1 s misfire grace, coalesce); start = the time its job function records;
  recorded as dropped: DjangoJobExecution "Missed!" rows.
- taskhub beat + worker: N ``once`` jobs (engine ``celery``), ``celery -A taskhub beat`` (at
  ``--loglevel DEBUG``, for its ``sent due slots`` line) and one worker as deployed (prefork,
  concurrency 2, prefetch 1, acks_late). Start = the handler's own time, as above. ``sent_s`` = T to the
  beat's record that it sent the tick's messages.
- django-celery-beat + plain task: N ``PeriodicTask`` rows on one ``ClockedSchedule`` at T
  (``one_off``) running ``bench.peer.stamp`` (django-celery-results stores its start time), the
  stock ``DatabaseScheduler`` and one worker as deployed. ``sent_s`` = T to its last
  "Sending due task" record.

A contender is done when every job started or was recorded as dropped, when nothing moved for
STALL s, or CAP s after T. ``dropped`` = N - started (a job that never started, whether or not its
scheduler recorded it). first / p50 / last: T to the first, median and last start among those
that started. Usage: ``python bench/burst.py [--quick] [--keep-logs]``.
"""

import datetime as dt
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import aps_common, aps_peer, common

DB, PEER_DB = "taskhub_bench_burst", "taskhub_bench_burst_peer"
MARGIN = 3.0  # seconds from the last process being ready to T, at least
STALL = 5.0  # seconds without a new start (after T) that end a contender's wait
START_TIMEOUT = 120.0
LABELS = {
    "aps": "taskhub runapscheduler",
    "aps_stock": "stock django-apscheduler",
    "celery": "taskhub beat + worker c2",
    "celery_stock": "django-celery-beat + plain task c2",
}


def run(args) -> None:
    jobs, lead, cap = (50, 20.0, 30.0) if args.quick else (1000, 30.0, 90.0)
    with common.Bench("burst", [DB, PEER_DB], keep_logs=args.keep_logs) as bench:
        common.setup_django(DB, PEER_DB)
        figures = {}
        for key, contender in [
            ("aps_stock", _aps_stock),
            ("aps", _aps),
            ("celery", _celery),
            ("celery_stock", _celery_stock),
        ]:
            figures[key] = contender(bench, jobs, time.time() + lead, cap)
        print(_report(jobs, figures))


# -- the contenders ------------------------------------------------------------------------------
def _once_jobs(engine: str, jobs: int, tick: float):
    """``jobs`` one-off ``bench_stamp`` jobs of ``engine`` due at ``tick``: (their run_at, the jobs)."""
    from tasks_app.models import Job

    run_at = dt.datetime.fromtimestamp(tick, dt.UTC)
    made = Job.objects.bulk_create(
        [
            Job(
                name=f"burst-{engine}-{i}",
                handler="bench_stamp",
                kwargs={"x": i, "y": 1},
                engine=engine,
                schedule_type="once",
                run_at=run_at,
            )
            for i in range(jobs)
        ]
    )
    return run_at, made


def _aps(bench, jobs: int, tick: float, cap: float) -> dict:
    from tasks_app.models import JobRun

    run_at, made = _once_jobs("apscheduler", jobs, tick)
    proc = bench.start("taskhub-runapscheduler", ["manage.py", "runapscheduler"], _env(DB, common.REDIS_TASKHUB))
    _ready(tick, (proc, aps_common.LEADER_LINE))
    runs = JobRun.objects.filter(job__in=made, scheduled_for=run_at)

    def look():
        return common.handler_stamps(runs), runs.filter(status="skipped").count()

    return _wait_out(bench, [proc], tick, cap, jobs, look)


def _aps_stock(bench, jobs: int, tick: float, cap: float) -> dict:
    from django_apscheduler.models import DjangoJobExecution

    stamps = bench.log_dir / "peer-stamps.txt"
    env = _env(PEER_DB, common.REDIS_PEER, BENCH_APS_STAMPS=str(stamps))
    proc = bench.start("stock-aps", ["bench/aps_peer.py", "--once", str(jobs), "--at", f"{tick:.6f}"], env)
    _ready(tick, (proc, aps_common.PEER_READY_LINE))

    def look():
        started = [t for times in aps_peer.read_stamps(stamps).values() for t in times]
        with common.peer():
            missed = DjangoJobExecution.objects.filter(status=DjangoJobExecution.MISSED).count()
        return started, missed

    return _wait_out(bench, [proc], tick, cap, jobs, look)


def _celery(bench, jobs: int, tick: float, cap: float) -> dict:
    from tasks_app.models import JobRun

    run_at, made = _once_jobs("celery", jobs, tick)
    worker = bench.worker("taskhub-worker", DB, common.REDIS_TASKHUB)
    beat = bench.beat("taskhub-beat", DB, common.REDIS_TASKHUB, "--loglevel", "DEBUG")
    _ready(tick, (worker, "worker ready"), (beat, "beat loaded jobs"))
    runs = JobRun.objects.filter(job__in=made, scheduled_for=run_at)

    def look():
        return common.handler_stamps(runs), runs.filter(status="skipped").count()

    figures = _wait_out(bench, [beat, worker], tick, cap, jobs, look)
    sends = [
        r for r in common.log_records(beat, '"sent due slots"') if r.get("count") and common.record_time(r) >= tick
    ]
    figures["sent"] = max((common.record_time(r) for r in sends), default=math.nan) - tick
    figures["send_span"] = sum(r["seconds"] for r in sends) if sends else math.nan
    return figures


def _celery_stock(bench, jobs: int, tick: float, cap: float) -> dict:
    from django_celery_beat.models import ClockedSchedule, PeriodicTask

    with common.peer():
        clocked = ClockedSchedule.objects.create(clocked_time=dt.datetime.fromtimestamp(tick, dt.UTC))
        PeriodicTask.objects.bulk_create(
            [
                PeriodicTask(
                    name=f"burst-{i}",
                    task="bench.peer.stamp",
                    clocked=clocked,
                    one_off=True,
                    kwargs=json.dumps({"tag": f"burst-{i}"}),
                )
                for i in range(jobs)
            ]
        )
    worker = bench.worker("peer-worker", PEER_DB, common.REDIS_PEER, "-I", "bench.peer_tasks")
    beat = bench.beat("stock-beat", PEER_DB, common.REDIS_PEER, "-S", common.STOCK_SCHEDULER)
    _ready(tick, (worker, "worker ready"), (beat, "beat: Starting"))

    def look():
        return [stamp["started"] for stamp in common.peer_stamps()], 0

    figures = _wait_out(bench, [beat, worker], tick, cap, jobs, look)
    sends = [common.record_time(r) for r in common.log_records(beat, "Sending due task")]
    figures["sent"] = max(sends, default=math.nan) - tick
    return figures


# -- waiting and reading ---------------------------------------------------------------------------
def _env(database: str, broker: str, **overrides) -> dict:
    return common.process_env(database, broker, **overrides)


def _ready(tick: float, *waits) -> None:
    """Wait for each ``(proc, line)``; fail when T is then less than MARGIN s away."""
    for proc, line in waits:
        aps_common.LogWatch(proc).wait_for(line, START_TIMEOUT)
    if time.time() > tick - MARGIN:
        late = ", ".join(proc.label for proc, _ in waits)
        raise common.BenchError(f"{late} took too long to start: T is less than {MARGIN:g} s away (raise the lead)")


def _wait_out(bench, procs, tick: float, cap: float, jobs: int, look) -> dict:
    """Poll ``look()`` -> (start times, recorded drops) until all are accounted for, a stall or the cap."""
    started, recorded, moved = [], 0, tick
    while time.time() < tick + cap:
        bench.check_alive()
        now = time.time()
        if now > tick:
            seen, recorded = look()
            if len(seen) != len(started):
                started, moved = seen, now
            if len(started) + recorded >= jobs or now - moved > STALL:
                break
        time.sleep(0.5)
    for proc in procs:
        bench.stop(proc)
    late = sorted(s - tick for s in started)
    return {"late": late, "recorded_dropped": recorded, "sent": math.nan, "send_span": math.nan}


# -- report ------------------------------------------------------------------------------------------
def _report(jobs: int, figures: dict) -> str:
    rows, last = [], {}
    for key, label in LABELS.items():
        side = figures[key]
        late = side["late"]
        last[key] = max(late, default=math.nan)
        rows.append(
            [
                label,
                jobs,
                len(late),
                jobs - len(late),
                min(late, default=math.nan),
                common.percentile(late, 50),
                last[key],
                side["sent"],
                side["send_span"],
            ]
        )
    notes = [
        f"taskhub / stock last start: apscheduler {common.ratio(last['aps'], last['aps_stock']):.2f}x, "
        f"celery {common.ratio(last['celery'], last['celery_stock']):.2f}x (goal: <= 0.5x, and last <= 2 s)",
        "recorded as dropped: "
        + ", ".join(f"{LABELS[k]} {figures[k]['recorded_dropped']}" for k in ("aps", "aps_stock", "celery")),
        "first/p50/last: T to the handler's start, over the jobs that started; dropped = jobs - started",
        "sent_s: T to the beat's last send (taskhub: its 'sent due slots' record; stock: 'Sending due task'); "
        "send_span_s: taskhub beat's collect-and-send time for the tick",
        "each contender ran alone, one after the other; workers: prefork, concurrency 2, prefetch 1, acks_late",
        common.machine_note(),
    ]
    headers = ["contender", "jobs", "started", "dropped", "first_s", "p50_s", "last_s", "sent_s", "send_span_s"]
    return common.table(f"burst: {jobs} one-off jobs due at the same instant", headers, rows, notes)


if __name__ == "__main__":
    common.main(run, "burst.py", "The midnight burst: N one-off jobs due at once, taskhub against the stock peers.")
