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

from bench import common, soak_tally  # noqa: E402
from bench.soak_fleet import Fleet  # noqa: E402
from bench.soak_jobs import Jobs, job_specs, now  # noqa: E402
from bench.soak_services import PrivatePostgres, PrivateRedis  # noqa: E402

DATABASE = "taskhub_soak"
DRAIN_CAP = 100.0  # > STALE_AFTER_SECONDS (60) + beat's reap period (10): lost runs are taken over
QUIET = 10.0  # seconds after Postgres or Redis is back before the next process kill: one fault at a time
ACTIONS = ["kill-worker", "kill-beat", "kill-aps", "kill-pool", "switch", "edit", "pause"]


def parse_args(argv=None) -> argparse.Namespace:
    parser = common._Parser(prog="soak.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long faults are injected (default 10)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the fault plan (default: random)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs and print where")
    args = parser.parse_args(argv)
    if not 0 < args.minutes <= 24 * 60:
        parser.error("--minutes must be more than 0 and at most 1440")
    return args


def fault_plan(rng: random.Random, seconds: float) -> list[tuple[float, str]]:
    """Every action once, Postgres and Redis restarted once each, and more actions about every 6 s."""
    low, high = 0.05 * seconds, 0.9 * seconds
    plan = [(rng.uniform(0.2, 0.4) * seconds, "restart-postgres"), (rng.uniform(0.55, 0.75) * seconds, "restart-redis")]
    plan += [(rng.uniform(low, high), action) for action in ACTIONS]
    moment = low
    while (moment := moment + rng.expovariate(1 / 6)) < high:
        plan.append((moment, rng.choice(ACTIONS)))
    return sorted(plan)


