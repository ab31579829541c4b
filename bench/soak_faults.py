"""The soak's faults: the seeded plan, and carrying each one out while the engines run.

What it is: ``fault_plan`` (every action once, Postgres and Redis restarted once each, more
actions about every 6 s) and ``Faults``, which carries out one planned action at a time — a
SIGKILL of a worker, beat or ``runapscheduler`` (restarted 1-4 s later), of a pool process
running a job, a restart of Postgres or Redis, an engine switch, an edit, a pause (resumed
3-10 s later) — and restarts a process that died on its own. An action that cannot happen
now (the database is away, one of its kind is still down, a service came back less than
``QUIET`` s ago) is put off and tried again. ``events`` and ``restarts`` say what was done, when.

What it is not: the figures (``soak_tally.py``) or the processes themselves (``soak_fleet.py``).
"""

import datetime as dt
import random
import time

from bench.soak_jobs import now

QUIET = 10.0  # seconds after Postgres or Redis is back before the next process kill: one fault at a time
ACTIONS = ["kill-worker", "kill-beat", "kill-aps", "kill-pool", "switch", "edit", "pause"]


def fault_plan(rng: random.Random, seconds: float) -> list[tuple[float, str]]:
    """Every action once, Postgres and Redis restarted once each, and more actions about every 6 s."""
    low, high = 0.05 * seconds, 0.9 * seconds
    plan = [(rng.uniform(0.2, 0.4) * seconds, "restart-postgres"), (rng.uniform(0.55, 0.75) * seconds, "restart-redis")]
    plan += [(rng.uniform(low, high), action) for action in ACTIONS]
    moment = low
    while (moment := moment + rng.expovariate(1 / 6)) < high:
        plan.append((moment, rng.choice(ACTIONS)))
    return sorted(plan)


class Faults:
    def __init__(self, rng: random.Random, fleet, jobs, postgres, redis):
        self.rng, self.fleet, self.jobs, self.postgres, self.redis = rng, fleet, jobs, postgres, redis
        self.restarts: list[tuple[dt.datetime, dt.datetime]] = []
        self.later: list[tuple[float, str, str]] = []  # (monotonic time, what, argument)
        self.events: list[tuple[dt.datetime, str]] = []  # what the soak did, when
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        self.events.append((now(), text))
        print(f"# {time.monotonic() - self.started:7.1f} s  {text}", flush=True)

    def act(self, action: str, attempt: int = 0) -> None:
        from django.db import DatabaseError, close_old_connections

        close_old_connections()  # a connection from before a Postgres restart is dropped, not used
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
        for slot, death in self.fleet.check():
            self.say(f"SELF-DEATH {death['process']} (exit {death['exit']}): {death['last_error'][:160]}")
            self.later.append((time.monotonic() + 1, "spawn", slot))
