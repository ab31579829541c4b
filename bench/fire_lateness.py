"""Fire lateness: J jobs every second for D seconds — from tick to handler start.

Each side runs alone on the machine, one after the other in the same run, with its own
database, Redis DB, beat and a worker as deployed (prefork, concurrency 2, prefetch 1):

- taskhub: J ``interval`` jobs (1 s, ``bench_stamp``, engine ``celery``). The tick is the
  run's ``scheduled_for`` (epoch-anchored whole seconds); the start is the time the handler
  returned as its first act (its result, ``bench/bench_handlers.py``).
- stock: J ``PeriodicTask`` rows on one ``IntervalSchedule`` (every 1 s) running
  ``bench.peer.stamp``, which records ``time.time()`` when it starts. Celery's interval
  schedule has no fixed ticks: each fire is due ``every`` after the previous one was sent.
  So the ticks are derived from the schedule as written: every task is created with
  ``last_run_at = A - 1 s`` (A a whole second after the processes are up), which makes its
  first fire due at A; its n-th fire (0-based, in start order) has the tick ``A + n s``.
  That lateness includes the drift a re-anchored interval accumulates, which is what a
  user of "every second" sees; the "gap - 1 s" columns show the per-fire part for both sides.

Only ticks in a window of D seconds count, after two warm-up ticks. The ``dispatch``
columns split off the scheduler's own part: tick to the beat sending the message (taskhub's
beat runs with ``--loglevel DEBUG`` for its "fired" lines; the stock beat logs "Sending due
task" at INFO); the rest of the lateness is the worker's queue. Usage:
``python bench/fire_lateness.py [--quick]``.
"""

import datetime as dt
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

DB, PEER_DB = "taskhub_bench_fire", "taskhub_bench_fire_peer"
LEAD = 10  # seconds from creating the stock rows to their first tick A: time for two processes to start
WARMUP = 2  # ticks left out at the start
SETTLE = 5.0  # seconds after the window for late fires and result writes


def run(args) -> None:
    jobs, seconds = (5, 5) if args.quick else (20, 30)
    with common.Bench("fire", [DB, PEER_DB], keep_logs=args.keep_logs) as bench:
        common.setup_django(DB, PEER_DB)
        taskhub = _taskhub_side(bench, jobs, seconds)
        stock = _stock_side(bench, jobs, seconds)
        print(_report(jobs, seconds, taskhub, stock))


def _taskhub_side(bench, jobs: int, seconds: int) -> dict:
    _taskhub_jobs(jobs)
    worker = bench.worker("taskhub-worker", DB, common.REDIS_TASKHUB)
    beat = bench.beat("taskhub-beat", DB, common.REDIS_TASKHUB, "--loglevel", "DEBUG")
    bench.wait_for_line(worker, "worker ready", 60)
    bench.wait_for_line(beat, "beat loaded jobs", 60)
    first_tick = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=2)
    window = _window(first_tick, seconds)
    _wait_past(bench, window)
    fired = defaultdict(dict)
    for record in common.log_records(beat, '"fired"'):
        fired[record["job"]][dt.datetime.fromisoformat(record["scheduled_for"]).timestamp()] = common.record_time(
            record
        )
    starts = _taskhub_starts(window)
    dispatch = {
        name: [(tick, fired[name].get(tick, float("nan"))) for tick, _ in fires] for name, fires in starts.items()
    }
    bench.stop(beat), bench.stop(worker)
    return {"starts": starts, "dispatch": dispatch, "window": window}


def _stock_side(bench, jobs: int, seconds: int) -> dict:
    first_tick = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=LEAD)
    _peer_tasks(jobs, first_tick)
    worker = bench.worker("peer-worker", PEER_DB, common.REDIS_PEER, "-I", "bench.peer_tasks")
    beat = bench.beat("stock-beat", PEER_DB, common.REDIS_PEER, "-S", common.STOCK_SCHEDULER)
    bench.wait_for_line(worker, "worker ready", 60)
    bench.wait_for_line(beat, "beat: Starting", 60)
    if dt.datetime.now(dt.UTC) > first_tick - dt.timedelta(seconds=1):
        raise common.BenchError(f"the stock side took more than {LEAD - 1} s to start; its first tick has passed")
    window = _window(first_tick, seconds)
    _wait_past(bench, window)
    sent = defaultdict(list)
    for record in common.log_records(beat, "Sending due task"):
        sent[record["message"].split()[4]].append(
            common.record_time(record)
        )  # "Scheduler: Sending due task <name> (<task>)"
    starts = _peer_starts(first_tick, window)
    dispatch = {tag: _derive(first_tick, times, window) for tag, times in sent.items()}
    bench.stop(beat), bench.stop(worker)
    return {"starts": starts, "dispatch": dispatch, "window": window}


def _window(first_tick: dt.datetime, seconds: int) -> tuple[dt.datetime, dt.datetime]:
    begin = first_tick + dt.timedelta(seconds=WARMUP)
    return begin, begin + dt.timedelta(seconds=seconds)


