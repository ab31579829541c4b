"""Fire lateness on the APScheduler engine: J jobs every second for D s — from tick to job start.

One scheduler after the other on the same machine (each alone, so neither slows the other):

- stock: ``bench/aps_peer.py`` (django-apscheduler as documented, DjangoJobStore, stock
  defaults) with J ``interval`` jobs every second whose function records ``time.time()`` at
  its start. APScheduler 3 anchors an interval trigger at the moment the job is added: its
  ticks are ``start_date + k s``, with ``start_date`` = add time + 1 s stored in the job's
  pickled trigger. Each start is assigned the latest tick at or before it
  (``start_date + floor(start - start_date)``), which is exact while a start is less than
  1 s late — and a later one does not start at all (the 1 s misfire grace drops it, counted
  in "dropped" from DjangoJobExecution's "Missed!"/"Max instances!" rows).
- taskhub: J ``interval`` jobs (1 s, ``bench_stamp``, engine ``apscheduler``) served by
  ``manage.py runapscheduler``. The tick is the run's ``scheduled_for`` (whole seconds since
  the epoch), the start is the time the handler returned as its first act (its result; the
  run's ``started_at`` is the claim, one instant for the tick's whole batch); "dropped" counts
  ``skipped`` runs.

Each side's window starts WARMUP s after its scheduler is ready (taskhub: its
``apscheduler is leader`` line; stock: ``Scheduler started``) and lasts D s; only ticks in
it count. cpu_pct is the scheduler process's utime+stime over the window / its length.
Usage: ``python bench/aps_fire_lateness.py [--quick] [--keep-logs]``.
"""

import datetime as dt
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import aps_common, aps_peer, common

DB, PEER_DB = "taskhub_apsbench_fire", "taskhub_apsbench_fire_peer"
WARMUP = 2.0  # seconds after ready before the window opens
SETTLE = 2.0  # seconds after the window for its last runs to start and be recorded
START_TIMEOUT = 120.0


def run(args) -> None:
    jobs, seconds = (5, 5) if args.quick else (20, 30)
    with aps_common.ApsBench("aps-fire", [DB, PEER_DB], keep_logs=args.keep_logs) as bench:
        common.setup_django(DB, PEER_DB)
        stock = _stock(bench, jobs, seconds)
        taskhub = _taskhub(bench, jobs, seconds)
        print(_report(jobs, seconds, taskhub, stock))


# -- each side -------------------------------------------------------------------------------
def _stock(bench, jobs: int, seconds: int) -> dict:
    stamps = bench.log_dir / "peer-stamps.txt"
    proc = bench.peer("stock-aps", PEER_DB, stamps, "--interval", str(jobs))
    ready = aps_common.LogWatch(proc).wait_for(aps_common.PEER_READY_LINE, START_TIMEOUT)
    window = (ready + WARMUP, ready + WARMUP + seconds)
    cpu = _run_window(bench, proc, window)
    starts = []
    for tag, times in aps_peer.read_stamps(stamps).items():
        anchor = aps_peer.stored_state(tag)["trigger"].start_date.timestamp()
        for started in times:
            tick = anchor + math.floor(started - anchor)
            if window[0] <= tick < window[1]:
                starts.append((tick, started))
    since = dt.datetime.fromtimestamp(window[0], dt.UTC)
    until = dt.datetime.fromtimestamp(window[1], dt.UTC)
    return {"starts": starts, "dropped": _stock_dropped(since, until), "cpu": cpu}


def _stock_dropped(since, until) -> int:
    from django_apscheduler.models import DjangoJobExecution

    dropped = [DjangoJobExecution.MISSED, DjangoJobExecution.MAX_INSTANCES]
    with common.peer():
        return DjangoJobExecution.objects.filter(status__in=dropped, run_time__gte=since, run_time__lt=until).count()


def _taskhub(bench, jobs: int, seconds: int) -> dict:
    from tasks_app.models import Job, JobRun

    Job.objects.bulk_create(
        [
            Job(
                name=f"bench-fire-{i}",
                handler="bench_stamp",
                kwargs={"x": i, "y": 1},
                engine="apscheduler",
                schedule_type="interval",
                interval_seconds=1,
            )
            for i in range(jobs)
        ]
    )
    proc = bench.runapscheduler("taskhub-runapscheduler", DB)
    ready = aps_common.LogWatch(proc).wait_for(aps_common.LEADER_LINE, START_TIMEOUT)
    first = math.ceil(ready + WARMUP)  # a whole second: taskhub's ticks are
    window = (first, first + seconds)
    cpu = _run_window(bench, proc, window)
    since = dt.datetime.fromtimestamp(window[0], dt.UTC)
    until = dt.datetime.fromtimestamp(window[1], dt.UTC)
    runs = JobRun.objects.filter(scheduled_for__gte=since, scheduled_for__lt=until)
    starts = [
        (tick.timestamp(), started)
        for tick, started in runs.filter(status="succeeded").values_list("scheduled_for", "result")
        if isinstance(started, float)
    ]
    return {"starts": starts, "dropped": runs.filter(status="skipped").count(), "cpu": cpu}


def _run_window(bench, proc, window) -> float:
    """Let ``proc`` run through the window (and SETTLE after); its CPU share over the window."""
    _sleep_until(bench, window[0])
    cpu_before = common.cpu_seconds(proc.pid)
    _sleep_until(bench, window[1])
    cpu = (common.cpu_seconds(proc.pid) - cpu_before) / (window[1] - window[0])
    _sleep_until(bench, window[1] + SETTLE)
    bench.stop(proc)
    return cpu


def _sleep_until(bench, when: float) -> None:
    while (left := when - time.time()) > 0:
        bench.check_alive()
        time.sleep(min(left, 0.25))


# -- report ------------------------------------------------------------------------------------
def _report(jobs: int, seconds: int, taskhub: dict, stock: dict) -> str:
    rows, p = [], {}
    for label, side in [("taskhub runapscheduler", taskhub), ("stock django-apscheduler", stock)]:
        late = common.lateness_ms(side["starts"])
        p[label] = [common.percentile(late, q) for q in (50, 95, 99)]
        rows.append(
            [
                label,
                jobs * seconds,
                len(late),
                side["dropped"],
                *p[label],
                max(late, default=math.nan),
                side["cpu"] * 100,
            ]
        )
    (t50, t95, t99), (s50, s95, s99) = p.values()
    notes = [
        f"stock / taskhub lateness: p50 {common.ratio(s50, t50):.2f}x, p95 {common.ratio(s95, t95):.2f}x, "
        f"p99 {common.ratio(s99, t99):.2f}x",
        "tick: taskhub = JobRun.scheduled_for; stock = start_date + floor(start - start_date) s (the interval "
        "trigger's anchor, from its pickled state)",
        "start: time.time() at the start of the handler (taskhub: bench_stamp's result) or job function (stock)",
        "dropped: taskhub skipped runs; stock DjangoJobExecution 'Missed!'/'Max instances!' (1 s misfire grace)",
        "the two schedulers ran one after the other, not side by side",
    ]
    headers = [
        "scheduler",
        "expected",
        "fires",
        "dropped",
        "late_p50_ms",
        "late_p95_ms",
        "late_p99_ms",
        "late_max_ms",
        "cpu_pct",
    ]
    return common.table(f"aps_fire_lateness: {jobs} jobs every 1 s for {seconds} s", headers, rows, notes)


if __name__ == "__main__":
    common.main(
        run, "aps_fire_lateness.py", "Fire lateness of runapscheduler against stock django-apscheduler, 1 s jobs."
    )
