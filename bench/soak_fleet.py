"""The soak's taskhub processes: two Celery workers, two beats, two ``runapscheduler``.

What it is: ``Fleet`` starts each process as deployed (through ``common.Bench``: its own
session, its log in the run's directory), SIGKILLs one (its whole process group, as a
crashed host or container would lose it), SIGKILLs a worker's pool process mid-run, and
notices a process that exited on its own (a **self-death**: recorded with the last error
line of its log, then restarted like a supervisor would). Every process is stopped by its
PID at the end (``Bench.stop_all``).

What it is not: a supervisor for production. It restarts what the soak killed after a pause
the soak chooses.
"""

import os
import signal
import time
from pathlib import Path

from bench import common

KINDS = {"worker": 2, "beat": 2, "aps": 2}
READY = {"worker": "worker ready", "beat": "beat loaded jobs", "aps": "apscheduler is leader"}


class Fleet:
    def __init__(self, bench: common.Bench, env: dict[str, str]):
        self.bench = bench
        self.env = env
        self.slots = {f"{kind}-{i}": None for kind, count in KINDS.items() for i in range(count)}
        self.starts: dict[str, int] = {}
        self.self_deaths: list[dict] = []
        self.kills: dict[str, int] = {}
        self.killed_pids: set[int] = set()  # a killed pool process stays listed until its worker reaps it

    def start_all(self) -> None:
        for slot in self.slots:
            self.spawn(slot)

    def spawn(self, slot: str):
        self.starts[slot] = self.starts.get(slot, 0) + 1
        label = slot if self.starts[slot] == 1 else f"{slot}.{self.starts[slot]}"
        kind = slot.split("-")[0]
        if kind == "worker":
            proc = self.bench.worker(label, "soak", self.env["CELERY_BROKER_URL"], **self.env)
        elif kind == "beat":
            proc = self.bench.beat(label, "soak", self.env["CELERY_BROKER_URL"], **self.env)
        else:
            proc = self.bench.start(label, ["manage.py", "runapscheduler"], common.process_env("soak", "", **self.env))
        proc.killed = False
        self.slots[slot] = proc
        return proc

    def wait_ready(self, timeout: float) -> None:
        """Every worker ready, and one leader each of beat and runapscheduler."""
        deadline = time.monotonic() + timeout
        for kind, text in READY.items():
            procs = [p for s, p in self.slots.items() if s.startswith(kind)]
            want = len(procs) if kind == "worker" else 1
            while sum(text in common.log_text(p) for p in procs) < want:
                self.check()
                if self.self_deaths or time.monotonic() > deadline:
                    raise common.BenchError(f"{kind} not ready within {timeout:g} s; see {self.bench.log_dir}")
                time.sleep(0.2)

    def all_up(self, kind: str) -> bool:
        return all(p is not None and p.poll() is None for s, p in self.slots.items() if s.startswith(kind))

    def kill(self, kind: str, rng) -> str:
        slot = rng.choice([s for s in self.slots if s.startswith(kind)])
        proc = self.slots[slot]
        proc.killed = True
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        self.kills[kind] = self.kills.get(kind, 0) + 1
        return slot

    def kill_pool_process(self, busy_pids: set[int], rng, any_child: bool) -> str | None:
        """SIGKILL a pool process of a live worker that runs a job (or any, with ``any_child``)."""
        children = {
            pid: slot
            for slot, proc in self.slots.items()
            if slot.startswith("worker") and proc.poll() is None
            for pid in _children(proc.pid)
        }
        alive = set(children) - self.killed_pids
        choices = sorted(alive & busy_pids) or (sorted(alive) if any_child else [])
        if not choices:
            return None
        pid = rng.choice(choices)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return None
        self.killed_pids.add(pid)
        self.kills["pool"] = self.kills.get("pool", 0) + 1
        return f"pool process {pid} of {children[pid]}"

    def check(self) -> list[tuple[str, dict]]:
        """``(slot, death)`` for each process that exited without the soak killing it (each recorded once)."""
        dead = []
        for slot, proc in self.slots.items():
            if proc is not None and not proc.killed and proc.poll() is not None:
                proc.killed = True  # recorded; not counted again
                death = {
                    "process": proc.label,
                    "exit": proc.returncode,
                    "at": time.time(),
                    "after_seconds": round(time.time() - proc.started, 1),
                    "last_error": last_error(proc.log_path),
                }
                self.self_deaths.append(death)
                dead.append((slot, death))
        return dead

    def stop_all(self) -> None:
        self.bench.stop_all()


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def last_error(log_path: Path) -> str:
    """The last CRITICAL or ERROR record of a log (else the last line mentioning an error), on one line."""
    try:
        lines = Path(log_path).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    for marks in (('"level": "CRITICAL"',), ('"level": "ERROR"',), ("Error", "error", "Traceback")):
        found = [line for line in lines if any(m in line for m in marks)]
        if found:
            return found[-1][:300]
    return lines[-1][:300] if lines else ""