def _wait_past(bench, window) -> None:
    deadline = time.monotonic() + (window[1] - dt.datetime.now(dt.UTC)).total_seconds() + SETTLE
    while time.monotonic() < deadline:
        bench.check_alive()
        time.sleep(0.5)


def _derive(first_tick: dt.datetime, times: list[float], window) -> list[tuple[float, float]]:
    """(A + n, time) for the n-th of ``times`` (in order), keeping ticks inside the window."""
    fires = [(first_tick.timestamp() + n, t) for n, t in enumerate(sorted(times))]
    return [(tick, t) for tick, t in fires if window[0].timestamp() <= tick < window[1].timestamp()]


def _taskhub_jobs(count: int) -> None:
    from tasks_app.models import Job

    for i in range(count):
        Job.objects.create(
            name=f"bench-fire-{i}",
            handler="bench_stamp",
            kwargs={"x": i, "y": 1},
            engine="celery",
            schedule_type="interval",
            interval_seconds=1,
        )


def _peer_tasks(count: int, first_tick: dt.datetime) -> None:
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    with common.peer():
        every_second = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS)
        for i in range(count):
            PeriodicTask.objects.create(
                name=f"bench-fire-{i}",
                task="bench.peer.stamp",
                interval=every_second,
                kwargs=f'{{"tag": "bench-fire-{i}"}}',
                last_run_at=first_tick - dt.timedelta(seconds=1),
            )


def _taskhub_starts(window) -> dict[str, list[tuple[float, float]]]:
    """(tick, start) per job, for ticks in the window."""
    from tasks_app.models import JobRun

    starts = defaultdict(list)
    runs = (
        JobRun.objects.filter(scheduled_for__gte=window[0], scheduled_for__lt=window[1], status="succeeded")
        .values_list("job__name", "scheduled_for", "result")
        .order_by("scheduled_for")
    )
    for name, tick, started in runs:
        if isinstance(started, float):
            starts[name].append((tick.timestamp(), started))
    return starts


def _peer_starts(first_tick: dt.datetime, window) -> dict[str, list[tuple[float, float]]]:
    """(derived tick A + n, start) per task, for derived ticks in the window."""
    by_task = defaultdict(list)
    for stamp in common.peer_stamps():
        by_task[stamp["tag"]].append(stamp["started"])
    starts = {}
    for tag, started in by_task.items():
        if any(s < first_tick.timestamp() + n - 0.5 for n, s in enumerate(sorted(started))):
            raise common.BenchError(f"{tag} started before its derived tick: the stock beat did not honour last_run_at")
        starts[tag] = _derive(first_tick, started, window)
    return starts


def _report(jobs: int, seconds: int, taskhub: dict, stock: dict) -> str:
    rows, p50 = [], {}
    for label, side in [("taskhub beat + run_job", taskhub), ("django-celery-beat + plain task", stock)]:
        starts, begin, end = side["starts"], side["window"][0].timestamp(), side["window"][1].timestamp()
        late = _lateness(starts)
        dispatch = _lateness(side["dispatch"])
        gaps = [(b[1] - a[1] - 1) * 1000 for fires in starts.values() for a, b in zip(fires, fires[1:])]
        in_window = sum(1 for fires in starts.values() for _, s in fires if begin <= s < end)
        p50[label] = common.percentile(late, 50)
        rows.append(
            [
                label,
                jobs * seconds,
                len(late),
                in_window,
                common.percentile(late, 50),
                common.percentile(late, 95),
                common.percentile(late, 99),
                max(late, default=float("nan")),
                common.percentile(dispatch, 50),
                common.percentile(dispatch, 95),
                common.percentile(dispatch, 99),
                common.percentile(gaps, 50),
                common.percentile(gaps, 95),
            ]
        )
    taskhub_p50, stock_p50 = p50.values()
    notes = [
        f"stock / taskhub lateness p50: {common.ratio(stock_p50, taskhub_p50):.2f}x",
        "late: tick to handler start; dispatch: tick to the beat sending it (the rest is the worker's queue)",
        "ticks: taskhub = scheduled_for; stock = A + n s (A: the first due time, set via last_run_at; "
        "n: the fire's index)",
        "started_in_window: fires that started inside the window's wall time (expected = jobs x seconds)",
        "gap-1s: time between consecutive starts of one job minus the 1 s interval (per-fire drift and jitter)",
        common.machine_note(),
    ]
    headers = [
        "scheduler",
        "expected",
        "fires",
        "started_in_window",
        "late_p50_ms",
        "late_p95_ms",
        "late_p99_ms",
        "late_max_ms",
        "dispatch_p50_ms",
        "dispatch_p95_ms",
        "dispatch_p99_ms",
        "gap-1s_p50_ms",
        "gap-1s_p95_ms",
    ]
    return common.table(f"fire_lateness: {jobs} jobs every 1 s for {seconds} s, each side alone", headers, rows, notes)


def _lateness(fires_by_job: dict) -> list[float]:
    return common.lateness_ms(fire for fires in fires_by_job.values() for fire in fires)


if __name__ == "__main__":
    common.main(run, "fire_lateness.py", "Fire lateness of taskhub's beat against django-celery-beat, 1 s jobs.")
