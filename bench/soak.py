"""A chaos soak: both engines, doubled, on a Postgres and a Redis that the soak restarts.

``python bench/soak.py --minutes 10 [--seed N] [--keep-logs]`` starts its own Postgres
cluster and Redis server (``bench/soak_services.py``; never the shared ones), two Celery
workers, two beats and two ``manage.py runapscheduler`` (``bench/soak_fleet.py``) and 30
jobs on both engines (``bench/soak_jobs.py``). For ``--minutes`` it then injects faults at
seeded random times (the seed is printed first): it SIGKILLs each kind of process and
restarts it 1-4 s later, SIGKILLs worker pool processes mid-run, restarts Postgres once and
Redis once, switches jobs between engines, edits them, and pauses them for a few seconds.
One fault at a time: a process kill waits until ``QUIET`` seconds after Postgres or Redis
is back, and never takes the last live process of its kind.
Then it pauses every job, lets in-flight runs and the broker drain (at most ``DRAIN_CAP``
seconds), and prints its figures (``bench/soak_tally.py``): slots due, effects, duplicate
effects, lost slots, stuck runs and self-deaths, against the wanted ones (0 duplicates,
0 stuck, 0 self-deaths, lost <= 5 % and only within restarts).

Exit status: 0 when the wanted figures are met, 3 when not (with a line naming them), 1 with
one line when the soak cannot run, 2 for a bad argument. Logs are kept (and their directory
printed) with ``--keep-logs`` or when a wanted figure is missed.
"""

import argparse
import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common, soak_tally
from bench.soak_faults import Faults, fault_plan
from bench.soak_fleet import Fleet
from bench.soak_jobs import Jobs, job_specs, now
from bench.soak_services import PrivatePostgres, PrivateRedis

DATABASE = "taskhub_soak"
IN_FLIGHT = 60.0  # seconds: longer than any soak run takes, so a live worker has acknowledged by then
DRAIN_CAP = 100.0  # > STALE_AFTER_SECONDS (60) + beat's reap period (10): lost runs are taken over


def parse_args(argv=None) -> argparse.Namespace:
    parser = common._Parser(prog="soak.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long faults are injected (default 10)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the fault plan (default: random)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs and print where")
    args = parser.parse_args(argv)
    if not 0 < args.minutes <= 24 * 60:
        parser.error("--minutes must be more than 0 and at most 1440")
    return args


