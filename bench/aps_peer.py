"""The stock peer: django-apscheduler's ``runapscheduler`` command as its README shows it.

APScheduler 3's ``BlockingScheduler`` in the project's time zone with ``DjangoJobStore``
(which registers its own execution listeners since 0.4, so no ``register_events``), jobs
added with ``replace_existing=True`` and ``max_instances=1`` at every start, and APScheduler's
stock job defaults otherwise (``misfire_grace_time`` 1 s, ``coalesce`` True). The job is a
plain function, ``stamp``, that appends its tag and ``time.time()`` at its start to the file
named by ``BENCH_APS_STAMPS``.

Usage (the benchmarks start it; ``DATABASE_URL`` names the peer's database)::

    python bench/aps_peer.py [--once N [--at EPOCH]] [--interval N] [--cron N --cron-hour H]

- ``--once N``: one-offs ``once-0..N-1`` an hour ahead (``date`` trigger), or all at the instant
  ``--at`` (seconds since the epoch: a burst);
- ``--interval N``: ``interval-0..N-1`` every second (stock ``interval`` trigger, anchored
  at the time it is added: its first fire is 1 s after ``add_job``);
- ``--cron N``: ``cron-0..N-1`` at ``H:MM`` UTC daily (MM = index mod 60).

SIGTERM or SIGINT shuts the scheduler down as the documented command does on Ctrl-C.

For the benchmarks' own process: ``read_stamps`` (the start times ``stamp`` recorded) and
``move_stored_job`` (the DB edit a user can make to a stored job's next run time, since
django-apscheduler's admin cannot edit one: #127), both on the peer's database through
``bench.common.peer()`` routing.
"""

import argparse
import os
import pickle
import signal
import sys
import time
from collections import defaultdict
from pathlib import Path

STAMP = "bench.aps_peer:stamp"  # by reference, as DjangoJobStore pickles it


def stamp(tag: str) -> None:
    started = time.time()
    with open(os.environ["BENCH_APS_STAMPS"], "a") as stamps:
        stamps.write(f"{tag} {started:.6f}\n")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="aps_peer.py", description="Stock django-apscheduler with DjangoJobStore.")
    parser.add_argument("--once", type=int, default=0)
    parser.add_argument("--interval", type=int, default=0)
    parser.add_argument("--cron", type=int, default=0)
    parser.add_argument("--cron-hour", type=int, default=3)
    parser.add_argument("--at", type=float, default=None, help="the --once jobs' instant, seconds since the epoch")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import django

    django.setup()
    import datetime as dt

    from apscheduler.schedulers.blocking import BlockingScheduler
    from apscheduler.triggers.cron import CronTrigger
    from django.conf import settings
    from django_apscheduler.jobstores import DjangoJobStore

    scheduler = BlockingScheduler(timezone=settings.TIME_ZONE)
    scheduler.add_jobstore(DjangoJobStore(), "default")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    if args.at is not None:
        later = dt.datetime.fromtimestamp(args.at, dt.UTC)
    for i in range(args.once):
        scheduler.add_job(
            STAMP, "date", run_date=later, args=[f"once-{i}"], id=f"once-{i}", max_instances=1, replace_existing=True
        )
    for i in range(args.interval):
        scheduler.add_job(
            STAMP,
            "interval",
            seconds=1,
            args=[f"interval-{i}"],
            id=f"interval-{i}",
            max_instances=1,
            replace_existing=True,
        )
    for i in range(args.cron):
        scheduler.add_job(
            STAMP,
            CronTrigger(hour=args.cron_hour, minute=i % 60, timezone="UTC"),
            args=[f"cron-{i}"],
            id=f"cron-{i}",
            max_instances=1,
            replace_existing=True,
        )

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:
        scheduler.start()
    except KeyboardInterrupt:
        if scheduler.running:  # a signal during start() leaves nothing to shut down
            scheduler.shutdown()


# -- for the benchmarks' own process -----------------------------------------------------------
def read_stamps(path: Path) -> dict[str, list[float]]:
    """``{tag: [start time, ...]}`` from a stamp file (one ``tag time`` line per run)."""
    stamps = defaultdict(list)
    if path.exists():
        for line in path.read_text().splitlines():
            tag, _, started = line.partition(" ")
            if started:
                stamps[tag].append(float(started))
    return stamps


def stored_state(job_id: str) -> dict:
    """The pickled state of a job in the peer's DjangoJobStore."""
    from django_apscheduler.models import DjangoJob

    from bench import common

    with common.peer():
        return pickle.loads(DjangoJob.objects.get(id=job_id).job_state)


def move_stored_job(job_id: str, when) -> None:
    """Move a stored one-off to ``when`` as a DB edit would: the row's column and its pickled state."""
    from django_apscheduler.models import DjangoJob

    from bench import common

    state = stored_state(job_id)
    state["next_run_time"] = when
    state["trigger"].run_date = when
    with common.peer():
        DjangoJob.objects.filter(id=job_id).update(next_run_time=when, job_state=pickle.dumps(state))


if __name__ == "__main__":
    main()