class Soak:
    def __init__(self, args, seed: int):
        self.args, self.rng = args, random.Random(seed)
        self.bench = common.Bench("soak", [], keep_logs=args.keep_logs)
        self.log_dir = self.bench.log_dir
        self.effects_path = self.log_dir / "effects.jsonl"
        self.postgres = self.redis = self.fleet = None
        self.restarts: list[tuple[dt.datetime, dt.datetime]] = []
        self.later: list[tuple[float, str, str]] = []  # (monotonic time, what, argument)
        self.started = 0.0

    # -- set-up ------------------------------------------------------------------------------
    def prepare(self) -> None:
        self.postgres, self.redis = PrivatePostgres(self.log_dir), PrivateRedis(self.log_dir)
        self.postgres.start(), self.redis.start()
        self.postgres.wait_ready(), self.redis.wait_ready()
        self.postgres.create_database(DATABASE)
        self.env = common.process_env(
            "soak", self.redis.url, DATABASE_URL=f"{self.postgres.url}/{DATABASE}",
            TASKHUB_HANDLER_MODULES="tasks_app.handlers,bench.soak_handlers", SOAK_EFFECTS_FILE=str(self.effects_path))
        migrate = subprocess.run([common.PYTHON, "manage.py", "migrate", "--noinput"], cwd=common.ROOT,
                                 env={**self.env, "TASKHUB_LOG_LEVEL": "WARNING"}, capture_output=True, text=True,
                                 timeout=300)
        if migrate.returncode:
            (self.log_dir / "migrate.log").write_text(migrate.stdout + migrate.stderr)
            raise common.BenchError(f"migrate failed (exit {migrate.returncode}); see {self.log_dir}")
        os.environ.update({k: v for k, v in self.env.items() if k.startswith(common.OURS) or k.startswith("SOAK_")})
        os.environ["TASKHUB_LOG_LEVEL"] = "WARNING"
        import django

        django.setup()
        self.jobs = Jobs(self.rng)
        self.jobs.create(job_specs(self.rng))
        self.fleet = Fleet(self.bench, self.env)
        self.fleet.start_all()
        self.fleet.wait_ready(timeout=180)

    # -- the faults --------------------------------------------------------------------------
    def say(self, text: str) -> None:
        print(f"# {time.monotonic() - self.started:7.1f} s  {text}", flush=True)

    def act(self, action: str, attempt: int = 0) -> None:
        from django.db import DatabaseError, close_old_connections

        kind = action.split("-")[-1]
        if action.startswith("kill-") and (kind != "pool" and not self.fleet.all_up(kind) or self.recovering()):
            return self.postpone(action, attempt)  # one of its kind is still down, or a service just came back
        try:
            if action.startswith("restart-"):
                self.restart_service(self.postgres if kind == "postgres" else self.redis)
            elif action == "kill-pool":
                self.kill_pool(attempt)
            elif action.startswith("kill-"):
                slot = self.fleet.kill(kind, self.rng)
                self.say(f"SIGKILL {slot}")
                self.later.append((time.monotonic() + self.rng.uniform(1, 4), "spawn", slot))
            elif action == "pause":
                name = self.jobs.pause()
                self.say(f"pause {name}")
                self.later.append((time.monotonic() + self.rng.uniform(3, 10), "resume", name))
            else:
                self.say(getattr(self.jobs, action)())
        except DatabaseError as exc:
            close_old_connections()
            self.say(f"{action} put off: {str(exc).strip().splitlines()[0][:100]}")
            self.postpone(action, attempt)

    def recovering(self) -> bool:
        return bool(self.restarts) and (now() - self.restarts[-1][1]).total_seconds() < QUIET

    def postpone(self, action: str, attempt: int) -> None:
        if attempt < 20:
            self.later.append((time.monotonic() + 2, "retry", f"{attempt + 1}:{action}"))

    def kill_pool(self, attempt: int) -> None:
        from tasks_app.models import JobRun

        workers = JobRun.objects.filter(engine="celery", status="running").values_list("worker", flat=True)
        busy = {int(w.rpartition(":")[2]) for w in workers if w.rpartition(":")[2].isdigit()}
        killed = self.fleet.kill_pool_process(busy, self.rng, any_child=attempt >= 10)
        if killed:
            self.say(f"SIGKILL {killed}")
        else:
            self.later.append((time.monotonic() + 1, "retry", f"{attempt + 1}:kill-pool"))

    def restart_service(self, service) -> None:
        down = self.rng.uniform(2, 5)
        stopped = now()
        self.say(f"restart {service.name} (down {down:.1f} s)")
        service.restart(down)
        self.restarts.append((stopped, now()))
        self.say(f"{service.name} is back")

    def run_later(self) -> None:
        due = [item for item in self.later if item[0] <= time.monotonic()]
        self.later = [item for item in self.later if item[0] > time.monotonic()]
        for _, what, argument in due:
            if what == "spawn":
                self.fleet.spawn(argument)
            elif what == "resume":
                self._resume(argument)
            else:
                attempt, _, action = argument.partition(":")
                self.act(action, int(attempt))

    def _resume(self, name: str) -> None:
        from django.db import DatabaseError, close_old_connections

        try:
            self.jobs.resume(name)
            self.say(f"resume {name}")
        except DatabaseError:
            close_old_connections()
            self.later.append((time.monotonic() + 2, "resume", name))

    def watch(self) -> None:
        for slot in self.fleet.check():
            death = self.fleet.self_deaths[-1]
            self.say(f"SELF-DEATH {death['process']} (exit {death['exit']}): {death['last_error'][:160]}")
            self.later.append((time.monotonic() + 1, "spawn", slot))

    # -- the run -----------------------------------------------------------------------------
    def run(self) -> int:
        seconds = self.args.minutes * 60
        plan = fault_plan(self.rng, seconds)
        self.prepare()
        self.started = time.monotonic()
        start = now() + dt.timedelta(seconds=2)
        self.say(f"{len(self.jobs.names())} jobs, 6 processes up; {len(plan)} faults planned")
        while (elapsed := time.monotonic() - self.started) < seconds:
            while plan and plan[0][0] <= elapsed:
                self.act(plan.pop(0)[1])
            self.run_later()
            self.watch()
            time.sleep(0.2)
        end = now()
        self.settle()
        return self.report(start, end)

    def settle(self) -> None:
        """Resume and restart what is pending, pause every job, then drain runs and the broker."""
        self.later = [(0, what, arg) for _, what, arg in self.later if what in ("spawn", "resume")]
        self.run_later()
        self.jobs.pause_all()
        self.say("every job paused; draining")
        import redis
        from tasks_app.models import JobRun

        broker = redis.Redis.from_url(self.redis.url)
        deadline = time.monotonic() + DRAIN_CAP
        while time.monotonic() < deadline:
            self.run_later()
            self.watch()
            open_runs = JobRun.objects.filter(status__in=["queued", "running"]).exists()
            if not open_runs and common.broker_backlog(broker) == 0:
                break
            time.sleep(1)
        self.say("drained" if time.monotonic() < deadline else f"drain stopped after {DRAIN_CAP:g} s")

    def report(self, start, end) -> int:
        figures = soak_tally.tally(self.jobs.due(start, end), soak_tally.read_effects(self.effects_path),
                                   soak_tally.run_rows(start, end), start, end, self.restarts)
        deaths = self.fleet.self_deaths
        print(soak_report(self.args.minutes, len(self.jobs.names()), figures, deaths, self.fleet.kills))
        missed = soak_tally.wanted(figures, len(deaths))
        print(f"wanted figures: {'met' if not missed else 'missed: ' + ', '.join(missed)}", flush=True)
        if missed:
            self.bench.keep_logs = True
        if self.bench.keep_logs:
            self._write_details(figures)
        return 3 if missed else 0

    def _write_details(self, figures: dict) -> None:
        """Every lost slot (with its engine), stuck run and restart, beside the logs."""
        lost = [{"job": j, "slot": s.isoformat(), "engine": self.jobs.engine_at(j, s)} for j, s in figures["lost"]]
        details = {"lost": lost, "stuck": figures["stuck"], "restarts": self.restarts,
                   "self_deaths": self.fleet.self_deaths}
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


