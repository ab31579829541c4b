"""Edit to effect: a one-off moved to fire 2 s ahead — how late does its handler start?

Both sides run at once, each with its own database, Redis DB, beat and worker:

- taskhub: a ``once`` job (``number_sum``, engine ``celery``) whose ``run_at`` is an hour
  ahead is edited with ``Job.save()`` to run 2 s from now; its handler start is the
  ``JobRun.started_at`` of that slot.
- stock: django-celery-beat's ``DatabaseScheduler`` with a ``PeriodicTask`` on a
  ``ClockedSchedule`` (``one_off``) an hour ahead, edited with ``save()`` to a new clocked
  time 2 s from now; its task (``bench.peer.stamp``) records ``time.time()`` when it starts.

Each edit moves a different job/task of each side to the same instant. Edits are spaced
by a seeded random pause of 0-5 s so they land at every phase of the stock beat's 5 s poll.
Lateness = handler start - the new time. Usage: ``python bench/edit_to_effect.py [--quick]``.
"""

import datetime as dt
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

DB, PEER_DB = "taskhub_bench_edit", "taskhub_bench_edit_peer"
AHEAD = 2.0
WAIT_FOR_EFFECT = 20.0


def run(args) -> None:
    edits = 3 if args.quick else 10
    with common.Bench("edit", [DB, PEER_DB], keep_logs=args.keep_logs) as bench:
        common.setup_django(DB, PEER_DB)
        jobs, tasks = _taskhub_jobs(edits), _peer_tasks(edits)
        common.start_sides(bench, DB, PEER_DB)
        time.sleep(1.0)  # past the stock beat's first read of its schedule
        pause = random.Random(42)
        measured = {"taskhub": [], "stock": []}
        saves = {"taskhub": [], "stock": []}
        for index in range(edits):
            time.sleep(pause.uniform(0, 5))
            target = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=AHEAD)
            sides = [("taskhub", _move_job, jobs[index]), ("stock", _move_task, tasks[index])]
            for side, move, item in sides if index % 2 == 0 else reversed(sides):
                started = time.perf_counter()
                move(item, target)
                saves[side].append(time.perf_counter() - started)
            late = _wait_for_effect(bench, jobs[index], tasks[index], target)
            for side in measured:
                measured[side].append(late[side])
        print(_report(edits, measured, saves))


def _taskhub_jobs(count: int):
    from django.utils import timezone

    from tasks_app.models import Job

    later = timezone.now() + dt.timedelta(hours=1)
    return [
        Job.objects.create(
            name=f"bench-edit-{i}",
            handler="number_sum",
            kwargs={"x": i, "y": 1},
            engine="celery",
            schedule_type="once",
            run_at=later,
        )
        for i in range(count)
    ]


def _peer_tasks(count: int):
    from django.utils import timezone
    from django_celery_beat.models import ClockedSchedule, PeriodicTask

    with common.peer():
        later = ClockedSchedule.objects.create(clocked_time=timezone.now() + dt.timedelta(hours=1))
        return [
            PeriodicTask.objects.create(
                name=f"bench-edit-{i}",
                task="bench.peer.stamp",
                clocked=later,
                one_off=True,
                kwargs=f'{{"tag": "bench-edit-{i}"}}',
            )
            for i in range(count)
        ]


def _move_job(job, target: dt.datetime) -> None:
    job.run_at = target
    job.save()


def _move_task(task, target: dt.datetime) -> None:
    from django_celery_beat.models import ClockedSchedule

    with common.peer():
        task.clocked = ClockedSchedule.objects.create(clocked_time=target)
        task.save()


def _wait_for_effect(bench, job, task, target: dt.datetime) -> dict:
    from tasks_app.models import JobRun

    found = {}

    def look():
        if "taskhub" not in found:
            run = JobRun.objects.filter(job=job, scheduled_for=target, started_at__isnull=False).first()
            if run is not None:
                found["taskhub"] = (run.started_at - target).total_seconds()
        if "stock" not in found:
            for stamp in common.peer_stamps():
                if stamp["tag"] == task.name:
                    found["stock"] = stamp["started"] - target.timestamp()
        bench.check_alive()
        return len(found) == 2

    if not common.wait_until(look, AHEAD + WAIT_FOR_EFFECT, interval=0.05):
        missing = ", ".join(side for side in ("taskhub", "stock") if side not in found)
        raise common.BenchError(f"no effect within {WAIT_FOR_EFFECT:g} s after the new time ({missing})")
    return found


def _report(edits: int, measured: dict, saves: dict) -> str:
    rows = []
    for side, label in [("taskhub", "taskhub beat (LISTEN/NOTIFY)"), ("stock", "django-celery-beat DatabaseScheduler")]:
        late = measured[side]
        rows.append(
            [
                label,
                len(late),
                _ms(common.percentile(late, 50)),
                _ms(common.percentile(late, 95)),
                _ms(min(late)),
                _ms(max(late)),
                _ms(common.percentile(saves[side], 50)),
            ]
        )
    p50 = {side: common.percentile(values, 50) for side, values in measured.items()}
    notes = [
        f"stock / taskhub lateness p50: {common.ratio(p50['stock'], p50['taskhub']):.1f}x",
        f"each edit moves a one-off to fire {AHEAD:g} s ahead; lateness = handler start - new time; "
        "save = the edit's save() call",
        "per edit (taskhub/stock ms): "
        + "  ".join(f"{t * 1000:.0f}/{s * 1000:.0f}" for t, s in zip(measured["taskhub"], measured["stock"])),
        common.machine_note(),
    ]
    headers = ["scheduler", "edits", "late_p50_ms", "late_p95_ms", "late_min_ms", "late_max_ms", "save_p50_ms"]
    return common.table(f"edit_to_effect: {edits} edits, both beats and workers side by side", headers, rows, notes)


def _ms(seconds: float) -> float:
    return seconds * 1000


if __name__ == "__main__":
    common.main(run, "edit_to_effect.py", "Edit-to-effect latency of taskhub's beat against django-celery-beat.")