class Soak:
    def __init__(self, args, seed: int):
        self.args, self.rng = args, random.Random(seed)
        self.bench = common.Bench("soak", [], keep_logs=args.keep_logs)
        self.log_dir = self.bench.log_dir
        self.effects_path = self.log_dir / "effects.jsonl"
        self.postgres = self.redis = self.fleet = self.faults = None

    # -- set-up ------------------------------------------------------------------------------
    def prepare(self) -> None:
        self.postgres, self.redis = PrivatePostgres(self.log_dir), PrivateRedis(self.log_dir)
        self.postgres.start(), self.redis.start()
        self.postgres.wait_ready(), self.redis.wait_ready()
        self.postgres.create_database(DATABASE)
        self.env = common.process_env(
            "soak",
            self.redis.url,
            DATABASE_URL=f"{self.postgres.url}/{DATABASE}",
            TASKHUB_HANDLER_MODULES="tasks_app.handlers.bundled,bench.soak_handlers",
            SOAK_EFFECTS_FILE=str(self.effects_path),
        )
        migrate = subprocess.run(
            [common.PYTHON, "manage.py", "migrate", "--noinput"],
            cwd=common.ROOT,
            env={**self.env, "TASKHUB_LOG_LEVEL": "WARNING"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        if migrate.returncode:
            (self.log_dir / "migrate.log").write_text(migrate.stdout + migrate.stderr)
            raise common.BenchError(f"migrate failed (exit {migrate.returncode}); see {self.log_dir}")
        os.environ.update({k: v for k, v in self.env.items() if k.startswith((*common.OURS, "SOAK_"))})
        os.environ["TASKHUB_LOG_LEVEL"] = "WARNING"
        import django

        django.setup()
        self.jobs = Jobs(self.rng)
        self.jobs.create(job_specs(self.rng))
        self.fleet = Fleet(self.bench, self.env)
        self.fleet.start_all()
        self.fleet.wait_ready(timeout=180)

    # -- the run -----------------------------------------------------------------------------
    def run(self) -> int:
        seconds = self.args.minutes * 60
        plan = fault_plan(self.rng, seconds)
        self.prepare()
        faults = self.faults = Faults(self.rng, self.fleet, self.jobs, self.postgres, self.redis)
        start = now() + dt.timedelta(seconds=2)
        faults.say(f"{len(self.jobs.names())} jobs, 6 processes up; {len(plan)} faults planned")
        while (elapsed := time.monotonic() - faults.started) < seconds:
            while plan and plan[0][0] <= elapsed:
                faults.act(plan.pop(0)[1])
            faults.run_later()
            faults.watch()
            time.sleep(0.2)
        end = now()
        self.settle()
        return self.report(start, end)

    def settle(self) -> None:
        """Resume and restart what is pending, pause every job, then drain runs and the broker."""
        faults = self.faults
        faults.later = [(0, what, arg) for _, what, arg in faults.later if what in ("spawn", "resume")]
        faults.run_later()
        self.jobs.pause_all()
        faults.say("every job paused; draining")
        import redis

        from tasks_app.models import JobRun

        broker = redis.Redis.from_url(self.redis.url)
        deadline = time.monotonic() + DRAIN_CAP
        while time.monotonic() < deadline:
            faults.run_later()
            faults.watch()
            open_runs = JobRun.objects.filter(status__in=["queued", "running"]).exists()
            # Runs still open are counted by their rows (a retry's delayed message included); of the
            # unacknowledged messages only recent ones may still run: a killed worker's never drain.
            if not open_runs and common.broker_backlog(broker, unacked_within=IN_FLIGHT) == 0:
                break
            time.sleep(1)
        faults.say("drained" if time.monotonic() < deadline else f"drain stopped after {DRAIN_CAP:g} s")

    def report(self, start, end) -> int:
        figures = soak_tally.tally(
            self.jobs.due(start, end),
            soak_tally.read_effects(self.effects_path),
            soak_tally.run_rows(start, end),
            start,
            end,
            self.faults.restarts,
        )
        deaths = self.fleet.self_deaths
        print(soak_tally.report(self.args.minutes, len(self.jobs.names()), figures, deaths, self.fleet.kills))
        missed = soak_tally.wanted(figures, len(deaths))
        print(f"wanted figures: {'met' if not missed else 'missed: ' + ', '.join(missed)}", flush=True)
        if missed:
            self.bench.keep_logs = True
        if self.bench.keep_logs:
            self._write_details(figures)
        return 3 if missed else 0

    def _write_details(self, figures: dict) -> None:
        details = soak_tally.details(
            figures, self.jobs.engine_at, self.faults.events, self.faults.restarts, self.fleet.self_deaths
        )
        (self.log_dir / "details.json").write_text(json.dumps(details, indent=1, default=str))

    def clean_up(self) -> None:
        try:
            if self.fleet is not None:
                self.fleet.stop_all()
            common._close_django_connections()
        finally:
            for service in (self.redis, self.postgres):
                if service is not None:
                    service.stop()
                    service.remove()
        if self.bench.keep_logs:
            sys.stderr.write(f"logs: {self.log_dir}\n")
        else:
            common._remove_logs(self.log_dir)


def main(argv=None) -> None:
    args = parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    print(f"seed: {seed}", flush=True)
    signal.signal(signal.SIGTERM, common._raise_interrupt)
    soak = None
    try:
        soak = Soak(args, seed)
        status = soak.run()
    except common.BenchError as exc:
        sys.stderr.write(f"soak.py: {exc}\n")
        status = 1
    except KeyboardInterrupt:
        sys.stderr.write("soak.py: interrupted; stopping every process it started\n")
        status = 130
    finally:
        if soak is not None:
            soak.clean_up()
    sys.exit(status)


if __name__ == "__main__":
    main()