def soak_report(minutes: float, jobs: int, f: dict, deaths: list[dict], kills: dict) -> str:
    lost = len(f["lost"])
    rows = [["slots_due", f["slots_due"], "-"], ["effects", f["effects"], "-"],
            ["duplicate_effects", f["duplicate_effects"], "0"],
            ["lost_slots", lost, "<=5%"], ["lost_pct", soak_tally.percent(lost, f["slots_due"]), "<=5"],
            ["lost_in_restarts", f["lost_during_restarts"], "-"], ["lost_elsewhere", len(f["lost_elsewhere"]), "0"],
            ["stuck_runs", len(f["stuck"]), "0"], ["self_deaths", len(deaths), "0"]]
    notes = [f"runs by status: {f['statuses']}; duplicate claims refused: {f['duplicate_claims']}",
             f"kills by the soak: {kills}", common.machine_note()]
    notes += [f"self-death: {d['process']} exit {d['exit']} after {d['after_seconds']} s: {d['last_error']}"
              for d in deaths]
    notes += [f"stuck: {r['job__name']} {r['scheduled_for']:%H:%M:%S} {r['status']} attempt {r['attempt']} "
              f"on {r['engine']}" for r in f["stuck"][:20]]
    notes += [f"duplicate effect: {job} {slot:%H:%M:%S}" for job, slot in f["duplicates"][:20]]
    notes += [f"lost outside restarts: {job} {slot:%H:%M:%S}" for job, slot in f["lost_elsewhere"][:20]]
    title = f"soak: {minutes:g} min, {jobs} jobs, 2 workers, 2 beats, 2 runapscheduler"
    return common.table(title, ["figure", "value", "wanted"], rows, notes)


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
