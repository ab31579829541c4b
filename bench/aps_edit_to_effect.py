"""Edit to effect on the APScheduler engine: a one-off moved to fire 2 s ahead — how late does it run?

Both schedulers run at once, each on its own database (neither is busy, so they barely compete):

- taskhub: E ``once`` jobs (``number_sum``, engine ``apscheduler``) an hour ahead, served
  by ``manage.py runapscheduler``. An edit sets one job's ``run_at`` to now + 2 s with
  ``Job.save()``; its effect is that slot's ``JobRun``: lateness = ``started_at`` - new
  ``run_at``. "applied" is from the save's return to the record of runapscheduler's
  ``apscheduler applied job changes`` line.
- stock: ``bench/aps_peer.py`` (django-apscheduler as documented) with E ``date`` jobs an
  hour ahead. Its admin cannot edit a job (django-apscheduler #127), so an edit is what a DB
  edit from another process can do: this process moves the stored row's ``next_run_time``
  and the pickled state's ``next_run_time`` and ``run_date`` to the same instant. Its effect
  is the start time its job function records; it is waited for up to W s after the new time
  (15 s; quick: 5 s), and reported as "never" when it does not come.

Edits are spaced by a seeded random pause of 0-2 s. Usage:
``python bench/aps_edit_to_effect.py [--quick] [--keep-logs]``.
"""

import datetime as dt
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import aps_common, aps_peer, common

DB, PEER_DB = "taskhub_apsbench_edit", "taskhub_apsbench_edit_peer"
AHEAD = 2.0
START_TIMEOUT = 120.0


def run(args) -> None:
    edits, wait = (3, 5.0) if args.quick else (10, 15.0)
    with aps_common.ApsBench("aps-edit", [DB, PEER_DB], keep_logs=args.keep_logs) as bench:
        common.setup_django(DB, PEER_DB)
        jobs = _taskhub_jobs(edits)
        stamps = bench.log_dir / "peer-stamps.txt"
        taskhub = bench.runapscheduler("taskhub-runapscheduler", DB)
        stock = bench.peer("stock-aps", PEER_DB, stamps, "--once", str(edits))
        aps_common.wait_ready(taskhub, aps_common.LEADER_LINE, START_TIMEOUT)
        aps_common.wait_ready(stock, aps_common.PEER_READY_LINE, START_TIMEOUT)
        watch = aps_common.LogWatch(taskhub)
        time.sleep(1.0)
        pause = random.Random(42)
        figures = {"late": [], "applied": [], "save": [], "stock_late": []}
        for index in range(edits):
            time.sleep(pause.uniform(0, 2))
            target = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=AHEAD)
            moves = [lambda: _move_job(jobs[index], target, figures), lambda: _move_stored(index, target)]
            for move in moves if index % 2 == 0 else reversed(moves):
                move()
            _wait_for_effect(bench, watch, jobs[index], f"once-{index}", stamps, target, wait, figures)
        print(_report(edits, wait, figures))


def _taskhub_jobs(count: int):
    from tasks_app.models import Job

    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    return [
        Job.objects.create(
            name=f"bench-edit-{i}",
            handler="number_sum",
            kwargs={"x": i, "y": 1},
            engine="apscheduler",
            schedule_type="once",
            run_at=later,
        )
        for i in range(count)
    ]


def _move_job(job, target: dt.datetime, figures: dict) -> None:
    started = time.perf_counter()
    job.run_at = target
    job.save()
    figures["save"].append(time.perf_counter() - started)
    job.saved_at = time.time()


def _move_stored(index: int, target: dt.datetime) -> None:
    aps_peer.move_stored_job(f"once-{index}", target)


def _wait_for_effect(bench, watch, job, peer_tag, stamps, target, wait, figures) -> None:
    from tasks_app.models import JobRun

    found = {}
    deadline = time.monotonic() + (target.timestamp() - time.time()) + wait
    while time.monotonic() < deadline and len(found) < 3:
        if "applied" not in found:
            applied = watch.poll("apscheduler applied job changes")
            if applied is not None:
                found["applied"] = applied - job.saved_at
        if "late" not in found:
            run = JobRun.objects.filter(job=job, scheduled_for=target, started_at__isnull=False).first()
            if run is not None:
                found["late"] = (run.started_at - target).total_seconds()
        if "stock_late" not in found and aps_peer.read_stamps(stamps).get(peer_tag):
            found["stock_late"] = aps_peer.read_stamps(stamps)[peer_tag][0] - target.timestamp()
        bench.check_alive()
        time.sleep(0.02)
    if "late" not in found:
        raise common.BenchError(f"taskhub's run of {job.name} did not start within {wait:g} s of its new time")
    for key, value in found.items():
        figures[key].append(value)


def _report(edits: int, wait: float, figures: dict) -> str:
    late, stock_late = figures["late"], figures["stock_late"]
    never = f"never (within {wait:g} s)"
    rows = [
        [
            "taskhub runapscheduler",
            edits,
            len(late),
            _ms(common.percentile(late, 50)),
            _ms(common.percentile(late, 95)),
            _ms(min(late)),
            _ms(max(late)),
            _ms(common.percentile(figures["applied"], 50)),
            _ms(common.percentile(figures["save"], 50)),
        ],
        ["stock django-apscheduler", edits, len(stock_late)]
        + (
            [
                _ms(common.percentile(stock_late, 50)),
                _ms(common.percentile(stock_late, 95)),
                _ms(min(stock_late)),
                _ms(max(stock_late)),
            ]
            if stock_late
            else ["never"] * 4
        )
        + ["n/a", "n/a"],
    ]
    stock_p50 = common.percentile(stock_late, 50) if stock_late else None
    notes = [
        f"taskhub late p50 {_ms(common.percentile(late, 50)):.0f} ms; stock: "
        + (
            f"{len(stock_late)} of {edits} took effect, p50 {_ms(stock_p50):.0f} ms"
            if stock_late
            else f"{never} for all {edits} edits; it wakes only at the time it chose before the edit (DAPS #196)"
        ),
        f"each edit moves a one-off to fire {AHEAD:g} s ahead; late = handler start - new time",
        "applied = save() returned -> runapscheduler logged 'applied job changes'; save = Job.save() call",
        "stock edit = the stored row's next_run_time + pickled next_run_time/run_date (its admin cannot edit)",
        "per edit (taskhub ms): " + " ".join(f"{_ms(v):.0f}" for v in late),
    ]
    headers = [
        "scheduler",
        "edits",
        "took_effect",
        "late_p50_ms",
        "late_p95_ms",
        "late_min_ms",
        "late_max_ms",
        "applied_p50_ms",
        "save_p50_ms",
    ]
    return common.table(f"aps_edit_to_effect: {edits} edits, both schedulers side by side", headers, rows, notes)


def _ms(seconds: float) -> float:
    return seconds * 1000


if __name__ == "__main__":
    common.main(
        run, "aps_edit_to_effect.py", "Edit-to-effect latency of runapscheduler against stock django-apscheduler."
    )
