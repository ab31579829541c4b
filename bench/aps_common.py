"""Plumbing of the APScheduler benchmarks (``bench/aps_*.py``): databases, processes, logs.

What it is: what those scripts need beyond ``bench/common.py`` to run taskhub's
``manage.py runapscheduler`` and the stock peer (``bench/aps_peer.py``) on this machine —

- ``ApsBench``: one run, like ``common.Bench`` but without Redis (neither scheduler uses
  it) and on its own Postgres databases, named ``taskhub_apsbench_*`` and copied from a
  template migrated with ``manage.py migrate``. It waits (up to ``BENCH_LOCK_WAIT`` s,
  default 120) for the machine-wide benchmark lock, so two benchmarks never share the CPUs.
- ``LogWatch``: waits for a line in a process's log, reading only what is new (a scheduler
  adding 10,000 jobs writes megabytes; re-reading them every 20 ms would steal a CPU).

The peer itself, and reading and editing what it stores, are in ``bench/aps_peer.py``.

What it is not: a harness for timed asserts. The scripts print figures.
"""

import datetime as dt
import json
import os
import subprocess
import time
from pathlib import Path

from bench import common

PREFIX = "taskhub_apsbench"
TEMPLATE_DB = f"{PREFIX}_template_{common.migrations_digest()}"  # one per set of migrations
LOCK_WAIT = float(os.environ.get("BENCH_LOCK_WAIT", "120"))
LEADER_LINE = "apscheduler is leader"
PEER_READY_LINE = "Scheduler started"


class ApsBench(common.Bench):
    """One run: the benchmark lock, its ``taskhub_apsbench_*`` databases, its processes and logs."""

    lock_wait = LOCK_WAIT
    lock_reason = ""

    def prepare(self) -> None:
        """No Redis: neither scheduler uses it. Fresh copies of ``TEMPLATE_DB``, migrated first."""
        common.create_databases(self.databases, self.log_dir, prefix=PREFIX, template=TEMPLATE_DB)

    def clean_up(self) -> None:
        common.drop_databases(self.databases, prefix=PREFIX)

    def runapscheduler(self, label: str, database: str) -> subprocess.Popen:
        """taskhub's APScheduler engine process, as deployed (``manage.py runapscheduler``)."""
        return self.start(label, ["manage.py", "runapscheduler"], common.process_env(database, common.REDIS_TASKHUB))

    def peer(self, label: str, database: str, stamps: Path, *args: str) -> subprocess.Popen:
        """The stock django-apscheduler scheduler (``bench/aps_peer.py``) on ``database``."""
        env = common.process_env(database, common.REDIS_PEER, BENCH_APS_STAMPS=str(stamps))
        return self.start(label, ["bench/aps_peer.py", *args], env)


# -- logs --------------------------------------------------------------------------------------
class LogWatch:
    """Finds lines in a process's log, reading each byte of it once.

    Each look consumes the lines it reads up to its match (or all of them, when none
    matches), so a line is found at most once.
    """

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.offset = 0
        self.partial = b""
        self.pending: list[bytes] = []

    def poll(self, text: str) -> float | None:
        """When the next line containing ``text`` was logged (its JSON ``time``), or None."""
        with open(self.proc.log_path, "rb") as handle:
            handle.seek(self.offset)
            chunk = handle.read()
        self.offset += len(chunk)
        lines = (self.partial + chunk).split(b"\n")
        self.partial = lines.pop()
        self.pending += lines
        needle = text.encode()
        for index, line in enumerate(self.pending):
            if needle in line:
                del self.pending[: index + 1]
                return _logged_at(line)
        self.pending.clear()
        return None

    def wait_for(self, text: str, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while True:
            seen = self.poll(text)
            if seen is not None:
                return seen
            if self.proc.poll() is not None:
                raise common.BenchError(
                    f"{self.proc.label} exited with {self.proc.returncode}; see {self.proc.log_path}"
                )
            if time.monotonic() > deadline:
                raise common.BenchError(
                    f"{self.proc.label} did not log {text!r} within {timeout:g} s; see {self.proc.log_path}"
                )
            time.sleep(0.02)


def _logged_at(line: bytes) -> float:
    """The record's own time (taskhub's JSON logs carry one); now, for any other line."""
    try:
        return dt.datetime.fromisoformat(json.loads(line)["time"]).timestamp()
    except (ValueError, KeyError, TypeError):
        return time.time()


def wait_ready(proc: subprocess.Popen, text: str, timeout: float) -> float:
    """Seconds from spawning ``proc`` to the record of its ``text`` line."""
    return LogWatch(proc).wait_for(text, timeout) - proc.started
